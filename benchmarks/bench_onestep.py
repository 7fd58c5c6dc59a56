"""GPU benchmark: one-step generation paths at 512² on an SD1.5-architecture UNet + SD VAE (random weights, fp16).

Rows: the pack's One-Step Generate node in each fast mode (CUDA graph; torch.compile + CUDA graph; off = core's
sampling machinery), ComfyUI's own one-step path today (what core's SamplerCustom node does: noise, preview
callback, sample_custom with one euler step at t=999, as SD-Turbo is run), the raw UNet call (eager and as a
CUDA graph), core VAE Decode vs the pack's VAE Decode (fast), end to end, and the teacher at 25 euler steps with
CFG 7.5. Each group of paths is timed round-robin (one call of each per round, medians), so clock drift hits
all alike. It also checks that the fast paths agree with core's.
Usage (ComfyUI tree on PYTHONPATH, run from the repo root):
    python -m benchmarks.bench_onestep [--batches 1 8] [--out results.json]
"""
from __future__ import annotations

import argparse
import types
import json
import os
import statistics
import tempfile
import time

import torch

import comfy.cli_args  # noqa: F401  (parsed before model_management decides on the device)
import comfy.model_management as mm
import comfy.sample
import comfy.samplers
import comfy.sd
import comfy.utils
import latent_preview

from tools import fixtures as F

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_pack():
    """The pack's node classes, imported by name (the repo root on sys.path) as the pack's entry registers them."""
    import onestep_nodes

    return types.SimpleNamespace(NODE_CLASS_MAPPINGS=onestep_nodes.load_node_modules()[0])


def round_robin(paths: dict, rounds: int, warmup: int = 3) -> dict[str, float]:
    """Median ms per path, one synchronised call of each path per round."""
    for fn in paths.values():
        for _ in range(warmup):
            fn()
    torch.cuda.synchronize()
    times = {name: [] for name in paths}
    for _ in range(rounds):
        for name, fn in paths.items():
            t0 = time.perf_counter()
            fn()
            torch.cuda.synchronize()
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--teacher-steps", type=int, default=25)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--autotune-batches", type=int, nargs="*", default=[], help="batches that also run VAE Decode (fast) in max-autotune mode (minutes to compile)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    comfy.utils.PROGRESS_BAR_ENABLED = False  # no tqdm output in timings (ComfyUI's server sets the same hook-less bar)
    pack = load_pack()
    import folder_paths

    tmp = tempfile.mkdtemp()
    folder_paths.add_model_folder_path("onestep", tmp)
    F.write_generator(os.path.join(tmp, "g.safetensors"), F.SD15_UNET, seed=5, dtype=torch.float16)
    ours = pack.NODE_CLASS_MAPPINGS["OneStepLoadGenerator"]().load("g.safetensors")[0]
    core = comfy.sd.load_diffusion_model(os.path.join(tmp, "g.safetensors"))  # core's own loader, plain EPS sampling
    vae = comfy.sd.VAE(sd=F.vae_state_dict())
    clip = F.clip_l()
    positive = clip.encode_from_tokens_scheduled(clip.tokenize("a photo of a red fox in the snow"))
    negative = clip.encode_from_tokens_scheduled(clip.tokenize(""))
    gen = pack.NODE_CLASS_MAPPINGS["OneStepGenerate"]()
    dec = pack.NODE_CLASS_MAPPINGS["OneStepVAEDecode"]()
    euler = comfy.samplers.KSAMPLER(comfy.samplers.ksampler("euler").sampler_function)
    dev = mm.get_torch_device()
    rows, checks = [], {}
    lat = args.size // 8
    for b in args.batches:
        empty = torch.zeros(b, 4, lat, lat)
        sigma_max = float(core.get_model_object("model_sampling").sigma_max)

        def node(mode):
            return lambda: gen.generate(ours, positive, 0, args.size, args.size, b, fast=mode)[0]["samples"]

        def core_samplercustom():  # the body of core's SamplerCustom node
            noise = comfy.sample.prepare_noise(empty, 0)
            cb = latent_preview.prepare_callback(core, 1)
            return comfy.sample.sample_custom(core, noise, 1.0, euler, torch.tensor([sigma_max, 0.0]), positive, negative, empty,
                                              callback=cb, disable_pbar=True, seed=0)

        def teacher():
            noise = comfy.sample.prepare_noise(empty, 0)
            return comfy.sample.sample(core, noise, args.teacher_steps, 7.5, "euler", "normal", positive, negative, empty, seed=0, disable_pbar=True)

        mm.load_models_gpu([ours, vae.patcher])
        unet = ours.model.diffusion_model
        x = torch.randn(b, 4, lat, lat, device=dev, dtype=ours.model.get_dtype())
        ctx = positive[0][0].to(dev, x.dtype).repeat(b, 1, 1)
        t = torch.full((b,), 999.0, device=dev, dtype=x.dtype)

        @torch.no_grad()
        def raw_unet():
            return unet(x, t, context=ctx)

        graph, compiled, off = "cuda graph", "compile + cuda graph (slow first run)", "off"
        autotuned = "max-autotune compile + cuda graph (minutes on first run)"
        latent = node(off)()
        decode = {m: (lambda m=m: dec.decode({"samples": latent}, vae, m)[0]) for m in (graph, compiled, autotuned, off)}
        modes = (graph, compiled)
        decode_modes = modes + ((autotuned,) if b in args.autotune_batches else ())
        with torch.no_grad():
            ref = node(off)()
            scale = float(ref.abs().max())
            for m in decode_modes:
                checks[f"batch {b}: VAE Decode (fast) {m} vs core decode, max |Δ| (0..1 pixels)"] = float((decode[m]() - decode[off]()).abs().max())
            for m in modes:
                checks[f"batch {b}: One-Step Generate {m} vs fast=off, max |Δ| / max |x|"] = float((node(m)() - ref).abs().max()) / scale
            checks[f"batch {b}: One-Step Generate vs core SamplerCustom at t=999, max |Δ| / max |x| (σ_t·z vs core's sqrt(1+σ²)·z at σ_max)"] = float((ref - core_samplercustom()).abs().max()) / scale
            g_unet = graphed(raw_unet)
        ms = round_robin({
            **{f"One-Step Generate, fast={m}": node(m) for m in modes},
            "One-Step Generate, fast=off (core machinery)": node(off),
            "core SamplerCustom node path, 1 euler step t=999": core_samplercustom,
            "raw UNet call, eager": raw_unet,
            "raw UNet call, CUDA graph": g_unet,
        }, args.rounds)
        ms.update(round_robin({"core VAE Decode": decode[off], **{f"VAE Decode (fast), {m}": decode[m] for m in decode_modes}}, args.rounds))
        pairs = [(m, m) for m in modes] + [(compiled, autotuned)] * (autotuned in decode_modes)
        ms.update(round_robin({
            **{f"end to end: One-Step Generate {g} + VAE Decode (fast) {d}": (lambda g=g, d=d: dec.decode({"samples": node(g)()}, vae, d)) for g, d in pairs},
            "end to end: core SamplerCustom + core VAE Decode": lambda: vae.decode(core_samplercustom()),
        }, args.rounds))
        teacher_ms = round_robin({"t": teacher}, 3, warmup=1)["t"] + ms["core VAE Decode"]
        ms[f"teacher, {args.teacher_steps} euler steps CFG 7.5 + core VAE Decode"] = teacher_ms
        for name, v in ms.items():
            rows.append({"batch": b, "path": name, "ms": round(v, 2), "images_per_s": round(1000 * b / v, 1), "x_vs_teacher": round(teacher_ms / v, 1)})
    info = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "unet_dtype": str(ours.model.get_dtype()),
            "vae_dtype": str(vae.vae_dtype), "size": args.size, "rows": rows, "checks": checks}
    lines = ["| batch | path | ms | images/s | × vs teacher |", "|---|---|---|---|---|"]
    lines += [f"| {r['batch']} | {r['path']} | {r['ms']:.1f} | {r['images_per_s']:.1f} | {r['x_vs_teacher']:.1f} |" for r in rows]
    print(f"device: {info['device']}, torch {info['torch']}, UNet {info['unet_dtype']}, VAE {info['vae_dtype']}, {args.size}²")
    print("\n".join(lines))
    print(json.dumps(checks, indent=1))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(info, f, indent=1)


if __name__ == "__main__":
    main()
