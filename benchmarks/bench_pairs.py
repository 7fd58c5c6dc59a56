"""GPU benchmark: teacher-pair collection throughput vs the raw UNet for the same calls.

An SD1.5-architecture teacher (random weights, fp16, 512²) collects pairs with 25 euler steps at CFG 7.5 through
the pack's collector (core's sampling machinery, prompt encoding, noise, shard writes with sha256, manifest
updates: everything a real collection does). The yardstick is the raw UNet `diffusion_model(x, t, context)` at
batch 2B (cond + uncond) called 25 times per batch of B pairs, with nothing else.
Usage (ComfyUI tree on PYTHONPATH, run from the repo root):
    python -m benchmarks.bench_pairs [--batches 8 32] [--rounds 5] [--prompts PartiPrompts.tsv] [--breakdown] [--out results.json]
Rounds alternate one collector shard (new seeds, prompts never encoded before) with the raw calls; medians.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

import comfy.cli_args  # noqa: F401  (parsed before model_management decides on the device)
import comfy.model_management as mm
import comfy.sd
import torch

from onestep.pairs.collect import collect, open_dataset
from onestep.pairs.prompts import read_prompts
from tools import fixtures as F

STEPS, CFG, SIZE = 25, 7.5, 512


def raw_unet(model, batch: int):
    """A function making the raw UNet calls of one batch of pairs: STEPS calls at batch 2·batch (cond + uncond in
    one call, as core batches them)."""
    mm.load_models_gpu([model])
    unet = model.model.diffusion_model
    dtype, dev = model.model.get_dtype(), mm.get_torch_device()
    x = torch.randn(2 * batch, 4, SIZE // 8, SIZE // 8, device=dev, dtype=dtype)
    t = torch.full((2 * batch,), 999.0, device=dev)
    ctx = torch.randn(2 * batch, 77, 768, device=dev, dtype=dtype)

    def run():
        with torch.inference_mode():
            for _ in range(STEPS):
                unet(x, t, ctx)
    return run


def collector(pc, model, clip, prompts, batch: int, folder: str):
    """A function making one fresh shard of `batch` pairs with new seeds and new prompts each call."""
    calls = [0]

    def run():
        r = calls[0] = calls[0] + 1
        some = prompts[(r * batch) % len(prompts):][:batch] or prompts[:batch]  # prompts never encoded before
        s = pc.settings_for(model, clip, some, "", "euler", "normal", STEPS, CFG, r * batch, batch, SIZE, SIZE, batch, batch)
        out = os.path.join(folder, f"round-{batch}-{r}")
        teacher = pc.ComfyTeacher(model, clip, some, "", s)
        collect(out, open_dataset(out, s, some, {"teacher_name": "random SD1.5"}), teacher)
    return run


def timed(fn) -> float:
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    return time.perf_counter() - t0


def breakdown(pc, model, clip, prompts, batch: int, folder: str, rounds: int = 3) -> dict[str, float]:
    """Median seconds per batch of the collector's parts: prompt encoding, core sampling, shard write."""
    from onestep.pairs.shards import write_shard

    s = pc.settings_for(model, clip, prompts, "", "euler", "normal", STEPS, CFG, 0, batch * (rounds + 1), SIZE, SIZE, batch, batch)
    teacher = pc.ComfyTeacher(model, clip, prompts, "", s)
    parts = {"encode": [], "sample": [], "write": []}
    for r in range(rounds + 1):
        idx = list(range(r * batch, (r + 1) * batch))
        t0 = time.perf_counter()
        for j in idx:
            teacher.conditioning(j)
        t1 = time.perf_counter()
        noise = torch.cat([teacher.noise(i) for i in idx])
        latent = teacher.sample(noise, idx, None).float().cpu()
        t2 = time.perf_counter()
        tensors = {"noise": noise, "latent": latent, "seed": torch.tensor(idx), "prompt_index": torch.tensor(idx)}
        tensors.update({f"cond.{j}": teacher.conditioning(j)["cond"] for j in idx})
        write_shard(folder, r, s, tensors)
        t3 = time.perf_counter()
        if r:
            for name, dt in zip(parts, (t1 - t0, t2 - t1, t3 - t2)):
                parts[name].append(dt)
    return {k: statistics.median(v) for k, v in parts.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", type=int, nargs="+", default=[8, 32])
    ap.add_argument("--rounds", type=int, default=5, help="timed rounds per batch size (one shard and its raw calls each, medians)")
    ap.add_argument("--prompts", default="")
    ap.add_argument("--out", default="")
    ap.add_argument("--breakdown", action="store_true", help="also time the collector's parts per batch")
    args = ap.parse_args()
    from onestep_nodes import pair_collection as pc
    work = tempfile.mkdtemp()
    unet_path, clip_path = os.path.join(work, "unet.safetensors"), os.path.join(work, "clip.safetensors")
    F.write_unet(unet_path)
    F.write_clip_l(clip_path)
    model = comfy.sd.load_diffusion_model(unet_path)
    clip = comfy.sd.load_clip([clip_path], clip_type=comfy.sd.CLIPType.STABLE_DIFFUSION)
    prompts = read_prompts(path=args.prompts, column="Prompt") if args.prompts else [f"a photo of object number {i}" for i in range(256)]
    rows = []
    for b in args.batches:
        paths = {"collector": collector(pc, model, clip, prompts, b, work), "raw": raw_unet(model, b)}
        for fn in paths.values():
            fn()  # warm-up
        times = {name: [] for name in paths}
        for _ in range(args.rounds):  # round-robin, so clock drift hits both alike
            for name, fn in paths.items():
                times[name].append(timed(fn))
        ours, raw = statistics.median(times["collector"]), statistics.median(times["raw"])
        rows.append({"batch": b, "pairs_per_round": b, "rounds": args.rounds, "collector_s": ours, "collector_pairs_per_s": b / ours,
                     "raw_unet_s": raw, "raw_unet_pairs_per_s": b / raw, "fraction_of_raw": raw / ours})
        if args.breakdown:
            rows[-1]["per_batch_s"] = {**breakdown(pc, model, clip, prompts, b, os.path.join(work, f"parts-{b}")), "raw_unet": raw}
    info = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "unet_dtype": str(model.model.get_dtype()),
            "steps": STEPS, "cfg": CFG, "size": SIZE, "sampler": "euler/normal", "prompts": len(prompts), "rows": rows}
    print("| batch | s per batch: collector | s per batch: raw UNet (same calls) | collector pairs/s | raw UNet pairs/s | fraction of raw |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['batch']} | {r['collector_s']:.3f} | {r['raw_unet_s']:.3f} | {r['collector_pairs_per_s']:.2f} | {r['raw_unet_pairs_per_s']:.2f} | {r['fraction_of_raw']:.1%} |")
    print(json.dumps(info, indent=1))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(info, f, indent=1)


if __name__ == "__main__":
    main()
