"""Session fixtures: the real ComfyUI host with the pack, and the models it runs on (built, never downloaded)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

try:  # pytest imports the repo root as a package; its node modules import ComfyUI, which must know there is no GPU
    import comfy.cli_args

    comfy.cli_args.args.cpu = comfy.cli_args.args.cpu or not torch.cuda.is_available()
except ImportError:
    pass

from comfy_host import REPO, ComfyHost, comfyui_dir

# The real-Forge tests run when asked for (ONESTEP_FORGE_TESTS=1, with FORGE_SRC or FORGE_DIR: scripts/bootstrap_forge.sh).
# Forge's source cannot be installed from PyPI, Debian or npm, so the default suite (CI on a fresh machine) leaves
# the file out rather than failing or skipping it; the README says what was run where.
collect_ignore = [] if os.environ.get("ONESTEP_FORGE_TESTS") == "1" else ["test_forge_onestep.py"]


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module's tests: tiny convolutions run faster on one core than on two shared ones."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _build_fixtures(base: str) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in [REPO, comfyui_dir(), os.environ.get("PYTHONPATH", "")] if p)}
    subprocess.run([sys.executable, "-m", "tools.build_test_fixtures", base], cwd=REPO, env=env, check=True)


@pytest.fixture(scope="session")
def host(tmp_path_factory):
    """A started ComfyUI (CPU) with the pack linked in and the fixture models in its models folder."""
    base = str(tmp_path_factory.mktemp("comfy_base"))
    server = ComfyHost(base)
    _build_fixtures(base)
    server.start()
    yield server
    server.stop()
    sys.stdout.write("\n--- ComfyUI log tail ---\n" + server.log_tail(40))
