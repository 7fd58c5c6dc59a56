"""GPU benchmark: teacher-pair collection throughput vs the raw UNet for the same calls.

An SD1.5-architecture teacher (random weights, fp16, 512²) collects pairs with 25 euler steps at CFG 7.5 through
the pack's collector (core's sampling machinery, prompt encoding, noise, shard writes with sha256, manifest
updates: everything a real collection does). The yardstick is the raw UNet `diffusion_model(x, t, context)` at
batch 2B (cond + uncond) called 25 times per batch of B pairs, with nothing else.
Usage (ComfyUI tree on PYTHONPATH, run from the repo root):
    python -m benchmarks.bench_pairs [--batches 8 32] [--prompts PartiPrompts.tsv] [--out results.json]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

import torch

import comfy.cli_args  # noqa: F401  (parsed before model_management decides on the device)
import comfy.model_management as mm
import comfy.sd

from benchmarks.bench_onestep import load_pack
from onestep.pairs.collect import collect, open_dataset
from onestep.pairs.prompts import read_prompts
from tools import fixtures as F

STEPS, CFG, SIZE = 25, 7.5, 512


def raw_unet_seconds(model, batch: int, calls: int = STEPS, rounds: int = 5) -> float:
    """Median seconds for `calls` raw UNet calls at batch 2·batch (cond + uncond in one call, as core batches them)."""
    mm.load_models_gpu([model])
    unet = model.model.diffusion_model
    dtype, dev = model.model.get_dtype(), mm.get_torch_device()
    x = torch.randn(2 * batch, 4, SIZE // 8, SIZE // 8, device=dev, dtype=dtype)
    t = torch.full((2 * batch,), 999.0, device=dev)
    ctx = torch.randn(2 * batch, 77, 768, device=dev, dtype=dtype)
    times = []
    with torch.inference_mode():
        for r in range(rounds + 1):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(calls):
                unet(x, t, ctx)
            torch.cuda.synchronize()
            if r:  # the first round warms up
                times.append(time.perf_counter() - t0)
    return statistics.median(times)


def collect_seconds(pc, model, clip, prompts, batch: int, batches: int, folder: str) -> float:
    """Wall seconds for the collector to make `batches` shards of `batch` pairs (after a warm-up shard)."""
    def run(name, count, seed):
        s = pc.settings_for(model, clip, prompts, "", "euler", "normal", STEPS, CFG, seed, count, SIZE, SIZE, batch, batch)
        out = os.path.join(folder, name)
        manifest = open_dataset(out, s, prompts, {"teacher_name": "random SD1.5"})
        teacher = pc.ComfyTeacher(model, clip, prompts, "", s)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        collect(out, manifest, teacher)
        torch.cuda.synchronize()
        return time.perf_counter() - t0

    run(f"warm-{batch}", batch, 10_000_000)
    return run(f"timed-{batch}", batch * batches, 0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", type=int, nargs="+", default=[8, 32])
    ap.add_argument("--shards", type=int, default=4, help="timed shards (one batch each) per batch size")
    ap.add_argument("--prompts", default="")
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    pc = load_pack().nodes.pair_collection
    work = tempfile.mkdtemp()
    unet_path, clip_path = os.path.join(work, "unet.safetensors"), os.path.join(work, "clip.safetensors")
    F.write_unet(unet_path)
    F.write_clip_l(clip_path)
    model = comfy.sd.load_diffusion_model(unet_path)
    clip = comfy.sd.load_clip([clip_path], clip_type=comfy.sd.CLIPType.STABLE_DIFFUSION)
    prompts = read_prompts(path=args.prompts, column="Prompt") if args.prompts else [f"a photo of object number {i}" for i in range(256)]
    rows = []
    for b in args.batches:
        ours = collect_seconds(pc, model, clip, prompts, b, args.shards, work)
        raw = raw_unet_seconds(model, b) * args.shards
        pairs = b * args.shards
        rows.append({"batch": b, "pairs": pairs, "collector_s": ours, "collector_pairs_per_s": pairs / ours,
                     "raw_unet_s": raw, "raw_unet_pairs_per_s": pairs / raw, "fraction_of_raw": raw / ours})
    info = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "unet_dtype": str(model.model.get_dtype()),
            "steps": STEPS, "cfg": CFG, "size": SIZE, "sampler": "euler/normal", "prompts": len(prompts), "rows": rows}
    print("| batch | pairs | collector s | collector pairs/s | raw UNet pairs/s (same calls) | fraction of raw |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['batch']} | {r['pairs']} | {r['collector_s']:.2f} | {r['collector_pairs_per_s']:.2f} | {r['raw_unet_pairs_per_s']:.2f} | {r['fraction_of_raw']:.1%} |")
    print(json.dumps(info, indent=1))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(info, f, indent=1)


if __name__ == "__main__":
    main()
