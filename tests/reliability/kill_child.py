"""Kill anywhere (issue 21): a switch that SIGKILLs the process at its KILL_AT-th write event, the jobs it kills, and a
driver that runs a seeded schedule of kills, each followed by a resume, in forked children of one process (torch and
diffusers are imported once, not twice per kill point).

Every write of the pack goes through onestep/atomic.py: a temporary file is created (in a tempfile.mkdtemp folder)
and written, then renamed over its final name (os.replace). Event 2i−1 is "the i-th temporary file is written, not yet renamed",
event 2i "the i-th rename is done". A kill point (2i−1, d) with d > 0 comes d seconds after the i-th temporary file
was created — while it is being written — or at event 2i−1 if the write is done sooner. KILL_AT=0 runs to the end.

    python -m reliability.kill_child JOB [JOB ...] WORKDIR [--points N] [--seed S]   (tests/ on PYTHONPATH)

writes WORKDIR/JOB/report.json: the reference run's writes, then per kill point how the killed run ended, what was left
under final names, whether the resume finished and whether its result equals the uninterrupted run's, bit for bit."""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable

import torch

from onestep.pairs import PairSettings
from onestep.pairs.collect import collect, open_dataset
from onestep.pairs.manifest import prompts_hash

PROMPTS = ["a cat", "a dog", "a bird"]
_replace, _mkdtemp = os.replace, tempfile.mkdtemp


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class Switch:
    """Counts write events (module docstring) and kills the process at kill_at; records each write's final name."""

    def __init__(self, kill_at: int = 0, delay: float = 0.0):
        self.kill_at, self.delay, self.events, self.targets, self.started = kill_at, delay, 0, [], 0.0

    def install(self) -> None:
        os.replace, tempfile.mkdtemp = self._replace, self._mkdtemp

    def _event(self) -> None:
        self.events += 1
        if self.events == self.kill_at:
            _die()

    def _mkdtemp(self, *a, **kw):
        made = _mkdtemp(*a, **kw)
        self.started = time.perf_counter()
        if self.delay > 0 and self.events + 1 == self.kill_at:  # the write this temporary file is for dies part-way
            threading.Timer(self.delay, _die).start()
        return made

    def _replace(self, src, dst, *a, **kw):
        self.targets.append((os.path.basename(os.fspath(dst)), time.perf_counter() - self.started))  # (final name, seconds writing)
        self._event()
        _replace(src, dst, *a, **kw)
        self._event()


def run_forked(job: Callable[[], None], kill_at: int = 0, delay: float = 0.0) -> tuple[int, list]:
    """Run job() in a forked child with a Switch armed: (exit status, −9 when killed; [final name, seconds writing] per write)."""
    r, w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: never returns into the caller's code
        code = 0
        try:
            os.close(r)
            switch = Switch(kill_at, delay)
            switch.install()
            job()
            os.write(w, json.dumps(switch.targets).encode())
        except BaseException:  # noqa: BLE001 (reported through the exit status)
            traceback.print_exc()
            code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), json.loads(data) if data else []


def schedule(writes: list, points: int, seed: int) -> list[tuple[int, float]]:
    """`points` kill points (event, delay) for the writes [(final name, seconds)] of a run: each file's first and last
    write killed before and after its rename, then seeded picks of the other events; an odd event is killed part-way
    through its write (a seeded delay within the write's measured time) with probability 1/2. Runs with fewer events
    than points get the rest as part-way kills of seeded writes."""
    rng = random.Random(seed)
    names = [n for n, _ in writes]
    chosen: set[int] = set()
    for name in dict.fromkeys(names):
        for i in (names.index(name), len(names) - 1 - names[::-1].index(name)):
            chosen.update((2 * i + 1, 2 * i + 2))
    if len(chosen) > points:
        chosen = set(rng.sample(sorted(chosen), points))
    rest = [e for e in range(1, 2 * len(writes) + 1) if e not in chosen]
    chosen.update(rng.sample(rest, min(len(rest), points - len(chosen))))

    def part_way(e: int) -> float:
        return round(rng.uniform(0.0, 1.0) * writes[(e - 1) // 2][1] + 1e-4, 5)

    out = [(e, part_way(e) if e % 2 == 1 and rng.random() < 0.5 else 0.0) for e in sorted(chosen)]
    while len(out) < points:
        e = 2 * rng.randrange(len(writes)) + 1
        out.append((e, part_way(e)))
    return out


def file_content(path: str):
    """What a file holds, comparable bit for bit: a safetensors file as (metadata, {key: (dtype, shape, bytes)}),
    JSON as its value, anything else as bytes (safetensors orders its header per process: equal content, other bytes)."""
    from safetensors import safe_open

    if os.path.isdir(path):
        return "a folder"
    if path.endswith(".safetensors"):
        with safe_open(path, "pt") as f:
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
            return f.metadata(), {k: (str(t.dtype), tuple(t.shape), t.contiguous().view(-1).view(torch.uint8).numpy().tobytes()) for k, t in tensors.items()}
    if path.endswith(".json"):
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    with open(path, "rb") as f:
        return f.read()


class Scenario:
    """A job to kill: build(fixtures) once, job(folder) runs (or resumes) it in `folder`, check_final(folder) raises if
    a file under a final name is partial, content(folder) is what must equal the uninterrupted run's."""

    def build(self, fixtures: str) -> None:
        pass

    def job(self, folder: str) -> None:
        raise NotImplementedError

    def check_final(self, folder: str) -> None:
        raise NotImplementedError

    def content(self, folder: str) -> dict:
        return {name: file_content(os.path.join(folder, name)) for name in sorted(os.listdir(folder))}


class Teacher:
    def noise(self, seed):
        return torch.randn([1, 4, 8, 8], generator=torch.Generator().manual_seed(seed))

    def conditioning(self, j):
        return {"cond": torch.full((1, 77, 8), float(j))}

    def sample(self, noise, prompt_indices, hint_indices):
        return torch.tanh(noise + torch.tensor([float(j) for j in prompt_indices]).view(-1, 1, 1, 1))


class PairCollection(Scenario):
    """20 pairs in 5 shards of 4, a manifest after each: 22 writes."""

    def job(self, folder: str) -> None:
        s = PairSettings(teacher="t" * 64, latent_format="SD15", latent_shape=(4, 8, 8), sampler="euler", scheduler="normal", steps=2, cfg=1.0,
                         negative="", prompts_sha256=prompts_hash(PROMPTS), seed_start=0, count=20, batch_size=2, shard_size=4)
        collect(folder, open_dataset(folder, s, PROMPTS), Teacher())

    def check_final(self, folder: str) -> None:
        from safetensors.torch import load_file

        for name in os.listdir(folder):
            if name == "manifest.json":
                with open(os.path.join(folder, name), encoding="utf-8") as f:
                    json.load(f)
            elif name.startswith("shard-"):
                load_file(os.path.join(folder, name))

    def content(self, folder: str) -> dict:
        out = super().content(folder)
        for entry in out.get("manifest.json", {}).get("shards", []):
            entry.pop("sha256")  # of the bytes, which differ with the header order
        return out

    def previous(self, folder: str, after: int) -> str:
        """After `after` writes (the first manifest, then a shard and a manifest each) the manifest lists the shards so far."""
        with open(os.path.join(folder, "manifest.json"), encoding="utf-8") as f:
            listed = len(json.load(f)["shards"])
        return "" if listed == (after - 1) // 2 else f"the manifest lists {listed} shards after {after} writes"

    def finished(self, folder: str) -> str:
        from onestep.pairs.validate import validate

        report = validate(folder)
        return "" if report.ok else report.text()


def scenarios() -> dict[str, Scenario]:
    from reliability import kill_methods, kill_training

    return {"pairs": PairCollection(), **kill_training.SCENARIOS, **kill_methods.SCENARIOS}


def _point(scenario: Scenario, folder: str, event: int, delay: float, write: str, want: dict) -> dict:
    """One kill point: kill the job at (event, delay), check what carries a final name, resume, compare with `want`."""
    point = {"event": event, "delay": delay, "write": write}
    point["killed"], _ = run_forked(lambda: scenario.job(folder), event, delay)
    point["temporary_left"] = sorted(n for n in os.listdir(folder) if n.startswith(".tmp")) if os.path.isdir(folder) else []
    try:
        if os.path.isdir(folder):
            scenario.check_final(folder)
        point["final_names_whole"] = True
    except Exception as e:  # noqa: BLE001 (reported)
        point["final_names_whole"] = f"{type(e).__name__}: {e}"[:300]
    point["resumed"], _ = run_forked(lambda: scenario.job(folder))
    got = scenario.content(folder) if point["resumed"] == 0 else {}
    point["identical"] = got == want
    if not point["identical"] and got:
        point["differs"] = sorted(k for k in set(got) | set(want) if got.get(k) != want.get(k))
    finished = getattr(scenario, "finished", None)
    point["finished"] = finished(folder) if finished and point["resumed"] == 0 else ""
    point["temporary_after_resume"] = sorted(n for n in os.listdir(folder) if n.startswith(".tmp"))
    return point


def _parallel(calls: list[Callable[[], dict]], jobs: int, workdir: str) -> list[dict]:
    """Each call in a forked process, `jobs` at a time; their results (JSON, through a file each) in order."""
    running: dict[int, int] = {}  # pid → index
    out = [os.path.join(workdir, f"point-{i}.json") for i in range(len(calls))]
    for i, call in enumerate(calls):
        while len(running) >= jobs:
            running.pop(os.wait()[0])
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                result = call()
                with open(out[i], "w", encoding="utf-8") as f:
                    json.dump(result, f)
            except BaseException:  # noqa: BLE001 (the missing result file reports it)
                traceback.print_exc()
                code = 1
            finally:
                os._exit(code)
        running[pid] = i
    while running:
        running.pop(os.wait()[0])
    results = []
    for path in out:
        try:
            with open(path, encoding="utf-8") as f:
                results.append(json.load(f))
        except FileNotFoundError:
            results.append({"error": "the kill point's driver failed (traceback above)"})
    return results


def drive(scenario: Scenario, workdir: str, points: int, seed: int, jobs: int) -> dict:
    """Reference run, then each kill point of the schedule (`jobs` at a time): kill, check the final names, resume, compare."""
    torch.set_num_threads(1)  # forked children must not inherit a running OpenMP pool; one thread per child
    fixtures = os.path.join(workdir, "fixtures")
    os.makedirs(fixtures, exist_ok=True)
    scenario.build(fixtures)
    t0 = time.perf_counter()
    ref = os.path.join(workdir, "reference")
    code, targets = run_forked(lambda: scenario.job(ref))
    if code != 0:
        return {"error": f"the uninterrupted run failed with status {code}"}
    want = scenario.content(ref)
    report = {"writes": [n for n, _ in targets], "events": 2 * len(targets), "reference_s": round(time.perf_counter() - t0, 2)}
    calls = [lambda k=k, e=e, d=d: _point(scenario, os.path.join(workdir, f"kill-{k}"), e, d, targets[(e - 1) // 2][0], want)
             for k, (e, d) in enumerate(schedule(targets, points, seed))]
    report["points"] = _parallel(calls, jobs, workdir)
    report["seconds"] = round(time.perf_counter() - t0, 1)
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m reliability.kill_child")
    p.add_argument("scenario", nargs="+", choices=sorted(scenarios()), help="jobs to kill, one after the other")
    p.add_argument("workdir", help="WORKDIR/<job>/report.json per job")
    p.add_argument("--points", type=int, default=20, help="kill points per job (pairs: all its 22 write events)")
    p.add_argument("--seed", type=int, default=21)
    p.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="kill points run at once")
    a = p.parse_args(argv)
    for name in a.scenario:
        workdir = os.path.join(a.workdir, name)
        os.makedirs(workdir, exist_ok=True)
        report = drive(scenarios()[name], workdir, max(a.points, 22) if name == "pairs" else a.points, a.seed, a.jobs)
        with open(os.path.join(workdir, "report.json"), "w", encoding="utf-8") as f:
            json.dump(report, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
