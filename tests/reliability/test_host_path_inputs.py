"""Every node input that names a file or a folder (issue 21), attacked through the REAL ComfyUI host: a parent-folder
escape, an absolute path, a NUL byte and a newline in each is refused with the pack's message before anything is read
or written (no new file or folder anywhere under the host's base folder, none outside it)."""
from __future__ import annotations

import os

import pytest
from test_host_flow_training import instaflow_graph, reflow_graph
from test_host_pairs import collect_graph
from test_host_sid_lsg import graph as sid_graph
from test_host_training import graph as d2g_graph

ATTACKS = {"parent": "../evil-escape", "nested_parent": "a/../../evil-escape", "absolute": "/tmp/evil-absolute", "nul": "evil\x00nul",
           "newline": "evil\nnewline"}
PACK_ERRORS = {"ValueError", "DatasetError", "ImportSourceError", "GeneratorFileError"}  # the pack's refusals (ValueErrors)


def _import(value_for: dict) -> dict:
    inputs = {"kind": "dmd2", "source": "onestep/tiny_eps_t999.safetensors", "name": "pwn-import", "base": "auto", "guidance": -1.0,
              "allow_pickle": False, "overwrite": False, **value_for}
    return {"1": {"class_type": "OneStepImportGenerator", "inputs": inputs}}


def _node(graph: dict, node: str, value_for: dict) -> dict:
    graph[node]["inputs"].update(value_for)
    return graph


# (node, input) → a prompt with that input set: {input: value}
TARGETS = {
    ("OneStepImportGenerator", "source"): _import,
    ("OneStepImportGenerator", "name"): _import,
    ("OneStepCollectTeacherPairs", "prompt_file"): lambda v: _node(collect_graph("pwn-pairs"), "4", v),
    ("OneStepCollectTeacherPairs", "dataset_name"): lambda v: _node(collect_graph("pwn-pairs", prompts="a cat", prompt_file=""), "4", v),
    ("OneStepTrainDiffusion2GAN", "dataset"): lambda v: _node(d2g_graph("pwn-d2g", "pwn-d2g-pairs"), "5", v),
    ("OneStepTrainDiffusion2GAN", "generator_name"): lambda v: _node(d2g_graph("pwn-d2g", "pwn-d2g-pairs"), "5", v),
    ("OneStepTrainReflow", "dataset"): lambda v: _node(reflow_graph("pwn-rf"), "5", v),
    ("OneStepTrainReflow", "generator_name"): lambda v: _node(reflow_graph("pwn-rf"), "5", v),
    ("OneStepTrainInstaFlow", "init_from"): lambda v: _node(instaflow_graph("pwn-if", "pwn-rf"), "11", v),
    ("OneStepTrainInstaFlow", "dataset"): lambda v: _node(instaflow_graph("pwn-if", "pwn-rf"), "11", v),
    ("OneStepTrainInstaFlow", "generator_name"): lambda v: _node(instaflow_graph("pwn-if", "pwn-rf"), "11", v),
    ("OneStepTrainSiDLSG", "prompt_file"): lambda v: _node(sid_graph("pwn-sid"), "5", v),
    ("OneStepTrainSiDLSG", "generator_name"): lambda v: _node(sid_graph("pwn-sid"), "5", v),
}


def _tree(root: str) -> set[str]:
    return {os.path.relpath(os.path.join(d, n), root) for d, dirs, files in os.walk(root) for n in dirs + files}


@pytest.mark.parametrize("target", sorted(TARGETS), ids=lambda t: f"{t[0]}.{t[1]}")
def test_a_path_attack_in_a_name_input_is_refused_before_anything_is_touched(host, target):
    node, name = target
    results = []
    for attack, value in ATTACKS.items():
        before = _tree(host.base_dir)
        entry = host.run(TARGETS[target]({name: value}))
        assert "refused" not in entry, entry["refused"]
        msg = entry["error"]["exception_message"] if entry["error"] else f"NOT REFUSED: {entry['status']['status_str']}"
        new = sorted(p for p in _tree(host.base_dir) - before if "evil" in p)  # (valid upstream nodes may write their own files)
        results.append((attack, msg.splitlines()[0][:160] if msg else "", new, entry["error"]))
    print(f"\n{node}.{name}:")
    for attack, msg, new, _ in results:
        print(f"  {attack:14s} {msg!r} new={new}")
    outside = [p for p in os.listdir("/tmp") + os.listdir(os.path.dirname(host.base_dir)) if p.startswith("evil")]
    assert not outside, outside
    for attack, msg, new, error in results:
        assert error is not None and not new, (attack, msg, new)
        assert error["exception_type"].rsplit(".", 1)[-1] in PACK_ERRORS and "null byte" not in msg, (attack, error["exception_type"], msg)
