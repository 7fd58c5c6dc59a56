"""GPU probe: which speed settings bring the teacher's raw SD1.5 UNet call under its target time?

During pair collection the teacher calls the UNet at batch 16 (cond + uncond of 8 pairs) on 64×64 fp16 latents
(512² images); torch.compile (mode "default") + a CUDA graph takes it to ~38.7 ms on an H200, and the target is
≤ 32 ms. This probe times that one call, `diffusion_model(x, t, context)` of an SD1.5-architecture UNet with random
weights (tools/fixtures.py), under each setting in turn: eager (as ComfyUI calls it), cudnn.benchmark, channels_last,
each SDPA backend forced, a CUDA graph of the eager call, and torch.compile + CUDA graph (onestep.cuda_graph.GraphCache,
the fast teacher's own replay) plain, with cudnn.benchmark, with channels_last, with the inductor options diffusers
recommends for SD, and with mode "max-autotune-no-cudagraphs" (slow to compile: last, and skipped when it would pass
--time-budget). Each variant restores what it changed and compiles afresh (torch._dynamo.reset between them); one
variant's failure is recorded and the rest run. Times: median ms per call over --iters CUDA-synchronised calls after
--warmup, under torch.inference_mode. A torch.profiler run of 5 calls of the compiled variant (eager if that failed)
gives the top kernels and CUDA time per kernel category.

Usage (run from the repo root):
    PYTHONPATH=$PWD:<ComfyUI tree> python -m benchmarks.probe_unet_speed [--iters 50] [--warmup 5]
                                                                      [--time-budget 520] [--out F.json] [--only REGEX]
    PYTHONPATH=$PWD:<ComfyUI tree> python -m benchmarks.probe_unet_speed --tiny --out F.json
--tiny is a CPU smoke run of the same code (the tests' tiny SD1.5-family UNet, batch 2, 16×16 latents, few calls):
the variants that need CUDA are reported as skipped, and the profile lists CPU ops instead of kernels.
The JSON (--out) is rewritten atomically after each variant, so a run cut short keeps what it measured.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shlex
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from benchmarks.profiling import TRITON_FUSED, category  # noqa: F401  (TRITON_FUSED: the tests read it here)
from onestep.atomic import atomic_write

BATCH, LATENT, STEPS = 16, 64, 25  # cond + uncond of 8 pairs, 512² images, euler steps per pair
TINY_BATCH, TINY_LATENT = 2, 16
INDUCTOR_SD = {  # the inductor settings diffusers recommends for SD UNets
    "conv_1x1_as_mm": True, "coordinate_descent_tuning": True, "epilogue_fusion": False,
    "coordinate_descent_check_all_directions": True,
}
FREEZING = {"freezing": True}
SDPA_BACKENDS = {"flash": "FLASH_ATTENTION", "efficient": "EFFICIENT_ATTENTION", "cudnn": "CUDNN_ATTENTION"}
PROFILE_CALLS, TOP_KERNELS = 5, 20
@dataclass
class Setup:
    """The UNet and the call's inputs; a setting may swap `inputs` (channels_last x) and restores them after."""
    unet: torch.nn.Module
    inputs: dict[str, torch.Tensor]
    attention: str  # ComfyUI's attention function: the SDPA variants mean something only for attention_pytorch

    @property
    def cuda(self) -> bool:
        return self.inputs["x"].device.type == "cuda"

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()


@dataclass
class Variant:
    name: str
    runner: Callable  # (setup, key) -> context manager yielding the zero-argument call to time
    settings: tuple = ()  # (setup) -> context managers changing global state for the variant, restoring it on exit
    cuda: bool = False
    sdpa: bool = False
    compiled: bool = False
    estimate_s: float = 5.0  # rough H200 seconds (compile included), for --time-budget
    profile: bool = False
    note: str = ""
    config: dict = field(default_factory=dict)


def unet_fn(unet):
    def fn(x, t, context):  # a fresh options dict per call, as the teacher's model_call gives: the UNet writes into it
        return unet(x, t, context=context, transformer_options={})
    return fn


@contextlib.contextmanager
def eager(s: Setup, key: str):
    fn = unet_fn(s.unet)
    yield lambda: fn(**s.inputs)


def graphed(mode: str | None):
    """A runner replaying `fn` from a CUDA graph (compiled first with `mode`), in a cache of its own so no variant
    replays another's graph; the graph and dynamo's compiled code are dropped afterwards."""
    @contextlib.contextmanager
    def runner(s: Setup, key: str):
        from onestep.cuda_graph import GraphCache
        cache, fn = GraphCache(max_entries=1), unet_fn(s.unet)
        try:
            yield lambda: cache.run(key, fn, s.inputs, mode)
        finally:
            cache.clear()
            if mode:
                torch._dynamo.reset()
            torch.cuda.empty_cache()
    return runner


@contextlib.contextmanager
def cudnn_benchmark(s: Setup):
    old = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = old


@contextlib.contextmanager
def channels_last(s: Setup):
    x = s.inputs["x"]
    s.unet.to(memory_format=torch.channels_last)  # converts the 4-D (conv) weights only
    s.inputs["x"] = x.contiguous(memory_format=torch.channels_last)
    try:
        yield
    finally:
        s.unet.to(memory_format=torch.contiguous_format)
        s.inputs["x"] = x


def sdpa_only(backend: str):
    def setting(s: Setup):
        from torch.nn.attention import SDPBackend, sdpa_kernel
        return sdpa_kernel(getattr(SDPBackend, SDPA_BACKENDS[backend]))
    return setting


def inductor_sd(s: Setup):
    import torch._inductor.config as inductor_config
    return inductor_config.patch(INDUCTOR_SD)


def freezing(s: Setup):
    """Inductor's freezing: the (inference-only) weights become constants, so it can fold and pre-lay them out
    (conv weights channels-last once, not per call)."""
    import torch._inductor.config as inductor_config
    return inductor_config.patch(FREEZING)


@contextlib.contextmanager
def subpixel(s: Setup):
    """The UNet's upsampling levels in sub-pixel form (onestep_nodes/subpixel_views.py), as the compiled fast paths
    run them: one 2×2 convolution with four output phases in place of nearest ×2 then a 3×3 convolution."""
    from onestep_nodes.subpixel_views import unet_view

    unet = s.unet
    s.unet = unet_view(unet).module
    try:
        yield
    finally:
        s.unet = unet


def variants() -> list[Variant]:
    compiled = dict(cuda=True, compiled=True, estimate_s=90.0)
    default = graphed("default")
    return [
        Variant("eager", eager, note="as ComfyUI calls it"),
        Variant("eager + cudnn.benchmark", eager, (cudnn_benchmark,), cuda=True),
        Variant("eager + channels_last", eager, (channels_last,)),
        Variant("eager + subpixel", eager, (subpixel,), note="the UNet's upsampling as one 2×2 convolution per level"),
        *(Variant(f"eager + SDPA {b} only", eager, (sdpa_only(b),), cuda=True, sdpa=True) for b in SDPA_BACKENDS),
        Variant("cuda graph (eager)", graphed(None), cuda=True, estimate_s=15.0),
        Variant("compile default + graph", default, profile=True, **compiled),
        Variant("compile default + graph + freezing", default, (freezing,), config=FREEZING, **compiled),
        Variant("cuda graph (eager) + subpixel", graphed(None), (subpixel,), cuda=True, estimate_s=15.0),
        Variant("compile default + graph + freezing + subpixel", default, (freezing, subpixel), config=FREEZING, **compiled),
        Variant("compile default + graph + freezing + inductor SD options + channels_last", default,
                (freezing, inductor_sd, channels_last), config={**FREEZING, **INDUCTOR_SD}, **{**compiled, "estimate_s": 240.0}),
        Variant("compile default + graph + cudnn.benchmark", default, (cudnn_benchmark,), **compiled),
        Variant("compile default + graph + channels_last", default, (channels_last,), **compiled),
        Variant("compile default + graph + inductor SD options", default, (inductor_sd,), config=INDUCTOR_SD,
                **{**compiled, "estimate_s": 240.0}),
        Variant("compile max-autotune-no-cudagraphs + graph", graphed("max-autotune-no-cudagraphs"),
                **{**compiled, "estimate_s": 400.0}),
        Variant("compile max-autotune-no-cudagraphs + graph + freezing + inductor SD options + channels_last",
                graphed("max-autotune-no-cudagraphs"), (freezing, inductor_sd, channels_last),
                config={**FREEZING, **INDUCTOR_SD}, **{**compiled, "estimate_s": 400.0}),
    ]


def skip_reason(v: Variant, s: Setup, rows: list[dict], elapsed: float, budget: float,
                only: str = "") -> str | None:
    if only and not re.search(only, v.name):
        return "not matched by --only"
    if v.cuda and not s.cuda:
        return "needs CUDA"
    if v.sdpa and s.attention != "attention_pytorch":
        return f"the UNet's attention is {s.attention}, not SDPA"
    if elapsed + estimate(v, rows) > budget:
        return f"budget ({elapsed:.0f} s spent, ~{estimate(v, rows):.0f} s more, budget {budget:.0f} s)"
    return None


def estimate(v: Variant, rows: list[dict]) -> float:
    """A compiled variant's guess scales with how much slower than its guess the first compile here was."""
    first = next((r for r in rows if r.get("compiled") and r.get("first_call_s")), None)
    return v.estimate_s * (max(1.0, first["first_call_s"] / first["estimate_s"]) if first and v.compiled else 1.0)


def timed_calls(call, s: Setup, n: int) -> list[float]:
    times = []
    for _ in range(n):
        s.sync()
        t0 = time.perf_counter()
        call()
        s.sync()
        times.append(time.perf_counter() - t0)
    return times


@contextlib.contextmanager
def variant_call(v: Variant, s: Setup):
    """The variant's call, with its settings in force until the block ends (then undone, in reverse order)."""
    with contextlib.ExitStack() as stack:
        for setting in v.settings:
            stack.enter_context(setting(s))
        yield stack.enter_context(v.runner(s, v.name))


def measure(v: Variant, s: Setup, iters: int, warmup: int) -> dict:
    """Time one variant: its first call (compile/capture) apart, then the median of `iters` after `warmup`; with
    v.profile, also profile it before its state is undone."""
    with variant_call(v, s) as call, torch.inference_mode():
        first = timed_calls(call, s, 1)[0]
        for _ in range(warmup):
            call()
        ms = sorted(t * 1000 for t in timed_calls(call, s, iters))
        profile = kernel_profile(call, s) if v.profile else None
    row = {"ms": statistics.median(ms), "ms_min": ms[0], "ms_p90": ms[int(0.9 * (len(ms) - 1))], "first_call_s": first}
    if profile and profile["ms_per_call"] < 0.5 * row["ms"]:  # the graph's own kernels went untraced: only its copies
        return {**row, "profile_dropped": f"kernels traced cover {profile['ms_per_call']:.2f} of {row['ms']:.2f} ms per call"}
    return {**row, "profile": profile} if profile else row


def eager_profile(s: Setup, warmup: int) -> dict | None:
    with variant_call(Variant("eager", eager), s) as call, torch.inference_mode():
        for _ in range(warmup + 1):
            call()
        return kernel_profile(call, s)


def kernel_profile(call, s: Setup) -> dict | None:
    """Self time per kernel (CUDA) or per op (CPU) over PROFILE_CALLS calls, or None when nothing was recorded."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    kind = DeviceType.CUDA if s.cuda else DeviceType.CPU
    with profile(activities=[ProfilerActivity.CUDA if s.cuda else ProfilerActivity.CPU]) as prof:
        for _ in range(PROFILE_CALLS):
            call()
        s.sync()
    spent = {}
    for e in prof.key_averages():
        us = e.self_device_time_total if s.cuda else e.self_cpu_time_total
        if e.device_type == kind and us > 0:
            spent[e.key] = (us, e.count)
    total = sum(us for us, _ in spent.values())
    if not total:
        return None
    top = sorted(spent.items(), key=lambda kv: -kv[1][0])[:TOP_KERNELS]
    groups: dict[str, float] = {}
    for name, (us, _) in spent.items():
        groups[category(name)] = groups.get(category(name), 0.0) + us
    def ms_per_call(us: float) -> float:
        return us / 1000 / PROFILE_CALLS
    return {
        "unit": "CUDA kernels" if s.cuda else "CPU ops", "calls": PROFILE_CALLS, "ms_per_call": ms_per_call(total),
        "top": [{"name": n, "count": c, "ms_per_call": ms_per_call(us), "share": us / total, "category": category(n)}
                for n, (us, c) in top],
        "categories": {g: {"ms_per_call": ms_per_call(us), "share": us / total} for g, us in sorted(groups.items(), key=lambda kv: -kv[1])},
    }


def load_unet(tiny: bool, work: str):
    """(diffusion_model, dtype, device) of bench_pairs' teacher, loaded onto the device as ComfyUI loads it."""
    import comfy.model_management as mm

    from benchmarks.bench_pairs import load_teacher_unet

    model = load_teacher_unet(tiny, work)
    mm.load_models_gpu([model])
    return model.model.diffusion_model, model.model.get_dtype(), mm.get_torch_device()


def make_setup(tiny: bool, work: str) -> Setup:
    from comfy.ldm.modules import attention

    unet, dtype, dev = load_unet(tiny, work)
    batch, size = (TINY_BATCH, TINY_LATENT) if tiny else (BATCH, LATENT)
    inputs = {"x": torch.randn(batch, 4, size, size, device=dev, dtype=dtype),
              "t": torch.full((batch,), 999.0, device=dev),
              "context": torch.randn(batch, 77, 768, device=dev, dtype=dtype)}
    return Setup(unet, inputs, attention.optimized_attention.__name__)


def run_variant(v: Variant, s: Setup, rows: list[dict], args, start: float) -> dict:
    row = {"variant": v.name, "compiled": v.compiled, "estimate_s": v.estimate_s, "note": v.note,
           **({"inductor_config": v.config} if v.config else {})}
    reason = skip_reason(v, s, rows, time.perf_counter() - start, args.time_budget, args.only)
    if reason:
        return {**row, "status": "skipped", "reason": reason}
    progress(start, f"{v.name}: running")
    try:
        return {**row, "status": "ok", **measure(v, s, args.iters, args.warmup)}
    except Exception as e:  # one setting failing (a backend without a kernel, a compile error) must not end the probe
        return {**row, "status": "error", "reason": first_line(e)}


def first_line(e: Exception) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0]}" if text else type(e).__name__


def progress(start: float, text: str) -> None:
    print(f"[probe {time.perf_counter() - start:6.1f} s] {text}", flush=True)


def summary(row: dict) -> str:
    if row["status"] != "ok":
        return f"{row['status']}: {row['reason']}"
    return f"{row['ms']:.2f} ms per call (min {row['ms_min']:.2f}, p90 {row['ms_p90']:.2f}), first call {row['first_call_s']:.1f} s"


def write_json(path: str, info: dict) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(info, f, indent=1)
    atomic_write(path, write)  # tmp then os.replace: a run cut mid-write keeps the previous variant's file


def print_tables(info: dict) -> None:
    rows, pairs, steps = info["rows"], info["settings"]["pairs"], info["settings"]["steps"]
    eager_ms = next((r["ms"] for r in rows if r["variant"] == "eager" and r["status"] == "ok"), None)
    print(f"\n| variant | ms per call | × eager | pairs/s at batch {pairs} × {steps} steps | compile s | note |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        if r["status"] != "ok":
            print(f"| {r['variant']} | — | — | — | — | {r['status']}: {r['reason']} |")
            continue
        speed = f"{eager_ms / r['ms']:.2f}" if eager_ms else "—"
        compile_s = f"{r['first_call_s']:.1f}" if r["compiled"] or "graph" in r["variant"] else "—"
        print(f"| {r['variant']} | {r['ms']:.2f} | {speed} | {pairs / (steps * r['ms'] / 1000):.2f} | {compile_s} | {r['note']} |")
    print("\ncompile s: the graph variants' first call (compile, GraphCache's warm-up calls, capture); "
          f"pairs/s = {pairs} / ({steps} × ms / 1000)")
    p = info.get("profile")
    if not p:
        print("\nno profile recorded")
        return
    print(f"\nprofile of {p['variant']}: {p['unit']}, {p['calls']} calls, {p['ms_per_call']:.2f} ms per call of self time")
    print("\n| kernel | count | ms per call | share | category |\n|---|---|---|---|---|")
    for k in p["top"]:
        name = k["name"] if len(k["name"]) <= 100 else k["name"][:97] + "..."
        print(f"| `{name}` | {k['count']} | {k['ms_per_call']:.3f} | {k['share']:.1%} | {k['category']} |")
    print("\n| category | ms per call | share |\n|---|---|---|")
    for g, c in p["categories"].items():
        print(f"| {g} | {c['ms_per_call']:.3f} | {c['share']:.1%} |")


def attach_profile(info: dict, s: Setup, args) -> None:
    """The compiled variant's profile if it ran, else (compile failed or skipped, or a graph replay showed no
    kernels) a profile of the eager call, marked as such."""
    row = next((r for r in info["rows"] if r.get("profile")), None)
    if row:
        info["profile"] = {"variant": row["variant"], **row.pop("profile")}
        return
    progress(args.start, "profiling the eager call")
    try:
        profile = eager_profile(s, args.warmup)
    except Exception as e:  # the profile is a detail: its failure must not lose the timings
        profile, info["profile_error"] = None, first_line(e)
    if profile:
        info["profile"] = {"variant": "eager (the compiled variant gave no profile)", **profile}


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=None, help="timed calls per variant (default 50; --tiny: 5)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed calls after the first (default 5; --tiny: 1)")
    ap.add_argument("--time-budget", type=float, default=520.0, help="seconds; variants that would pass it are skipped")
    ap.add_argument("--out", default="", help="JSON file, rewritten after each variant")
    ap.add_argument("--only", default="", metavar="REGEX",
                    help="run only the variants whose names this regular expression matches (re.search; the rest are "
                         "listed as skipped), in the probe's order")
    ap.add_argument("--tiny", action="store_true", help="CPU smoke run: tiny UNet, batch 2, 16×16 latents")
    args = ap.parse_args(argv)
    args.start = time.perf_counter()
    args.iters = args.iters or (5 if args.tiny else 50)
    args.warmup = (1 if args.tiny else 5) if args.warmup is None else args.warmup
    import comfy.cli_args

    if args.tiny:
        comfy.cli_args.args.cpu = True  # before model_management picks the device
    command = "python -m benchmarks.probe_unet_speed " + " ".join(shlex.quote(a) for a in argv)
    with tempfile.TemporaryDirectory() as work:  # the random UNet's file, for as long as its weights may map it
        return probe(make_setup(args.tiny, work), args, command)


def probe(s: Setup, args, command: str) -> dict:
    x = s.inputs["x"]
    info = {
        "command": command, "torch": torch.__version__, "device": torch.cuda.get_device_name(x.device) if s.cuda else "cpu",
        "dtype": str(x.dtype),
        "settings": {"batch": x.shape[0], "pairs": x.shape[0] // 2, "latent": list(x.shape[1:]), "steps": STEPS,
                     "iters": args.iters, "warmup": args.warmup, "time_budget_s": args.time_budget, "tiny": args.tiny,
                     "attention": s.attention, "cudnn_benchmark_at_start": torch.backends.cudnn.benchmark,
                     "cudnn_version": torch.backends.cudnn.version() if s.cuda else None},
        "rows": [],
    }
    progress(args.start, f"{info['device']}, {info['dtype']}, x {tuple(x.shape)}, attention {s.attention}")
    for v in variants():
        row = run_variant(v, s, info["rows"], args, args.start)
        info["rows"].append(row)
        progress(args.start, f"{v.name}: {summary(row)}")
        if args.out:
            write_json(args.out, {**info, "elapsed_s": time.perf_counter() - args.start})
    attach_profile(info, s, args)
    info["elapsed_s"] = time.perf_counter() - args.start
    if args.out:
        write_json(args.out, info)
    print_tables(info)
    print(f"\n{command}", flush=True)
    return info


if __name__ == "__main__":
    main()
