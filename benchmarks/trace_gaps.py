"""Where a profiled round leaves the GPU idle, and what the host was doing meanwhile (issue 20: at batch 1 the fast
end-to-end path kept the GPU busy 48 % of its wall time). Reads a gzipped Chrome trace written by
benchmarks/profiling.py's profile_round(trace=...) (bench_onestep --profile --trace DIR):

    python -m benchmarks.trace_gaps DIR/b1_path2.json.gz [--step-us 5] [--top 25]

The GPU's busy time is the union of its kernels, copies and memsets; every moment outside it, within the profiled
round, is idle. The idle time is sampled every --step-us and charged to the host's innermost Python frame outside torch
and the standard library (the pack's, core's or the benchmark's) at that moment and the innermost torch op or CUDA
runtime call (cudaGraphLaunch, cudaMemcpyAsync, ...), so the table says which lines the GPU waits for."""
from __future__ import annotations

import argparse
import gzip
import json
from collections import Counter

DEVICE_CATS = ("kernel", "gpu_memcpy", "gpu_memset")
# Python frames not worth naming: builtins, torch's internals and the standard library's helpers (the profiler names
# frames relative to their sys.path entry, so core's files show as e.g. "samplers.py(...)")
SKIP = ("<built-in", "torch/", "threading.py", "traceback.py", "contextlib.py", "functools.py", "typing.py", "weakref.py",
        "inspect.py", "logging/", "linecache.py", "enum.py", "abc.py", "tqdm/")


def load(path: str) -> list[dict]:
    with gzip.open(path, "rt") as f:
        return [e for e in json.load(f)["traceEvents"] if e.get("ph") == "X"]


def busy_intervals(events: list[dict]) -> list[tuple[float, float]]:
    """The union of the device's kernel/copy/memset intervals (µs), sorted."""
    spans = sorted((e["ts"], e["ts"] + e["dur"]) for e in events if e.get("cat") in DEVICE_CATS)
    merged: list[list[float]] = []
    for a, b in spans:
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return [(a, b) for a, b in merged]


def idle_samples(busy: list[tuple[float, float]], start: float, end: float, step: float) -> list[tuple[float, float]]:
    """(time, µs) samples of the idle time within [start, end): one at most every `step` µs, each weighing the idle
    time up to the next sample or device interval (a 1 µs gap between two kernels weighs 1 µs)."""
    out, i, t = [], 0, start
    while t < end:
        while i < len(busy) and busy[i][1] <= t:
            i += 1
        if i < len(busy) and busy[i][0] <= t:
            t = busy[i][1]  # skip the busy interval
            continue
        nxt = min(t + step, end, busy[i][0] if i < len(busy) else end)
        out.append((t, nxt - t))
        t = nxt
    return out


def innermost(events: list[dict], times: list[float]) -> list[str | None]:
    """For each (ascending) time, the name of the innermost event of one thread's nested events running then."""
    evs = sorted(events, key=lambda e: (e["ts"], -e["dur"]))
    stack: list[dict] = []
    out, i = [], 0
    for t in times:
        while i < len(evs) and evs[i]["ts"] <= t:
            e = evs[i]
            while stack and stack[-1]["ts"] + stack[-1]["dur"] <= e["ts"]:
                stack.pop()
            stack.append(e)
            i += 1
        while stack and stack[-1]["ts"] + stack[-1]["dur"] <= t:
            stack.pop()
        out.append(stack[-1]["name"] if stack else None)
    return out


def analyse(events: list[dict], step: float = 5.0) -> dict:
    busy = busy_intervals(events)
    frames = [e for e in events if e.get("cat") == "python_function"]
    main_thread = Counter(e.get("args", {}).get("Python thread") for e in frames).most_common(1)[0][0]
    frames = [e for e in frames if e.get("args", {}).get("Python thread") == main_thread]
    ours = [e for e in frames if not e["name"].startswith(SKIP)]
    # the profiled calls: from the first call of the profiled function (profile_round's callee) to the last frame or
    # device event
    called = [e for e in ours if not e["name"].startswith("benchmarks/profiling.py")]
    start = min(e["ts"] for e in called)
    end = max([e["ts"] + e["dur"] for e in called] + [b for _, b in busy])
    times = idle_samples(busy, start, end, step)
    main_tids = Counter(e["tid"] for e in events if e.get("cat") in ("cpu_op", "cuda_runtime"))
    tid = main_tids.most_common(1)[0][0] if main_tids else None
    ops = [e for e in events if e.get("cat") in ("cpu_op", "cuda_runtime") and e["tid"] == tid]
    at = [t for t, _ in times]
    where: Counter = Counter()
    for key, w in zip(zip(innermost(ours, at), innermost(ops, at)), (w for _, w in times)):
        where[key] += w
    busy_us = sum(min(b, end) - max(a, start) for a, b in busy if b > start and a < end)
    return {"window_us": end - start, "busy_us": busy_us, "idle_us": sum(w for _, w in times),
            "idle_by_host": [{"frame": f, "op": o, "us": us} for (f, o), us in where.most_common()]}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trace")
    ap.add_argument("--step-us", type=float, default=5.0)
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args(argv)
    r = analyse(load(args.trace), args.step_us)
    print(f"{args.trace}: window {r['window_us'] / 1000:.2f} ms, GPU busy {r['busy_us'] / 1000:.2f} ms, "
          f"idle {r['idle_us'] / 1000:.2f} ms ({r['idle_us'] / max(r['window_us'], 1e-9):.0%})")
    print("| idle ms | host frame (innermost outside torch and the standard library) | innermost op or CUDA call |\n|---|---|---|")
    for w in r["idle_by_host"][:args.top]:
        print(f"| {w['us'] / 1000:.2f} | {w['frame']} | {w['op']} |")
    return r


if __name__ == "__main__":
    main()
