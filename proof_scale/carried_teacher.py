"""The teacher row carried from a run that scored it, so a device session spends its minutes on rows instead of scoring
the same teacher again (the sweep point and three 10,000-sample seeds: ~130 s of a 30-minute session).

  python -m proof_scale.carried_teacher place RUN_DIR WORK --teacher FILE --context FILE

RUN_DIR holds that run's teacher_eval.json and teacher.json (e.g. benchmarks/results/proof_scale_h200_run18). The record
is placed into WORK (a fresh work folder: an existing teacher_eval.json is never replaced) only when FILE and the context
table are the ones it was scored with (their sha256 in teacher.json; the table's over its tensor); the classifier must be the one that run used — the
bundle carries both from one evaluator (benchmarks/device/proof_scale_bundle.sh --evaluator DIR --teacher-row RUN_DIR).
The teacher stage still imports the teacher; teacher-eval then finds its seeds scored and is skipped.

The context table is rebuilt on each machine from the shipped text encoder, and another torch build rounds its float32
values differently (run 28: digest changed, its teacher FD moved by 0.002). When RUN_DIR also holds the table it scored
with (context.safetensors, the digest teacher.json names), a table within CONTEXT_ATOL of it counts as the same one.
"""
from __future__ import annotations

import argparse
import os
import sys

from onestep.atomic import file_sha256

from .checkpoint import digest
from .cli import read_context
from .common import read_json, write_json

CONTEXT_ATOL = 1e-4  # round-off of a width-64 CLIP in float32 is ~1e-6; another prompt or encoder differs by ~1e-1


def why_not(run_dir: str, teacher: str, context: str) -> str | None:
    """None when RUN_DIR's teacher row was scored with this teacher file and context table, else the reason."""
    for name in ("teacher_eval.json", "teacher.json"):
        if not os.path.isfile(os.path.join(run_dir, name)):
            return f"{run_dir} has no {name}"
    rec = read_json(os.path.join(run_dir, "teacher.json"))
    if rec.get("imported_sha256") != file_sha256(teacher):
        return f"{teacher} is not the teacher {run_dir} scored (sha256 differs)"
    table = read_context(context)
    if rec.get("context_sha256") != digest({"context": table}):  # as the teacher stage records it
        return _round_off_only(run_dir, rec, context, table)
    return None


def _round_off_only(run_dir: str, rec: dict, context: str, table) -> str | None:
    """None when RUN_DIR carries the table it scored with and `table` differs from it by round-off only, else why not."""
    scored_path = os.path.join(run_dir, "context.safetensors")
    if not os.path.isfile(scored_path):
        return f"{context} is not the context table {run_dir} scored with (sha256 differs; {run_dir} has no context.safetensors to compare)"
    scored = read_context(scored_path)
    if rec.get("context_sha256") != digest({"context": scored}):
        return f"{scored_path} is not the table {run_dir}/teacher.json names (sha256 differs)"
    if scored.shape != table.shape:
        return f"{context} is not the context table {run_dir} scored with (shape {tuple(table.shape)} vs {tuple(scored.shape)})"
    gap = float((scored - table).abs().max())
    if gap > CONTEXT_ATOL:
        return f"{context} is not the context table {run_dir} scored with (values differ by up to {gap:.3g})"
    return None


def place(run_dir: str, work: str, teacher: str, context: str) -> str:
    """What was done, in words: placed, or why not."""
    target = os.path.join(work, "teacher_eval.json")
    if os.path.exists(target):
        return f"teacher row: {target} exists, kept"
    reason = why_not(run_dir, teacher, context)
    if reason:
        return f"teacher row not placed: {reason} (teacher-eval scores it)"
    os.makedirs(work, exist_ok=True)
    record = read_json(os.path.join(run_dir, "teacher_eval.json"))
    write_json(target, record)
    return f"TEACHER ROW placed from {run_dir} (seeds {record.get('seeds', [])})"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m proof_scale.carried_teacher", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    pl = sub.add_parser("place", help="put a scored teacher row into a fresh work folder")
    pl.add_argument("run_dir")
    pl.add_argument("work")
    pl.add_argument("--teacher", required=True, help="the teacher file the pipeline imports (--teacher-import)")
    pl.add_argument("--context", required=True, help="the context table the pipeline reads (--context)")
    a = p.parse_args(argv)
    print(place(a.run_dir, a.work, a.teacher, a.context))
    return 0


if __name__ == "__main__":
    sys.exit(main())
