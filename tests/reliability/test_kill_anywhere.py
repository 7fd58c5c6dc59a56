"""Kill anywhere (issue 21): pair collection, training (the CLI trainer and the node's TrainingSession) and generator
export SIGKILLed at ≥ 20 points each of a seeded schedule over their writes (kill_child.py: before each rename, after
it, and part-way through writing the temporary file), then resumed. After every kill each file under a final name is
whole (it loads with the pack's own loader); the resume finishes, leaves no temporary file, and its result equals an
uninterrupted run's: pairs shard by shard, training bit for bit on the CPU (checkpoint with both optimisers' state, EMA
and RNG, loss history, generator file, LoRA). The kills run in forked children of one driver process per job."""
from __future__ import annotations

import json
import os
import signal

import pytest

from reliability.harness import run_driver

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
    tmp_path = os.path.join(workdir, job)
    with open(os.path.join(tmp_path, "report.json"), encoding="utf-8") as f:
        report = json.load(f)
    assert "error" not in report, report["error"] + stderr[-3000:]
    points = report["points"]
    assert len(points) >= POINTS[job] and report["events"] >= 4
    assert {p["write"] for p in points} == set(report["writes"])  # every kind of write is killed
    for p in points:
        where = f"killed at write event {p.get('event')} (+{p.get('delay')} s, {p.get('write')})"
        assert "error" not in p, (where, p, stderr[-3000:])
        assert p["killed"] == -signal.SIGKILL, (where, p)
        assert p["final_names_whole"] is True, (where, p["final_names_whole"])
        assert p["resumed"] == 0, (where, stderr[-3000:])
        assert p["identical"], (where, "the resumed result differs from an uninterrupted run's in", p.get("differs"))
        assert not p["finished"], (where, p["finished"])
        assert not p["temporary_after_resume"], (where, "left", p["temporary_after_resume"])
    part_way = sum(1 for p in points if p["delay"] > 0)
    print(f"{job}: {len(points)} kill points over {report['events']} write events ({part_way} part-way through a write), "
          f"{len(points)} survived; {report['seconds']} s")
