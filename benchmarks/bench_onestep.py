"""GPU benchmark: one-step generation paths vs the teacher, on an SD1.5 (512²) or SDXL (1024², --arch sdxl)
architecture UNet + SD VAE with random weights (fp16; benchmarks/onestep_models.py builds them).

Rows per batch: the pack's One-Step Generate node in each fast mode (CUDA graph; torch.compile + CUDA graph; off =
core's sampling machinery), the fast path's own call run eagerly (what the graph captures, no graph), ComfyUI's own
one-step path today (what core's SamplerCustom node does: noise, preview callback, sample_custom with one euler step
from σ_max, as SD-Turbo is run), the raw UNet call (eager and as a CUDA graph), core VAE Decode vs the pack's VAE
Decode (fast), end to end, and the teacher through core's KSampler node (25 euler steps, CFG 7.5). Each group of paths
is timed round-robin (one call of each per round, medians), so clock drift hits all alike; a compiled mode's first
call (the compile) is reported as first_call_s, not timed. It also checks that the fast paths agree with core's.
--time-budget bounds the run: a group whose estimate would pass it is recorded as skipped (the compiles are the long
part). --tiny: the same code paths on the CPU with the tests' reduced-width UNets (no CUDA rows), for the unit test.
Usage (run from the repo root):
    python -m benchmarks.bench_onestep --comfy <ComfyUI tree> --arch sdxl [--batches 1 4] [--time-budget 480] [--profile] [--out r.json]
    python -m benchmarks.bench_onestep --comfy <ComfyUI tree> --arch sdxl --tiny      # CPU check, seconds
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import tempfile
import time

import torch

from benchmarks.profiling import profile_round

GRAPH, COMPILED, OFF = "cuda graph", "compile + cuda graph (slow first run)", "off"
AUTOTUNED = "max-autotune compile + cuda graph (minutes on first run)"
PROFILE_CALLS = 10  # --profile: the end-to-end calls of each path profiled together (one at batch 1 is ~17 ms)


def sync() -> None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def round_robin(paths: dict, rounds: int, warmup: int = 3) -> dict[str, float]:
    """Median ms per path, one synchronised call of each path per round."""
    for fn in paths.values():
        for _ in range(warmup):
            fn()
    sync()
    times = {name: [] for name in paths}
    for _ in range(rounds):
        for name, fn in paths.items():
            t0 = time.perf_counter()
            fn()
            sync()
            times[name].append((time.perf_counter() - t0) * 1000)
    return {name: statistics.median(v) for name, v in times.items()}


def graphed(fn):
    """fn captured into a CUDA graph (static inputs), returned as a replay function."""
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        out = fn()
    return lambda: (g.replay(), out)[1]


def timed_first_call(fn) -> float:
    t0 = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - t0


class Budget:
    """Seconds left of --time-budget since the start (model building included)."""

    def __init__(self, seconds: float):
        self.seconds, self.t0 = seconds, time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def allows(self, estimate_s: float) -> bool:
        return self.elapsed() + estimate_s <= self.seconds


def parse(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", choices=("sd15", "sdxl"), default="sd15")
    ap.add_argument("--comfy", default=None, help="ComfyUI tree to import (put first on sys.path); default: already importable")
    ap.add_argument("--tiny", action="store_true", help="CPU check: reduced-width UNet, 64² images, no CUDA rows")
    ap.add_argument("--batches", type=int, nargs="+", default=None, help="default: 1 8 (sd15), 1 4 (sdxl), 1 (tiny)")
    ap.add_argument("--size", type=int, default=None, help="image size; default: 512 (sd15), 1024 (sdxl), 64 (tiny)")
    ap.add_argument("--teacher-steps", type=int, default=25)
    ap.add_argument("--rounds", type=int, default=None, help="round-robin rounds; default 15 (1 with --tiny)")
    ap.add_argument("--no-compile", action="store_true", help="leave out the compiled modes")
    ap.add_argument("--autotune-batches", type=int, nargs="*", default=[], help="batches that also run VAE Decode (fast) in max-autotune mode (minutes to compile)")
    ap.add_argument("--time-budget", type=float, default=480.0, help="seconds for the whole run; groups that would pass it are skipped")
    ap.add_argument("--compile-estimate", type=float, default=240.0, help="seconds assumed for a first compile until one is measured")
    ap.add_argument("--profile", action="store_true", help=(
        f"after the timings, {PROFILE_CALLS} more calls of each end-to-end path under torch.profiler: wall time against "
        "GPU kernel time (the GPU's idle share), the kernels by category, the host calls that wait on the GPU"))
    ap.add_argument("--trace", default=None, metavar="DIR", help=(
        "with --profile: also write each profiled end-to-end path's timeline into DIR as a gzipped Chrome trace "
        "(benchmarks/trace_gaps.py reads where the GPU idled and what the host did meanwhile)"))
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    if args.trace:
        os.makedirs(args.trace, exist_ok=True)
    from benchmarks.onestep_models import ARCHS
    args.batches = args.batches or ([1] if args.tiny else [1, 8] if args.arch == "sd15" else [1, 4])
    args.size = args.size or (64 if args.tiny else ARCHS[args.arch])
    args.rounds = args.rounds or (1 if args.tiny else 15)
    return args


def import_host(args):
    """ComfyUI's modules (CPU-only under --tiny) and the pack's node classes by id."""
    if args.comfy:
        sys.path.insert(0, os.path.abspath(args.comfy))
    import comfy.cli_args

    comfy.cli_args.args.cpu = comfy.cli_args.args.cpu or args.tiny or not torch.cuda.is_available()
    import comfy.utils
    import onestep_nodes

    comfy.utils.PROGRESS_BAR_ENABLED = False  # no tqdm output in timings (ComfyUI's server sets the same hook-less bar)
    return {cls.__name__: cls for cls in onestep_nodes.load_node_modules()}


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse(argv)
    budget = Budget(args.time_budget)
    nodes = import_host(args)
    import comfy.model_management as mm
    import folder_paths

    from benchmarks.onestep_models import build

    with tempfile.TemporaryDirectory() as tmp:  # the generator files (1.7 GB at full size), removed however the run ends
        folder_paths.add_model_folder_path("onestep", tmp)
        m = build(args.arch, args.tiny, args.size, tmp, nodes)
        cuda = mm.get_torch_device().type == "cuda"
        modes = () if not cuda else (GRAPH,) if args.no_compile else (GRAPH, COMPILED)
        info = {"command": "python -m benchmarks.bench_onestep " + shlex.join(argv), "arch": args.arch, "tiny": args.tiny,
                "device": torch.cuda.get_device_name() if cuda else "cpu", "torch": torch.__version__,
                "unet_dtype": str(m.ours.model.get_dtype()), "teacher_dtype": str(m.core.model.get_dtype()), "vae_dtype": str(m.vae.vae_dtype), "size": args.size,
                "build_s": round(budget.elapsed(), 1), "rows": [], "skipped": [], "first_call_s": {}, "checks": {}, "profiles": []}
        state = {"compile_s": args.compile_estimate}
        with torch.inference_mode():
            for b in args.batches:
                run_batch(args, nodes, m, b, modes, budget, info, state)
        print_report(info)
        if args.out:
            with open(args.out, "w") as f:
                json.dump(info, f, indent=1)
    return info


def run_batch(args, nodes, m, b, modes, budget, info, state) -> None:
    import comfy.model_management as mm
    import comfy.sample
    import comfy.samplers
    import latent_preview
    import nodes as core_nodes

    from onestep_nodes import fast_path, generate

    gen, dec = nodes["OneStepGenerate"], nodes["OneStepVAEDecode"]
    lat = args.size // 8
    empty = torch.zeros(b, 4, lat, lat)
    sigma_max = float(m.core.get_model_object("model_sampling").sigma_max)
    euler = comfy.samplers.KSAMPLER(comfy.samplers.ksampler("euler").sampler_function)
    ms, first = {}, info["first_call_s"]

    def skip(what: str, estimate: float) -> bool:
        if budget.allows(estimate):
            return False
        info["skipped"].append({"batch": b, "what": what, "reason": f"{budget.elapsed():.0f} s + ~{estimate:.0f} s would pass --time-budget {args.time_budget:g} s"})
        return True

    def node(mode):
        return lambda: gen.execute(m.ours, m.positive, 0, args.size, args.size, b, fast=mode)[0]["samples"]

    def eager_fast():  # the fast path's call without the graph: call_inputs + apply_model, core's steps around it
        noise = comfy.sample.prepare_noise(empty, 0)
        return generate.one_call_latents(m.ours, generate.onestep_sigmas(m.ours), noise, empty,
                                         lambda x, s: fast_path.eager_denoise(m.ours, m.positive, s, x.to(mm.get_torch_device())))

    def core_samplercustom():  # the body of core's SamplerCustom node
        noise = comfy.sample.prepare_noise(empty, 0)
        cb = latent_preview.prepare_callback(m.core, 1)
        return comfy.sample.sample_custom(m.core, noise, 1.0, euler, torch.tensor([sigma_max, 0.0]), m.positive, m.negative, empty,
                                          callback=cb, disable_pbar=True, seed=0)

    def teacher():  # core's KSampler node
        return core_nodes.KSampler().sample(m.core, 0, args.teacher_steps, 7.5, "euler", "normal", m.positive, m.negative,
                                            {"samples": empty})[0]["samples"]

    mm.load_models_gpu([m.ours, m.vae.patcher])
    dev, dtype = mm.get_torch_device(), m.ours.model.get_dtype()
    x = torch.randn(b, 4, lat, lat, device=dev, dtype=dtype)
    inputs = fast_path.call_inputs(m.ours, m.positive, sigma_max, x)
    extra = {"y": inputs["y"].to(dtype)} if "y" in inputs else {}
    ctx, t = inputs["context"].to(dtype), torch.full((b,), 999.0, device=dev, dtype=dtype)
    unet = m.ours.model.diffusion_model

    def raw_unet():
        return unet(x, t, context=ctx, **extra)

    ref = node(OFF)()
    scale = float(ref.abs().max())
    z = ref.to(m.vae.device, m.vae.vae_dtype)
    flops = model_flops(raw_unet, lambda: m.vae.first_stage_model.decode(z))
    info.setdefault("model_flops", {})[f"batch {b}"] = flops
    checks = info["checks"]
    checks[f"batch {b}: fast path's call run eagerly vs fast=off, max |Δ| / max |x|"] = float((eager_fast() - ref).abs().max()) / scale
    ready = []
    for mode in modes:
        if mode == COMPILED and skip(f"One-Step Generate fast={mode}", state["compile_s"]):
            continue
        first[f"batch {b}: One-Step Generate fast={mode}"] = s = round(timed_first_call(node(mode)), 2)
        state["compile_s"] = s if mode == COMPILED else state["compile_s"]
        checks[f"batch {b}: One-Step Generate {mode} vs fast=off, max |Δ| / max |x|"] = float((node(mode)() - ref).abs().max()) / scale
        ready.append(mode)
    checks[f"batch {b}: One-Step Generate vs core SamplerCustom from σ_max, max |Δ| / max |x| (σ_t·z vs core's sqrt(1+σ²)·z)"] = float((ref - core_samplercustom()).abs().max()) / scale
    paths = {f"One-Step Generate, fast={mode}": node(mode) for mode in ready}
    paths.update({"One-Step Generate, fast=off (core machinery)": node(OFF), "fast path's call, eager (no graph)": eager_fast,
                  "core SamplerCustom node path, 1 euler step from σ_max": core_samplercustom, "raw UNet call, eager": raw_unet})
    if modes:
        paths["raw UNet call, CUDA graph"] = graphed(raw_unet)
    ms.update(round_robin(paths, args.rounds, warmup=1 if args.tiny else 3))

    decode = {mode: (lambda mode=mode: dec.execute({"samples": ref}, m.vae, mode)[0]) for mode in (GRAPH, COMPILED, AUTOTUNED, OFF)}
    decode_ready = []
    for mode in (*modes, *((AUTOTUNED,) if modes and b in args.autotune_batches and COMPILED in modes else ())):
        if mode != GRAPH and skip(f"VAE Decode (fast) {mode}", state["compile_s"]):
            continue
        first[f"batch {b}: VAE Decode (fast) {mode}"] = round(timed_first_call(decode[mode]), 2)
        checks[f"batch {b}: VAE Decode (fast) {mode} vs core decode, max |Δ| (0..1 pixels)"] = float((decode[mode]() - decode[OFF]()).abs().max())
        decode_ready.append(mode)
    ms.update(round_robin({"core VAE Decode": decode[OFF], **{f"VAE Decode (fast), {d}": decode[d] for d in decode_ready}},
                          args.rounds, warmup=1 if args.tiny else 3))
    pairs = [(g, g) for g in ready if g in decode_ready] + [(COMPILED, AUTOTUNED)] * (COMPILED in ready and AUTOTUNED in decode_ready)
    end_to_end = {
        **{f"end to end: One-Step Generate {g} + VAE Decode (fast) {d}": (lambda g=g, d=d: dec.execute({"samples": node(g)()}, m.vae, d)) for g, d in pairs},
        "end to end: core SamplerCustom + core VAE Decode": lambda: m.vae.decode(core_samplercustom()),
    }
    ms.update(round_robin(end_to_end, args.rounds, warmup=1 if args.tiny else 3))
    if args.profile:  # after the timed rounds, so the profiler's own cost is in no timing
        for i, (name, fn) in enumerate(end_to_end.items()):
            ours = name.startswith("end to end: One-Step Generate")  # core's eager path's timeline is ~5× larger
            trace = os.path.join(args.trace, f"b{b}_path{i}.json.gz") if args.trace and ours else None
            info["profiles"].append({"batch": b, "path": name, "trace": trace, **profile_round(fn, PROFILE_CALLS, trace)})

    teacher_rounds = 1 if args.tiny else 3
    teacher_ms = None  # estimate: 2 UNet calls per step (CFG) at the eager one-step path's time, warm-up + rounds
    if not skip(f"teacher, {args.teacher_steps} steps", 2 * args.teacher_steps * ms["raw UNet call, eager"] / 1000 * (teacher_rounds + 1)):
        ms[f"teacher, {args.teacher_steps} euler steps CFG 7.5 (core KSampler)"] = t_ms = round_robin({"t": teacher}, teacher_rounds, warmup=1)["t"]
        teacher_ms = ms[f"teacher, {args.teacher_steps} euler steps CFG 7.5 + core VAE Decode"] = t_ms + ms["core VAE Decode"]
    # last: in session 21 the eager rows timed after it at batch 1 (the teacher, both end-to-end rows) ran 20-72 % slower
    # than session 20's without it, while the graphed rows agreed within 2 % (docs/benchmarks.md)
    if args.tiny or (modes and not skip("decoder layout probe (NHWC)", 30)):
        ms.update(decoder_layout_probe(m.vae, ref, b, args.rounds, checks))
    for name, v in ms.items():
        info["rows"].append({"batch": b, "path": name, "ms": round(v, 2), "images_per_s": round(1000 * b / v, 1),
                             "x_vs_teacher": round(teacher_ms / v, 1) if teacher_ms else None,
                             "tflop_s": round(row_flops(name, flops, args.teacher_steps) / v / 1e9, 4)})


def model_flops(unet_call, decode_call) -> dict[str, float]:
    """FLOPs of one raw UNet call and one decode of this batch, counted by torch's flop counter on a real call of each:
    the work the model defines (core's modules; the compiled modes' sub-pixel form runs ~5 % (UNet) and ~15 % (decoder)
    fewer), so a row's TFLOP/s divided by the GPU's peak is its model-FLOPs utilisation (issue 20's floor arithmetic)."""
    from torch.utils.flop_counter import FlopCounterMode

    counts = {}
    for name, fn in (("unet", unet_call), ("decoder", decode_call)):
        with FlopCounterMode(display=False) as counter:
            fn()
        counts[name] = float(counter.get_total_flops())
    return counts


def row_flops(path: str, flops: dict[str, float], teacher_steps: int) -> float:
    """The model FLOPs a row's call does: the teacher's steps run the UNet on cond + uncond (twice the batch's work)."""
    if path.startswith("teacher"):
        return 2 * teacher_steps * flops["unet"] + (flops["decoder"] if "VAE Decode" in path else 0.0)
    if path.startswith("end to end"):
        return flops["unet"] + flops["decoder"]
    return flops["decoder"] if "Decode" in path or "decoder" in path else flops["unet"]


def cudnn_autotuned(wrap):
    """wrap(fn) with cuDNN's benchmark mode on while it runs (a CUDA graph's warm-up then times every convolution
    algorithm for these fixed shapes and the capture keeps the fastest; ComfyUI's --fast autotune sets it for the
    whole process), restored afterwards."""
    def wrapped(fn):
        before = torch.backends.cudnn.benchmark
        torch.backends.cudnn.benchmark = True
        try:
            return wrap(fn)
        finally:
            torch.backends.cudnn.benchmark = before
    return wrapped


def decoder_layout_probe(vae, latents: torch.Tensor, b: int, rounds: int, checks: dict) -> dict[str, float]:
    """The decoder alone from a CUDA graph in PyTorch's default layout (NCHW) and in channels_last (NHWC), each with
    cuDNN's default algorithm choice and autotuned (benchmark mode during the capture), on a copy so the user's VAE
    keeps its layout: is either worth a VAE Decode (fast) mode? At 1024² the decoder is 10.5 TFLOP per image (13 ms at
    this GPU's bf16 peak) and caps SDXL's end-to-end ratio (issue 20); session 20 measured NHWC 1.5–1.9× slower."""
    import copy

    model = vae.first_stage_model
    nhwc = copy.deepcopy(model).to(memory_format=torch.channels_last)
    z = latents.to(vae.device, vae.vae_dtype)
    z_nhwc = z.contiguous(memory_format=torch.channels_last)

    @torch.inference_mode()
    def nchw_decode():
        return model.decode(z)

    @torch.inference_mode()
    def nhwc_decode():
        return nhwc.decode(z_nhwc)

    cuda = z.is_cuda  # --tiny on the CPU: the same calls, eagerly
    how, wrap = ("CUDA graph", graphed) if cuda else ("eager", lambda fn: fn)
    tuned = cudnn_autotuned(wrap)
    paths = {f"raw decoder, {how} (NCHW)": wrap(nchw_decode), f"raw decoder, {how}, channels_last (NHWC)": wrap(nhwc_decode),
             f"raw decoder, {how}, cuDNN autotuned (NCHW)": tuned(nchw_decode),
             f"raw decoder, {how}, cuDNN autotuned, channels_last (NHWC)": tuned(nhwc_decode)}
    a, *others = (fn().float() for fn in paths.values())
    for what, c in zip(("channels_last", "cuDNN autotuned", "cuDNN autotuned channels_last"), others):
        checks[f"batch {b}: decoder {what} vs NCHW, max |Δ| (-1..1 pixels)"] = float((a - c).abs().max())
    ms = round_robin(paths, rounds)
    del nhwc, paths
    if cuda:
        torch.cuda.empty_cache()
    return ms


def print_report(info: dict) -> None:
    print(f"command: {info['command']}")
    print(f"device: {info['device']}, torch {info['torch']}, {info['arch']}{' (tiny)' if info['tiny'] else ''}, "
          f"UNet {info['unet_dtype']}, VAE {info['vae_dtype']}, {info['size']}²")
    lines = ["| batch | path | ms | images/s | × vs teacher | model TFLOP/s |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['batch']} | {r['path']} | {r['ms']:.1f} | {r['images_per_s']:.1f} | "
              f"{'' if r['x_vs_teacher'] is None else format(r['x_vs_teacher'], '.1f')} | {r['tflop_s']:.3g} |" for r in info["rows"]]
    lines += [f"| {s['batch']} | {s['what']} | skipped: {s['reason']} | | | |" for s in info["skipped"]]
    print("\n".join(lines))
    for p in info["profiles"]:  # per call: the end-to-end path's wall time, how much of it the GPU ran kernels, and which
        n = p["calls"]
        kernels = ", ".join(f"{k} {s / n * 1000:.2f}" for k, s in p["gpu_categories_s"].items())
        idle = "" if p["gpu_idle_share"] is None else f", GPU kernels {p['gpu_kernel_s'] / n * 1000:.2f} ms (idle {p['gpu_idle_share']:.0%}): {kernels}"
        print(f"profile batch {p['batch']} {p['path']}: {p['wall_s'] / n * 1000:.2f} ms per call under the profiler{idle}")
    print(json.dumps({"model_flops": info.get("model_flops", {}), "first_call_s": info["first_call_s"], "checks": info["checks"]}, indent=1))


if __name__ == "__main__":
    main()
