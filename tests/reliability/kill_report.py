"""The assertions on a kill job's report.json (kill_child.drive), shared by the kill-anywhere tests."""
from __future__ import annotations

import json
import os
import signal


def check_survived(folder: str, job: str, min_points: int, stderr: str) -> None:
    """The assertions on one job's report.json (kill_child.drive): every kill point survived."""
    with open(os.path.join(folder, "report.json"), encoding="utf-8") as f:
        report = json.load(f)
    assert "error" not in report, report["error"] + stderr[-3000:]
    points = report["points"]
    assert len(points) >= min_points and report["events"] >= 4
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
