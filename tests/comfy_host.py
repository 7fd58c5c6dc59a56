"""The real ComfyUI host for tests: an unmodified upstream tree started on 127.0.0.1 and driven over HTTP.

The pack is linked into a fresh base directory's custom_nodes/ under a deliberately odd folder name (the
pack must load whatever its folder is called); models, input and output live in that base directory.
"""
from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

import websocket

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Odd, but no space: ComfyUI serves a pack's templates from a static route named after its folder, and aiohttp
# never matches a route whose name has a space (every template and thumbnail answers 404).
PACK_FOLDER_NAME = "ComfyUI-Diffusion2GAN_under-test"


def import_pack(folder: str = REPO):
    """The pack's entry module as ComfyUI's own loader imports a custom-node folder (nodes.load_custom_node: by path,
    under a name of its choosing, then the node list of its comfy_entrypoint registered), once per process. pytest may
    have imported the same file as a package already (the repository root has an __init__.py); that import registers
    nothing, so what counts is whether ComfyUI's loader has loaded the folder."""
    import asyncio

    import nodes  # ComfyUI's

    folder = os.path.abspath(folder)
    if folder not in {os.path.abspath(d) for d in nodes.LOADED_MODULE_DIRS.values()}:
        if not asyncio.run(nodes.load_custom_node(folder)):
            raise RuntimeError(f"ComfyUI could not load the pack from {folder} (its log says why)")
    entry = os.path.join(folder, "__init__.py")
    return [m for m in list(sys.modules.values()) if getattr(m, "__file__", None) == entry][-1]  # the loader's: the latest


def pack_nodes(folder: str = REPO) -> dict[str, type]:
    """{node id: class} of the pack's nodes as ComfyUI registered them (nodes.NODE_CLASS_MAPPINGS, filled by the pack's
    comfy_entrypoint when import_pack loads it): V3 classes, run with `cls.execute(...)` → io.NodeOutput (`[0]`: the
    first output)."""
    import nodes  # ComfyUI's

    import_pack(folder)
    return {k: c for k, c in nodes.NODE_CLASS_MAPPINGS.items() if c.__module__.split(".")[0] == "onestep_nodes"}


def combo_options(spec: list) -> list:
    """The choices of a combo input as /object_info serves it: a V1 list (spec[0]) or a V3 COMBO's options."""
    return spec[0] if isinstance(spec[0], list) else spec[1].get("options", [])


def comfyui_dir() -> str:
    """The host tree: $COMFYUI_DIR or the one scripts/bootstrap.sh unpacks."""
    path = os.environ.get("COMFYUI_DIR") or os.path.join(REPO, ".host", "ComfyUI")
    if not os.path.isfile(os.path.join(path, "main.py")):
        raise RuntimeError(f"no ComfyUI tree at {path}: run scripts/bootstrap.sh first")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """A test's web-app server process (log in log_path) and a small JSON client for it: what ComfyHost and
    forge_host.ForgeHost share."""

    name = "the server"
    url: str
    log_path: str
    proc: subprocess.Popen | None = None

    def wait_answering(self, path: str, timeout: float, start: float) -> float:
        """Poll GET `path` until it answers; seconds since `start`. Raises with the log's tail if the process exits
        or does not answer within `timeout` of `start`."""
        while time.time() < start + timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start-up:\n{self.log_tail()}")
            try:
                self.get(path)
                return time.time() - start
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(1.0)
        raise RuntimeError(f"{self.name} did not answer within {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def log_tail(self, n: int = 80) -> str:
        with open(self.log_path, errors="replace") as f:
            return "".join(f.readlines()[-n:])

    def get(self, path: str):
        with urllib.request.urlopen(self.url + path, timeout=60) as r:
            return json.loads(r.read())

    def post(self, path: str, body: dict, timeout: float = 60.0):
        """(status, JSON body) of a POST; HTTP errors come back as their status, not raised."""
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")


class ComfyHost(ServerProcess):
    """A running ComfyUI server process and a small HTTP/websocket client for it."""

    name = "ComfyUI"

    def __init__(self, base_dir: str):
        self.base_dir = base_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.client_id = uuid.uuid4().hex
        for sub in ("custom_nodes", "models", "input", "output", "user"):
            os.makedirs(os.path.join(base_dir, sub), exist_ok=True)
        link = os.path.join(base_dir, "custom_nodes", PACK_FOLDER_NAME)
        if not os.path.islink(link):
            os.symlink(REPO, link)
        # A user's extra_model_paths.yaml adding a second generator folder; the pack must keep it.
        self.extra_onestep = os.path.join(base_dir, "extra", "onestep_extra")
        os.makedirs(self.extra_onestep, exist_ok=True)
        self.extra_paths_config = os.path.join(base_dir, "extra_model_paths.yaml")
        with open(self.extra_paths_config, "w") as f:
            f.write(f"onestep_test_extra:\n    base_path: {os.path.join(base_dir, 'extra')}\n    onestep: onestep_extra\n")
        self.log_path = os.path.join(base_dir, "server.log")
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 300.0) -> None:
        log = open(self.log_path, "w")
        cmd = [sys.executable, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(self.port),
               "--base-directory", self.base_dir, "--disable-auto-launch", "--extra-model-paths-config", self.extra_paths_config,
               *shlex.split(os.environ.get("COMFYUI_EXTRA_ARGS", ""))]  # e.g. "--front-end-root DIR": another frontend
        self.proc = subprocess.Popen(cmd, cwd=comfyui_dir(), stdout=log, stderr=subprocess.STDOUT,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.wait_answering("/system_stats", timeout, time.time())

    def run(self, prompt: dict, timeout: float = 600.0) -> dict:
        """Queue an API-format prompt, wait on the websocket until it ends, return its /history entry.

        The entry gains "error": the execution_error payload, or None, and "interrupted_at": the monotonic time the
        server's execution_interrupted message arrived, or None; a prompt refused at validation returns
        {"refused": node_errors}.
        """
        ws = websocket.create_connection(f"ws://127.0.0.1:{self.port}/ws?clientId={self.client_id}", timeout=timeout)
        try:
            status, body = self.post("/prompt", {"prompt": prompt, "client_id": self.client_id})
            if status != 200:
                return {"refused": body}
            pid = body["prompt_id"]
            error = interrupted_at = None
            deadline = time.time() + timeout
            while time.time() < deadline:
                msg = ws.recv()
                if not isinstance(msg, str):
                    continue
                m = json.loads(msg)
                data = m.get("data", {})
                if data.get("prompt_id") != pid:
                    continue
                if m["type"] == "execution_interrupted":
                    interrupted_at = time.monotonic()  # the call stopped here; the prompt still ends as below
                if m["type"] == "execution_error":
                    error = data
                    break
                if m["type"] in ("executing",) and data.get("node") is None:
                    break
                if m["type"] == "execution_success":
                    break
            else:
                raise TimeoutError(f"prompt {pid} did not finish in {timeout} s")
        finally:
            ws.close()
        for _ in range(50):
            hist = self.get(f"/history/{pid}")
            if pid in hist:
                entry = hist[pid]
                entry["error"], entry["interrupted_at"] = error, interrupted_at
                return entry
            time.sleep(0.1)
        raise RuntimeError(f"prompt {pid} finished but is not in /history")
