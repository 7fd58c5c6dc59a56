"""Disk full (issue 21): pair collection, the CLI trainer's checkpoints and the generator export run out of space
part-way through a write (a file-size limit, RLIMIT_FSIZE, set in a forked child after their first writes: disk_full.py).
Each stops with a message that says the disk is full — not a raw OSError or safetensors traceback — and leaves the
previous good state under the final names and no temporary file; run again with space, it finishes with the
uninterrupted run's result."""
from __future__ import annotations

import json
import os

import pytest

from reliability.harness import run_driver

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
CASES = {  # job: (writes done before the limit, the limit in bytes: above the small files, below the one that fails)
    "pairs": (5, 10_000),  # first manifest, 2 shards with a manifest each; the 3rd shard (~19 kB) does not fit
    "train-cli": (2, 2_000_000),  # checkpoints at steps 1 and 2; the 3rd (~5 MB) does not fit
    "export": (0, 400_000),  # the generator (~0.8 MB) over an older export does not fit
}


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> tuple[str, str]:
    """Every case in one driver process (one import of torch and diffusers)."""
    workdir = tmp_path_factory.mktemp("disk_full")
    cases = [f"{job}:{after}:{limit}" for job, (after, limit) in sorted(CASES.items())]
    return str(workdir), run_driver("disk_full", [str(workdir), *cases], timeout=900)


@pytest.mark.parametrize("job", sorted(CASES))
def test_a_full_disk_keeps_the_previous_state_and_says_so(job, reports):
    workdir, stderr = reports
    after = CASES[job][0]
    with open(os.path.join(workdir, job, "report.json"), encoding="utf-8") as f:
        report = json.load(f)
    said = report["stderr"]
    assert report["limited"] != 0 and "disk is full" in said and "Traceback" not in said, said
    assert report["final_names_whole"] is True and not report["previous"], (report["final_names_whole"], report["previous"])
    assert not report["temporary_left"], report["temporary_left"]
    assert report["resumed"] == 0 and report["identical"], stderr[-3000:]
    print(f"{job}: out of space after {after} writes → {said.strip().splitlines()[-1][:200]}")
