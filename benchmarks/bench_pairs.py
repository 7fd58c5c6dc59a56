"""GPU benchmark: teacher-pair collection throughput, core's path side by side with the CUDA-graph teacher paths
(Collect Teacher Pairs' fast_teacher), against the raw UNet for the same calls.

An SD1.5-architecture teacher (random weights, fp16, 512²) collects pairs with 25 euler steps at CFG 7.5 through
the pack's collector (core's sampling machinery, prompt encoding, noise, shard writes with sha256, manifest
updates: everything a real collection does), once per path: `core` (core's UNet calls), `graph` (the same calls
replayed from CUDA graphs inside core's sampling), `compile` (torch.compile + CUDA graphs; its artifacts persist in
ComfyUI's user folder, so the first round's time shows the compile, or the cache hit on a second run). The yardstick
is the raw UNet `diffusion_model(x, t, context)` at batch 2B (cond + uncond) called 25 times per batch of B pairs.
Each fast path's latents are compared with core's for the same seeds and prompts (max |Δ|, bit-equal or not).
Usage (ComfyUI tree on PYTHONPATH, run from the repo root):
    python -m benchmarks.bench_pairs [--batches 8 32] [--paths core graph compile] [--rounds 5] [--prompts PartiPrompts.tsv]
                                     [--long N] [--breakdown] [--profile] [--out results.json]
    python -m benchmarks.bench_pairs --tiny    # CPU smoke run of the same code (tiny random models; no graphs there)
Rounds alternate one collector shard per path (new seeds, prompts never encoded before) with the raw calls; medians.
Before each timed shard the path's model is loaded untimed (a fast path samples a clone of the MODEL carrying its
wrapper, and core reloads when the loaded clone changes: a cost one long collection pays once, not per batch).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections import Counter

import torch

from benchmarks.profiling import SYNC_OPS, profile_round, sync  # noqa: F401  (SYNC_OPS: the tests read it here)

STEPS, CFG, SIZE = 25, 7.5, 512
PATHS = {"core": "off", "graph": "cuda graph", "compile": "compile + cuda graph (slow first run)"}  # → fast_teacher


def raw_unet(model, batch: int, steps: int, size: int):
    """A function making the raw UNet calls of one batch of pairs: `steps` calls at batch 2·batch (cond + uncond in
    one call, as core batches them)."""
    import comfy.model_management as mm

    mm.load_models_gpu([model])
    unet = model.model.diffusion_model
    dtype, dev = model.model.get_dtype(), mm.get_torch_device()
    channels = model.get_model_object("latent_format").latent_channels
    x = torch.randn(2 * batch, channels, size // 8, size // 8, device=dev, dtype=dtype)
    t = torch.full((2 * batch,), 999.0, device=dev)
    ctx = torch.randn(2 * batch, 77, 768, device=dev, dtype=dtype)

    def run():
        with torch.inference_mode():
            for _ in range(steps):
                unet(x, t, ctx)
    return run


def collector(pc, model, clip, prompts, batch: int, folder: str, mode: str, steps: int, size: int, counts: dict):
    """A function making one fresh shard of `batch` pairs with new seeds and new prompts each call; `counts` gathers
    how many UNet calls replayed a graph and how many took core's path."""
    from onestep.pairs.collect import collect, open_dataset

    calls, graphed = [0], [None]

    def run():
        r = calls[0] = calls[0] + 1
        some = prompts[(r * batch) % len(prompts):][:batch] or prompts[:batch]  # prompts never encoded before
        s = pc.settings_for(model, clip, some, "", "euler", "normal", steps, CFG, r * batch, batch, size, size, batch, batch)
        out = os.path.join(folder, f"round-{mode}-{batch}-{r}")
        teacher = pc.ComfyTeacher(model, clip, some, "", s)
        teacher.fast_teacher, teacher._graphed = mode, graphed[0]  # one graphed clone across rounds, as in one long collection
        replayed, fallbacks = (graphed[0][1].replayed, graphed[0][1].fallbacks) if graphed[0] else (0, 0)
        reasons = Counter(graphed[0][1].reasons) if graphed[0] else Counter()
        collect(out, open_dataset(out, s, some, {"teacher_name": "random SD1.5"}), teacher)
        graphed[0], w = teacher._graphed, teacher.last_wrapper
        counts["graph_calls"] += w.replayed - replayed if w else 0
        counts["core_calls"] += w.fallbacks - fallbacks if w else steps
        # why calls took core's path: the wrapper's per-call reasons, or the model-level refusal for every call
        new = (w.reasons - reasons) if w else Counter({teacher.refused or "fast_teacher off": steps})
        counts["core_reasons"] = dict(Counter(counts["core_reasons"]) + new)

    def prepare():  # untimed: core loads patchers by identity, so switching paths reloads; one long collection never does
        import comfy.model_management as mm
        mm.load_models_gpu([graphed[0][0] if graphed[0] else model])
    run.prepare, run.graphed = prepare, graphed
    return run


def node_shard_size(batch: int, count: int, default: int = 64) -> int:
    """Collect Teacher Pairs' default shard size made valid for `batch` (a multiple of it) and no larger than the
    run rounded up to whole batches."""
    return min(max(batch, default // batch * batch), -(-count // batch) * batch)


def long_collection(pc, model, clip, prompts, batch: int, folder: str, mode: str, steps: int, size: int, batches: int, graphed) -> dict:
    """One collection as a user runs it: `batches` batches through one settings fingerprint, one teacher and the node's
    default 64-pair shards, timed whole (set-up included) — where the rounds above pay the per-collection set-up
    (model fingerprints, the teacher, the manifest, a shard write) once per batch. Reuses the round's graphed clone."""
    from onestep.pairs.collect import collect, open_dataset

    count = batch * batches
    shard = node_shard_size(batch, count)
    out = os.path.join(folder, f"long-{mode}-{batch}")

    def run():
        s = pc.settings_for(model, clip, prompts, "", "euler", "normal", steps, CFG, 10 ** 6, count, size, size, batch, shard)
        teacher = pc.ComfyTeacher(model, clip, prompts, "", s)
        teacher.fast_teacher, teacher._graphed = mode, graphed[0]
        collect(out, open_dataset(out, s, prompts, {"teacher_name": "random SD1.5"}), teacher)

    seconds = timed(run)
    return {"long_batches": batches, "long_shard_size": shard, "long_s": seconds, "long_pairs_per_s": count / seconds}


def latent_difference(pc, model, clip, prompts, batch: int, mode: str, steps: int, size: int) -> dict:
    """Max |Δ| between this path's latents and core's for the same seeds and prompts."""
    s = pc.settings_for(model, clip, prompts[:batch], "", "euler", "normal", steps, CFG, 0, batch, size, size, batch, batch)
    teacher = pc.ComfyTeacher(model, clip, prompts[:batch], "", s)
    noise = torch.cat([teacher.noise(i) for i in range(batch)])
    idx = list(range(batch))
    core = teacher.sample(noise, idx, None).float().cpu()
    teacher.fast_teacher = mode
    fast = teacher.sample(noise, idx, None).float().cpu()
    return {"max_abs_diff_vs_core": float((fast - core).abs().max()), "bit_equal_to_core": bool(torch.equal(fast, core)),
            "latent_abs_mean": float(core.abs().mean())}


def why(row: dict) -> str:
    """A fast path's reasons for core's calls, for the table (the JSON keeps the counts)."""
    reasons = row["core_reasons"] if row["path"] != "core" else {}
    return " (" + "; ".join(f"{n}: {reason}" for reason, n in reasons.items()) + ")" if reasons else ""


def timed(fn) -> float:
    sync()
    t0 = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - t0


def breakdown(pc, model, clip, prompts, batch: int, folder: str, steps: int, size: int, rounds: int = 3) -> dict[str, float]:
    """Median seconds per batch of the collector's parts (core's path): prompt encoding, core sampling, shard write."""
    from onestep.pairs.shards import write_shard

    s = pc.settings_for(model, clip, prompts, "", "euler", "normal", steps, CFG, 0, batch * (rounds + 1), size, size, batch, batch)
    teacher = pc.ComfyTeacher(model, clip, prompts, "", s)
    parts = {"encode": [], "sample": [], "write": []}
    for r in range(rounds + 1):
        idx = list(range(r * batch, (r + 1) * batch))
        t0 = time.perf_counter()
        teacher.encode(idx)  # batched, as the collector's sample() does (session 30's records timed one call per prompt)
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


def load_teacher_unet(tiny: bool, work: str):
    """The teacher MODEL as ComfyUI loads it: an SD1.5-architecture UNet with random weights, or (--tiny) the tests'
    tiny SD1.5-shaped one."""
    import comfy.sd
    from tools import fixtures as F

    if tiny:
        from onestep_nodes import generator_model as gm
        F.write_generator(os.path.join(work, "g.safetensors"))
        return gm.load_generator_model(os.path.join(work, "g.safetensors"))
    F.write_unet(os.path.join(work, "unet.safetensors"))
    return comfy.sd.load_diffusion_model(os.path.join(work, "unet.safetensors"))


def load_models(tiny: bool, work: str):
    import comfy.sd
    from tools import fixtures as F

    if tiny:  # a random 3-layer CLIP-L beside the tiny UNet (core reads the penultimate layer)
        import comfy.supported_models
        clip = comfy.sd.CLIP(comfy.supported_models.SD15(dict(F.SD15_UNET)).clip_target(), model_options={"clip_l_model_config": {"num_hidden_layers": 3}})
        F.randomize(clip.cond_stage_model, 1)
        return load_teacher_unet(tiny, work), clip
    clip_path = os.path.join(work, "clip.safetensors")
    F.write_clip_l(clip_path)
    return load_teacher_unet(tiny, work), comfy.sd.load_clip([clip_path], clip_type=comfy.sd.CLIPType.STABLE_DIFFUSION)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", type=int, nargs="+", default=None, help="default 8 32 (--tiny: 2)")
    ap.add_argument("--paths", nargs="+", choices=list(PATHS), default=list(PATHS), help="collector paths, side by side")
    ap.add_argument("--rounds", type=int, default=5, help="timed rounds per batch size (one shard per path and the raw calls each, medians)")
    ap.add_argument("--prompts", default="")
    ap.add_argument("--out", default="")
    ap.add_argument("--long", type=int, default=0, metavar="N",
                    help="also one collection of N batches per path at the node's 64-pair shards, timed whole (a user's long run)")
    ap.add_argument("--breakdown", action="store_true", help="also time core's collector parts per batch")
    ap.add_argument("--profile", action="store_true",
                    help="one more round per path under torch.profiler: GPU idle share, the host calls that wait on the GPU and who made them")
    ap.add_argument("--tiny", action="store_true", help="CPU smoke run: tiny random models, 64², 2 steps")
    args = ap.parse_args(argv)
    import comfy.cli_args

    if args.tiny:
        comfy.cli_args.args.cpu = True  # before model_management picks the device
    from onestep.pairs.prompts import read_prompts
    from onestep_nodes import pair_collection as pc
    from onestep_nodes.compile_folder import use_compile_cache_folder

    steps, size = (2, 64) if args.tiny else (STEPS, SIZE)
    batches = args.batches or ([2] if args.tiny else [8, 32])
    cache_folder = use_compile_cache_folder()
    with tempfile.TemporaryDirectory() as work:  # the models and the pairs the paths write, removed however the run ends
        model, clip = load_models(args.tiny, work)
        prompts = read_prompts(path=args.prompts, column="Prompt") if args.prompts else [f"a photo of object number {i}" for i in range(256)]
        rows = []
        for b in batches:
            counts = {p: {"graph_calls": 0, "core_calls": 0, "core_reasons": {}} for p in args.paths}
            paths = {p: collector(pc, model, clip, prompts, b, work, PATHS[p], steps, size, counts[p]) for p in args.paths}
            paths["raw"] = raw_unet(model, b, steps, size)
            first = {name: timed(fn) for name, fn in paths.items()}  # warm-up: captures graphs, compiles (or loads the cache)
            for c in counts.values():
                c.update(graph_calls=0, core_calls=0, core_reasons={})
            times = {name: [] for name in paths}
            for _ in range(args.rounds):  # round-robin, so clock drift hits every path alike
                for name, fn in paths.items():
                    getattr(fn, "prepare", lambda: None)()
                    times[name].append(timed(fn))
            raw = statistics.median(times["raw"])
            core = statistics.median(times["core"]) if "core" in times else None
            for p in args.paths:
                s = statistics.median(times[p])
                row = {"batch": b, "path": p, "fast_teacher": PATHS[p], "rounds": args.rounds, "s_per_batch": s, "pairs_per_s": b / s,
                       "speedup_vs_core": core / s if core else None, "fraction_of_raw": raw / s, "raw_unet_s": raw,
                       "raw_unet_pairs_per_s": b / raw, "first_round_s": first[p], **counts[p]}
                if p != "core":
                    row.update(latent_difference(pc, model, clip, prompts, b, PATHS[p], steps, size))
                rows.append(row)
            if args.long:  # after the timed rounds: the fast paths reuse their captured clone, as one long run would
                for r in rows[-len(args.paths):]:
                    paths[r["path"]].prepare()
                    r.update(long_collection(pc, model, clip, prompts, b, work, PATHS[r["path"]], steps, size, args.long, paths[r["path"]].graphed))
            if args.profile:  # after the timed rounds, so the profiler's own cost is in no timing
                for r in rows[-len(args.paths):]:
                    r["profile"] = profile_round(paths[r["path"]])
            if args.breakdown and "core" in args.paths:
                next(r for r in rows if r["batch"] == b and r["path"] == "core")["per_batch_s"] = {**breakdown(pc, model, clip, prompts, b, os.path.join(work, f"parts-{b}"), steps, size), "raw_unet": raw}
    info = {"command": "python -m benchmarks.bench_pairs " + " ".join(sys.argv[1:] if argv is None else argv),
            "device": torch.cuda.get_device_name() if torch.cuda.is_available() and not args.tiny else "cpu", "torch": torch.__version__,
            "unet_dtype": str(model.model.get_dtype()), "steps": steps, "cfg": CFG, "size": size, "sampler": "euler/normal",
            "prompts": len(prompts), "compile_cache": cache_folder, "rows": rows}
    print(f"`{info['command']}` on {info['device']}, torch {info['torch']}")
    print("| batch | path | s per batch | pairs/s | × core | fraction of raw UNet | first round s | graph calls / core calls | max abs Δ latent vs core |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        diff = "—" if r["path"] == "core" else f"{r['max_abs_diff_vs_core']:.2e}" + (" (bit-equal)" if r["bit_equal_to_core"] else "")
        speed = f"{r['speedup_vs_core']:.2f}" if r["speedup_vs_core"] else "—"
        print(f"| {r['batch']} | {r['path']} | {r['s_per_batch']:.3f} | {r['pairs_per_s']:.2f} | {speed} | {r['fraction_of_raw']:.1%} | "
              f"{r['first_round_s']:.1f} | {r['graph_calls']} / {r['core_calls']}{why(r)} | {diff} |")
    for r in rows:
        if "long_s" in r:
            print(f"long collection batch {r['batch']} {r['path']}: {r['long_batches']} batches in {r['long_s']:.2f} s "
                  f"(shards of {r['long_shard_size']}, set-up included) = {r['long_pairs_per_s']:.2f} pairs/s")
    for r in rows:
        if "profile" in r:
            p = r["profile"]
            idle = f", GPU idle {p['gpu_idle_share']:.1%}" if p["gpu_idle_share"] is not None else ""
            waits = "; ".join(f"{k} ×{w['count']} {w['ms']:.1f} ms" for k, w in p["host_waits"].items()) or "none"
            print(f"profile batch {r['batch']} {r['path']}: {p['wall_s']:.3f} s{idle}; host waits: {waits}")
    print(json.dumps(info, indent=1))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(info, f, indent=1)
    return info


if __name__ == "__main__":
    main()
