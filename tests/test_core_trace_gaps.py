"""benchmarks/trace_gaps.py on a small hand-made timeline: the GPU's idle time within the profiled calls, charged to the
host's innermost frame (outside torch and the standard library) and innermost op at each moment; a gap between two
kernels weighs its own length, not the sampling step."""
from __future__ import annotations

import gzip
import json

from benchmarks import trace_gaps


def frame(name, ts, dur, thread=1):
    return {"ph": "X", "cat": "python_function", "name": name, "ts": ts, "dur": dur, "tid": 0, "args": {"Python thread": thread}}


def op(name, ts, dur, cat="cpu_op"):
    return {"ph": "X", "cat": cat, "name": name, "ts": ts, "dur": dur, "tid": 7}


def kernel(ts, dur):
    return {"ph": "X", "cat": "kernel", "name": "k", "ts": ts, "dur": dur, "tid": 99}


EVENTS = [
    frame("benchmarks/profiling.py(70): profile_round", 0, 1000),
    frame("onestep_nodes/generate.py(40): onestep_generate", 100, 300),  # host work: the GPU idles 100..200
    frame("torch/nn/modules/module.py(1): _call_impl", 120, 50),  # torch's own frame: charged to the frame above
    frame("onestep/cuda_graph.py(61): run", 200, 100),
    op("cudaGraphLaunch", 200, 20, "cuda_runtime"),
    kernel(210, 40), kernel(251, 49),  # a 1 µs gap at 250
    frame("onestep_nodes/fast_decode.py(28): fast_decode", 400, 500),
    op("cudaStreamSynchronize", 600, 300, "cuda_runtime"),
    kernel(500, 400),
    frame("tqdm/_monitor.py(69): run", 0, 1000, thread=0),  # another Python thread: ignored
]


def test_idle_time_charged_to_the_host_frame_and_op(tmp_path):
    path = tmp_path / "t.json.gz"
    with gzip.open(path, "wt") as f:
        json.dump({"traceEvents": EVENTS}, f)
    r = trace_gaps.analyse(trace_gaps.load(str(path)), step=5.0)
    # window: the first frame outside the profiler (100) to the last frame or kernel end (900); busy 210..250, 251..300,
    # 500..900
    assert r["window_us"] == 800 and r["busy_us"] == 489 and r["idle_us"] == 311
    idle = {(w["frame"], w["op"]): w["us"] for w in r["idle_by_host"]}
    # 100..200 (torch's frame there folded into it) and 300..400, after the replay returned
    assert idle[("onestep_nodes/generate.py(40): onestep_generate", None)] == 200
    assert idle[("onestep/cuda_graph.py(61): run", "cudaGraphLaunch")] == 10  # 200..210: the launch before the kernels
    assert idle[("onestep/cuda_graph.py(61): run", None)] == 1  # the 1 µs gap between the kernels
    assert idle[("onestep_nodes/fast_decode.py(28): fast_decode", None)] == 100  # 400..500, before its kernel
    assert sum(idle.values()) == r["idle_us"]


def test_reads_a_trace_written_by_profile_round(tmp_path):
    """profile_round(trace=...) writes the round's timeline; on the CPU there are no kernels, so the whole window is idle
    and charged to the profiled function's own frames."""
    import torch

    from benchmarks.profiling import profile_round

    def work():
        return torch.ones(64, 64) @ torch.ones(64, 64)

    path = tmp_path / "round.json.gz"
    r = profile_round(work, 3, trace=str(path))
    assert r["calls"] == 3 and path.stat().st_size > 0
    gaps = trace_gaps.analyse(trace_gaps.load(str(path)))
    assert gaps["busy_us"] == 0 and gaps["idle_us"] == gaps["window_us"] > 0
    assert any("work" in (w["frame"] or "") for w in gaps["idle_by_host"])
