"""Kill anywhere (issue 21): pair collection, training (the CLI trainer and the node's TrainingSession) and generator
export SIGKILLed at ≥ 20 points each of a seeded schedule over their writes (kill_child.py: before each rename, after
it, and part-way through writing the temporary file), then resumed. After every kill each file under a final name is
whole (it loads with the pack's own loader); the resume finishes, leaves no temporary file, and its result equals an
uninterrupted run's: pairs shard by shard, training bit for bit on the CPU (checkpoint with both optimisers' state, EMA
and RNG, loss history, generator file, LoRA). The kills run in forked children of one driver process per job."""
from __future__ import annotations

import os

import pytest

from reliability.harness import run_driver
from reliability.kill_report import check_survived

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
POINTS = {"pairs": 22, "train-cli": 20, "train-session": 20, "export": 20}


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> tuple[str, str]:
    """Every job's kill schedule, in one driver process (one import of torch and diffusers)."""
    workdir = tmp_path_factory.mktemp("kill")
    return str(workdir), run_driver("kill_child", [*sorted(POINTS), str(workdir), "--points", "20"], timeout=1200)


@pytest.mark.parametrize("job", sorted(POINTS))
def test_a_kill_at_any_write_loses_nothing(job, reports):
    workdir, stderr = reports
    check_survived(os.path.join(workdir, job), job, POINTS[job], stderr)
