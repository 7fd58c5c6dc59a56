"""The weight-keeping step of benchmarks/device/proof_scale_run.sh (its Python heredoc, run here on a made-up work
folder): KEEP=best keeps the variant row with the lowest selection FD, and only it — rows side by side whose winner is
not known when a session's calls are issued (run 42's AB=1) bring back one row's weights, within a call's 8 files."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import torch
from safetensors.torch import save_file

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "benchmarks", "device", "proof_scale_run.sh")


def keep_step() -> str:
    with open(SCRIPT, encoding="utf-8") as f:
        (code,) = re.findall(r'python3 - "\$W" "\$O" <<\'PY\'\n(.*?)\nPY\n', f.read(), re.S)
    return code


def test_keep_best_brings_back_the_variant_row_with_the_lowest_selection_fd(tmp_path):
    work, out = tmp_path / "work", tmp_path / "out"
    out.mkdir()
    for name, fd in (("sid_lsg_teacher_cfg__lr-1e-4", 20.5), ("sid_lsg_teacher_cfg__lr-1e-4-fake_steps-2", 18.1), ("regression_mse", 9.0)):
        row = work / "distill" / name
        row.mkdir(parents=True)
        (row / "selection.json").write_text(json.dumps({"points": [], "best": {"step": 500, "fd": fd}}))
        save_file({"a": torch.zeros(2), "b": torch.ones(2)}, str(row / "best.safetensors"))
    env = {**os.environ, "KEEP": "best", "PYTHONPATH": REPO}
    done = subprocess.run([sys.executable, "-c", keep_step(), str(work), str(out)], env=env, capture_output=True, text=True, check=True)
    assert "best variant row (lowest selection FD): sid_lsg_teacher_cfg__lr-1e-4-fake_steps-2 18.1" in done.stdout
    kept = [line for line in done.stdout.splitlines() if line.endswith(" kept")]
    assert len(kept) == 1 and "fake_steps-2" in kept[0]  # not the plain row's lower FD: only variant rows compete
    assert len(os.listdir(out)) == 2  # its two halves
