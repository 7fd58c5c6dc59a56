"""Kill anywhere for the training methods beyond Diffusion2GAN (issue 21): regression, reflow and InstaFlow through the
CLI trainer, SiD-LSG (G, the fake score ψ and both optimisers) through the node's TrainingSession — each SIGKILLed at
points of a seeded schedule over its writes (kill_methods.py), then resumed: every file under a final name whole,
the resumed checkpoint and generator equal to an uninterrupted run's bit for bit, no temporary file left.

10 kill points per method by default (each file's first and last write, before and after its rename, then seeded
picks); the full sweep, 20 each: ONESTEP_RELIABILITY_FULL=1 bash scripts/test.sh tests/reliability/test_kill_methods.py -s"""
from __future__ import annotations

import os

import pytest

from reliability.harness import run_driver
from reliability.kill_report import check_survived

EACH = 20 if os.environ.get("ONESTEP_RELIABILITY_FULL") else 10
POINTS = {"train-regression": EACH, "train-reflow": EACH, "train-instaflow": EACH, "train-sid-lsg": EACH}


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> tuple[str, str]:
    workdir = tmp_path_factory.mktemp("kill_methods")
    return str(workdir), run_driver("kill_child", [*sorted(POINTS), str(workdir), "--points", str(EACH)], timeout=1200)


@pytest.mark.parametrize("job", sorted(POINTS))
def test_a_kill_at_any_write_of_each_method_loses_nothing(job, reports):
    workdir, stderr = reports
    check_survived(os.path.join(workdir, job), job, POINTS[job], stderr)
