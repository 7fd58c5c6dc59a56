"""Nodes fail alone (issue 15): a copy of the pack with one node module broken still registers every other node, and
the log names the broken module. Each copy is loaded by ComfyUI's own loader in a fresh interpreter, since the pack's
packages have one name per process (the copy must not find this checkout's modules already imported)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from comfy_host import REPO, comfyui_dir, pack_nodes

LOAD = """
import asyncio, json, sys
import comfy.cli_args
comfy.cli_args.args.cpu = True
import nodes
before = set(nodes.NODE_CLASS_MAPPINGS)  # ComfyUI's own
assert asyncio.run(nodes.load_custom_node(sys.argv[1])), "the pack did not load"
print(json.dumps(sorted(set(nodes.NODE_CLASS_MAPPINGS) - before)))
"""


def _load_copy(tmp_path, broken: str) -> tuple[set, str]:
    """Node classes ComfyUI registers from a copy of the pack with onestep_nodes/<broken>.py raising, and its log."""
    dest = tmp_path / "pack copy"
    shutil.copytree(REPO, dest, ignore=shutil.ignore_patterns(".git", ".host", ".devdata", ".whl", "default_models", "runs", "docs",
                                                                "benchmarks", "workflows", "tests", "__pycache__", "*.safetensors"))
    (dest / "onestep_nodes" / f"{broken}.py").write_text('raise ImportError("simulated: a core ComfyUI internal this module needs was renamed")\n')
    env = {**os.environ, "PYTHONPATH": comfyui_dir()}  # not this checkout: the copy's entry point must put itself on the path
    r = subprocess.run([sys.executable, "-c", LOAD, str(dest)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return set(json.loads(r.stdout.strip().splitlines()[-1])), r.stderr


@pytest.mark.parametrize("broken, lost", [
    ("load_generator", {"OneStepLoadGenerator"}),  # once the source of every module's CATEGORY
    ("fast_decode", {"OneStepVAEDecode"}),
    ("collect_pairs", {"OneStepCollectTeacherPairs"}),  # once the source of the training node's category and preview helper
])
def test_a_broken_node_module_takes_only_its_own_nodes(tmp_path, broken, lost):
    all_nodes = set(pack_nodes())
    assert lost <= all_nodes and len(all_nodes) >= 10
    registered, log = _load_copy(tmp_path, broken)
    assert registered == all_nodes - lost
    assert f"node module '{broken}' failed to import" in log and "simulated" in log
