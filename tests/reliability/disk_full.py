"""Disk full (issue 21): a job of kill_child.py runs until its AFTER-th write is done, then under a file-size limit
(RLIMIT_FSIZE, in a forked child: no special mount) of LIMIT bytes, so its next larger write fails part-way; then it
runs again without the limit. test_disk_full.py checks the report this writes:

    python -m reliability.disk_full WORKDIR JOB:AFTER:LIMIT [...]   (tests/ on PYTHONPATH; WORKDIR/JOB/report.json)

- the limited run stops with a message that says the disk is full, as a user sees it: the CLI's log, or the pack's
  error (what a node shows) — never a raw OSError or safetensors traceback;
- what is under final names afterwards is the previous good state (check_final; the scenario's `previous` check);
- no temporary file is left, and the run without the limit finishes with the uninterrupted run's result."""
from __future__ import annotations

import json
import os
import resource
import sys
import traceback
from collections.abc import Callable

import torch

from onestep.atomic import DiskFullError
from onestep.format import GeneratorFileError
from onestep.pairs import DatasetError
from reliability.kill_child import Switch, run_forked, scenarios

PACK_ERRORS = (DiskFullError, DatasetError, GeneratorFileError)  # what a node shows as its message


class LimitAfter(Switch):
    """After `after` renames, every file this process writes is limited to `limit` bytes."""

    def __init__(self, after: int, limit: int):
        super().__init__()
        self.after, self.limit = after, limit
        if after == 0:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    def _replace(self, src, dst, *a, **kw):
        super()._replace(src, dst, *a, **kw)
        if len(self.targets) == self.after:
            resource.setrlimit(resource.RLIMIT_FSIZE, (self.limit, self.limit))


def run_limited(job: Callable[[], None], after: int, limit: int, log: str) -> int:
    """job() in a forked child that runs out of space after `after` writes; its stderr (and what it reports) goes to `log`.
    The child reports as a front end would: the pack's own errors as 'error: <message>', anything else as a traceback."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(fd, 2)
            LimitAfter(after, limit).install()
            job()
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        except PACK_ERRORS as e:
            print(f"error: {e}", file=sys.stderr)
            code = 1
        except BaseException:  # noqa: BLE001 (a raw traceback: what the test refuses)
            traceback.print_exc()
            code = 1
        finally:
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def main(argv: list[str] | None = None) -> int:
    args = argv or sys.argv[1:]
    torch.set_num_threads(1)
    for case in args[1:]:
        name, after, limit = case.split(":")
        workdir = os.path.join(args[0], name)
        os.makedirs(workdir, exist_ok=True)
        one(scenarios()[name], workdir, int(after), int(limit))
    return 0


def one(scenario, workdir: str, after: int, limit: int) -> None:
    """The reference run, the run out of space, the run again; WORKDIR/report.json."""
    fixtures = os.path.join(workdir, "fixtures")
    os.makedirs(fixtures, exist_ok=True)
    scenario.build(fixtures)
    ref, folder = os.path.join(workdir, "reference"), os.path.join(workdir, "full")
    report: dict = {}
    code, targets = run_forked(lambda: scenario.job(ref))
    assert code == 0, code
    want = scenario.content(ref)
    report["writes"] = [n for n, _ in targets]
    prepare = getattr(scenario, "prepare", None)
    if prepare:
        prepare(folder)
    log = os.path.join(workdir, "limited.log")
    report["limited"] = run_limited(lambda: scenario.job(folder), after, limit, log)
    with open(log, encoding="utf-8") as f:
        report["stderr"] = f.read()[-4000:]
    report["temporary_left"] = sorted(n for n in os.listdir(folder) if n.startswith(".tmp"))
    try:
        scenario.check_final(folder)
        previous = getattr(scenario, "previous", None)
        report["previous"] = previous(folder, after) if previous else ""
        report["final_names_whole"] = True
    except Exception as e:  # noqa: BLE001 (reported)
        report["final_names_whole"] = f"{type(e).__name__}: {e}"[:300]
    report["resumed"], _ = run_forked(lambda: scenario.job(folder))
    report["identical"] = report["resumed"] == 0 and scenario.content(folder) == want
    with open(os.path.join(workdir, "report.json"), "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
