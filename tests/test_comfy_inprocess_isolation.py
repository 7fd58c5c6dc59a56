"""Nodes fail alone (issue 15): a copy of the pack with one node module broken still registers every other node, and
the log names the broken module. The copy is imported the way ComfyUI imports a custom-node folder."""
from __future__ import annotations

import logging
import os
import shutil
import uuid

import pytest
from comfy_host import import_pack

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _import_copy(tmp_path, broken: str):
    dest = tmp_path / "pack copy"
    shutil.copytree(REPO, dest, ignore=shutil.ignore_patterns(".git", ".host", ".devdata", ".whl", "default_models", "runs", "docs",
                                                                "benchmarks", "workflows", "tests", "__pycache__", "*.safetensors"))
    (dest / "nodes" / f"{broken}.py").write_text('raise ImportError("simulated: a core ComfyUI internal this module needs was renamed")\n')
    return import_pack(str(dest), f"pack_isolation_{uuid.uuid4().hex[:8]}")


@pytest.fixture(scope="module")
def all_nodes(tmp_path_factory):
    return set(_import_copy(tmp_path_factory.mktemp("whole"), "__no_such_module__").NODE_CLASS_MAPPINGS)


@pytest.mark.parametrize("broken, lost", [
    ("load_generator", {"OneStepLoadGenerator"}),  # once the source of every module's CATEGORY
    ("fast_decode", {"OneStepVAEDecode"}),
    ("collect_pairs", {"OneStepCollectTeacherPairs"}),  # once the source of the training node's category and preview helper
])
def test_a_broken_node_module_takes_only_its_own_nodes(tmp_path, caplog, all_nodes, broken, lost):
    with caplog.at_level(logging.ERROR, logger="onestep"):
        pack = _import_copy(tmp_path, broken)
    assert lost <= all_nodes and len(all_nodes) >= 10
    assert set(pack.NODE_CLASS_MAPPINGS) == all_nodes - lost
    assert any(broken in r.getMessage() and "failed to import" in r.getMessage() for r in caplog.records)
