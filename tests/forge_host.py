"""The real Stable Diffusion WebUI Forge for tests: the tree scripts/bootstrap_forge.sh prepares, started headless on
127.0.0.1 (CPU, API only) with a fresh data dir holding the models, this repository as an extension and the test
probe extension (tests/forge_probe: records noise, UNet calls and decoded latents), driven over its HTTP API.
"""
from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import time

import torch

from comfy_host import REPO, ServerProcess, free_port

EXTENSION_NAME = "sd-webui-diffusion2gan_under-test"  # any folder name must work, as for the ComfyUI pack
FIXTURES = os.path.join(REPO, ".host", "forge-fixtures")
CHECKPOINT = "random-sd15"
CHECKPOINT_VERSION = "1"  # bump when tools.fixtures.write_sd15_checkpoint changes


class ForgeUnavailable(RuntimeError):
    """Forge could not be prepared (its source is not on this machine); the message says what to do."""


def bootstrap() -> tuple[str, str]:
    """(Forge tree, its venv's python) from scripts/bootstrap_forge.sh; raises ForgeUnavailable with its message."""
    r = subprocess.run(["bash", os.path.join(REPO, "scripts", "bootstrap_forge.sh")], capture_output=True, text=True)
    if r.returncode == 3:
        raise ForgeUnavailable(r.stderr.strip())
    if r.returncode != 0:
        raise RuntimeError(f"scripts/bootstrap_forge.sh failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    tree, python = r.stdout.strip().splitlines()[-1].split(" ")
    return tree, python


def random_checkpoint() -> str:
    """A random-weight SD1.5 single-file checkpoint (ComfyUI's layout, fp16, ~2 GB), built once into .host/."""
    path = os.path.join(FIXTURES, f"{CHECKPOINT}-v{CHECKPOINT_VERSION}.safetensors")
    if not os.path.isfile(path):
        os.makedirs(FIXTURES, exist_ok=True)
        code = f"from tools.fixtures import write_sd15_checkpoint; write_sd15_checkpoint({path!r})"
        subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)
    return path


class ForgeHost(ServerProcess):
    """A running Forge process (API only) and a small JSON client for it."""

    name = "Forge"

    def __init__(self, base_dir: str, tree: str, python: str):
        self.base_dir, self.tree, self.python = base_dir, tree, python
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.probe_dir = os.path.join(base_dir, "probe")
        self.models = os.path.join(base_dir, "models")
        os.makedirs(os.path.join(self.models, "Stable-diffusion"), exist_ok=True)
        os.makedirs(os.path.join(self.models, "onestep"), exist_ok=True)
        extensions = os.path.join(base_dir, "extensions")
        os.makedirs(extensions, exist_ok=True)
        if not os.path.islink(os.path.join(extensions, EXTENSION_NAME)):
            os.symlink(REPO, os.path.join(extensions, EXTENSION_NAME))
        shutil.copytree(os.path.join(REPO, "tests", "forge_probe"), os.path.join(extensions, "onestep-test-probe"), dirs_exist_ok=True)
        link = os.path.join(self.models, "Stable-diffusion", f"{CHECKPOINT}.safetensors")
        if not os.path.lexists(link):
            os.symlink(random_checkpoint(), link)
        self.log_path = os.path.join(base_dir, "forge.log")
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 300.0) -> float:
        """Start Forge and wait until its API answers; returns the seconds it took."""
        t0 = time.time()
        cmd = [self.python, "launch.py", "--skip-prepare-environment", "--always-cpu", "--nowebui", "--api",
               "--port", str(self.port), "--server-name", "127.0.0.1", "--skip-torch-cuda-test", "--no-hashing",
               "--attention-pytorch", "--data-dir", self.base_dir]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "ONESTEP_PROBE_DIR": self.probe_dir, "HF_HUB_OFFLINE": "1",
               "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": ""}  # nothing of the test venv's ComfyUI path leaks in
        self.proc = subprocess.Popen(cmd, cwd=self.tree, stdout=open(self.log_path, "w"), stderr=subprocess.STDOUT, env=env)
        return self.wait_answering("/sdapi/v1/sd-models", timeout, t0)

    def post(self, path: str, body: dict, timeout: float = 600.0):
        """A txt2img call on the CPU takes minutes: a longer default than the base's."""
        return super().post(path, body, timeout)

    def take_records(self) -> dict[str, list]:
        """The probe's records since the last call, by kind in call order (and removes them)."""
        out: dict[str, list] = {"noise": [], "unet": [], "latent": [], "init": []}
        for path in sorted(glob.glob(os.path.join(self.probe_dir, "*.pt"))):
            out[os.path.basename(path).split("-")[0]].append(torch.load(path, weights_only=True))
            os.remove(path)
        return out
