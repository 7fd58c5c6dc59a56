"""The house (issue 15): the core — onestep/, training/, proof_scale/ — imports with no ComfyUI on the path and never
names it; only onestep_nodes/ (the ComfyUI adapters) does; no package is loaded by its file path. Each module has one
name, the same in tests, command-line tools and ComfyUI (the repository's __init__.py, ComfyUI's entry, is the one
place that touches sys.path)."""
from __future__ import annotations

import os
import re
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORE = ("onestep", "training", "proof_scale")
HOST_IMPORT = re.compile(r"^\s*(?:import|from)\s+(?:comfy|comfy_extras|comfy_api|folder_paths|nodes|latent_preview|node_helpers)\b", re.M)
BY_PATH = re.compile(r"spec_from_file_location|module_from_spec|sys\.path\.(?:insert|append)|__package__|\.__path__\s*=")


def _sources(*folders: str):
    for folder in folders:
        for root, _, files in os.walk(os.path.join(REPO, folder)):
            for f in files:
                if f.endswith(".py"):
                    path = os.path.join(root, f)
                    yield os.path.relpath(path, REPO), open(path, encoding="utf-8").read()


def test_every_core_module_imports_without_comfyui():
    code = (
        "import importlib, importlib.util, pkgutil, sys\n"
        "assert importlib.util.find_spec('comfy') is None, 'comfy reachable'\n"
        f"for top in {CORE!r}:\n"
        "    package = importlib.import_module(top)\n"
        "    for m in pkgutil.walk_packages(package.__path__, top + '.'):\n"
        "        importlib.import_module(m.name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('comfy', 'folder_paths', 'onestep_nodes'))\n"
        "assert not bad, bad\n"
        "print(len([m for m in sys.modules if m.split('.')[0] in " + repr(CORE) + "]))\n"
    )
    env = {"PYTHONPATH": REPO, "PATH": os.environ["PATH"]}
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert int(r.stdout.split()[-1]) > 80  # every module was walked, not just the package roots


def test_only_the_adapters_import_the_host():
    assert not [path for path, text in _sources(*CORE) if HOST_IMPORT.search(text)]
    assert [path for path, text in _sources("onestep_nodes") if HOST_IMPORT.search(text)]  # the pattern does match there


def test_no_package_is_loaded_by_its_file_path():
    this = os.path.relpath(os.path.abspath(__file__), REPO)
    folders = (*CORE, "onestep_nodes", "onestep_webui", "scripts", "tools", "tests")  # the A1111 script too (issue 15)
    assert not [path for path, text in _sources(*folders) if path != this and BY_PATH.search(text)]
    entry = open(os.path.join(REPO, "__init__.py"), encoding="utf-8").read()
    assert "sys.path.append(ROOT)" in entry and "spec_from_file_location" not in entry
