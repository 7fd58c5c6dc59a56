"""Profiling shared by the speed benchmarks: a profiled run of a path (wall time against GPU kernel time, the host calls
that wait on the GPU, kernels by category) and the kernel-name categories (probe_unet_speed's tables use them too)."""
from __future__ import annotations

import time

import torch


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


TRITON_FUSED = "triton fused pointwise/norm"
# Kernel name → category, first match wins. Inductor names its fused kernels after the ops they absorb
# ("triton_poi_fused_convolution_…"), so those are told apart by prefix first (category()); attention comes before
# convolution and gemm because flash/fmha/cuDNN-SDPA kernels also carry "cutlass" or "cudnn" in their names.
CATEGORIES = (
    ("attention", ("flash", "fmha", "sdpa", "attention")),
    ("eager pointwise/norm", ("elementwise", "reduce_kernel", "norm", "moments", "fusedparams", "softmax", "catarray", "upsample")),
    ("convolution", ("conv", "fprop", "dgrad", "wgrad", "implicit_gemm", "winograd", "nchwtonhwc", "nhwctonchw", "cudnn")),
    ("gemm/matmul", ("gemm", "cutlass", "cublas", "nvjet", "matmul", "::mm", "addmm", "bmm", "linear")),
    ("memcpy/memset", ("memcpy", "memset", "copy_")),
    (TRITON_FUSED, ("triton_",)),
)


def category(name: str) -> str:
    n = name.lower()
    if n.startswith(("triton_poi", "triton_per", "triton_red")):
        return TRITON_FUSED
    return next((cat for cat, parts in CATEGORIES if any(p in n for p in parts)), "other")


# Host-side calls that can make the CPU wait for the GPU (the sampling loop cannot queue the next step's kernels
# meanwhile); cudaMemcpyAsync is among them because a copy to or from pageable memory blocks the host all the same
SYNC_OPS = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize", "aten::_local_scalar_dense", "aten::item",
            "cudaMemcpy", "cudaMemcpyAsync")
TOP_OPS = 15


def _python_caller(event, frames: int = 4) -> str:
    """The innermost Python frames outside torch of a profiler event (or of the nearest op above it that has them)."""
    while event is not None:
        stack = [f for f in (event.stack or []) if "torch/" not in f and not f.startswith("<built-in")]
        if stack:
            return " < ".join(stack[:frames])
        event = event.cpu_parent
    return "(no Python frame)"


def profile_round(fn, calls: int = 1, trace: str | None = None) -> dict:
    """`calls` calls of fn under torch.profiler: wall time, GPU kernel time (so the GPU's idle share) and the kernels'
    time per category, the host ops that wait on the GPU with the Python lines that called them, and the top host ops
    by self time. Issue 20: bench_pairs' compiled round was ~96 ms per batch of 8 longer than its 25 UNet calls;
    bench_onestep's end-to-end rows at batch 1 are ~2 ms over the ≤ 15 ms target. Totals over the calls. `trace`: also
    write the round's timeline there as a gzipped Chrome trace (kernels, runtime calls and Python frames; read it with
    benchmarks/trace_gaps.py to see what the host was doing while the GPU idled)."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    cuda = torch.cuda.is_available()
    getattr(fn, "prepare", lambda: None)()
    sync()
    activities = [ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if cuda else [])]
    try:  # verbose: the events carry their Python stacks (key_averages' group_by_stack_n comes back empty on torch 2.14)
        config = {"experimental_config": torch._C._profiler._ExperimentalConfig(verbose=True)}
    except (AttributeError, TypeError):
        config = {}
    with profile(activities=activities, with_stack=True, **config) as prof:
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        sync()
        wall = time.perf_counter() - t0
    if trace:
        prof.export_chrome_trace(trace)  # a path ending in .gz is written gzipped
    events = prof.key_averages()
    kernels: dict[str, float] = {}  # seconds per kernel category
    for e in events if cuda else ():
        if e.device_type == DeviceType.CUDA:
            kernels[category(e.key)] = kernels.get(category(e.key), 0.0) + e.self_device_time_total / 1e6
    kernel_s = sum(kernels.values())
    host = sorted((e for e in events if e.device_type == DeviceType.CPU), key=lambda e: -e.self_cpu_time_total)
    waits: dict[str, dict] = {}
    for e in prof.events():
        if e.name not in SYNC_OPS:
            continue
        w = waits.setdefault(e.name, {"count": 0, "ms": 0.0, "callers": {}})
        w["count"] += 1
        w["ms"] += e.self_cpu_time_total / 1000
        caller = w["callers"].setdefault(_python_caller(e), [0, 0.0])
        caller[0] += 1
        caller[1] += e.self_cpu_time_total / 1000
    for w in waits.values():
        w["callers"] = [{"stack": k, "count": n, "ms": ms} for k, (n, ms) in sorted(w["callers"].items(), key=lambda kv: -kv[1][1])[:5]]
    return {"calls": calls, "wall_s": wall, "gpu_kernel_s": kernel_s,
            "gpu_categories_s": dict(sorted(kernels.items(), key=lambda kv: -kv[1])), "gpu_idle_share": 1 - kernel_s / wall if cuda else None,
            "host_waits": waits,
            "top_host_ops": [{"name": e.key, "count": e.count, "self_ms": e.self_cpu_time_total / 1000} for e in host[:TOP_OPS]]}
