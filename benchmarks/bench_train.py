"""GPU benchmark: Diffusion2GAN training steps on an SD1.5-architecture UNet (issue 5), or SDXL's (--arch sdxl, issue 20).

G is ComfyUI's own SD1.5 UNetModel (random weights, built with tools/fixtures.py) behind the trainer's ComfyUI
adapter (onestep_nodes/comfy_unet.ComfyUNet); D is built by the trainer from a copy of the UNet's encoder; the regression
loss is E-LatentLPIPS at full width (random weights, bg augmentation + L1), its VGG trunk compiled with
torch.compile(mode="reduce-overhead") (falls back to eager, noted, if that fails inside the trainer). 512² (64×64
latents), context [B, 77, 768], GAN from step 0, R1 every 16 steps, mix-and-match, bf16 autocast. Synthetic batches
in the pairs layout (noise, latent, context, seed, prompt_index). --arch sdxl: ComfyUI's SDXL UNet (tools/fixtures.py
SDXL_UNET, the pooled text and core's encode_adm label, context [B, 77, 2048]) at 1024² (128×128 latents), E-LatentLPIPS
with the SDXL latent encoder; its default rows are the *-low ones.

Rows (one process, one after another; an out-of-memory row is recorded as "OOM" and the run goes on):
  ref-full-b2-ckpt   the trainer's defaults (AdamW, float32 EMA): the naive reference
  full-b{2,4}-ckpt   full fine-tune, low-memory mode: Adafactor for G and D, bf16 EMA (stochastic rounding)
  full-b2            the same without gradient checkpointing
  lora64-b{2,4}-ckpt LoRA rank 64 (AdamW), G's frozen base stored in bf16, D (fully trained) with Adafactor
  *-dlora            D's backbone frozen (G's bf16 base) with LoRA factors, AdamW (training.config.low_memory)
  lora64-b4          the same without gradient checkpointing
  *-ar1              approximated R1 (finite differences: no double backward)
  *-ckpt-low         memory=low exactly as the training nodes give it (training.config.low_memory, nothing overridden)
  *-ckpt-low-bf16    the same with G's and D's trained weights (LoRA factors) and G's EMA stored in bf16
  *-dbf16            D's weights and gradients stored in bf16 (stochastic-rounding updates, training/rounding.py)
Per row: trainable parameters of G and D, ms/step (median of the non-R1 steps, median of the R1 steps, and their
1-in-16 weighted mean — the average step as it occurs), peak torch.cuda.max_memory_allocated / reserved over the
timed steps (R1 steps included; also split into R1 and other steps, and the construction / warm-up peaks apart,
since the first step compiles and records CUDA graphs) and the memory resident between steps.

Multi-GPU scaling (torchrun): every rank first times the row alone on its GPU (per-GPU batch 2, no communication),
then all ranks time it together on a global batch of 2 × world size; rank 0 prints throughput scaling.

Usage (ComfyUI tree on PYTHONPATH, run from the repo root):
    python -m benchmarks.bench_train [--rows ...] [--steps 32] [--warmup 4] [--breakdown] [--profile] [--out results.json]
    torchrun --nproc_per_node 2 -m benchmarks.bench_train --scaling [--rows full-b2-ckpt lora64-b2-ckpt] [--out f.json]
    python -m benchmarks.bench_train --arch sdxl [--rows full-b2-ckpt-low lora64-b2-ckpt-low] [--steps 32] [--out sdxl_train.json]
    python -m benchmarks.bench_train --tiny [--arch sdxl]   # CPU check of the same code paths: tiny UNet, 16×16 latents
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import gc
import json
import os
import statistics
import sys
import time
import traceback
import types
from unittest import mock

import torch
import torch.distributed as dist

import comfy.cli_args  # noqa: F401  (parsed before model_management decides on the device)
from tools import fixtures as F  # noqa: E402  (sets --cpu when there is no GPU)
import comfy.supported_models  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROWS = {  # name: (lora rank, per-GPU batch, gradient checkpointing, low-memory mode, R1 mode[, D storage dtype (*-low rows: every trained weight's)[, D backbone]])
    "ref-full-b2-ckpt": (0, 2, True, False, "exact"),
    "full-b2-ckpt": (0, 2, True, True, "exact"),
    "full-b4-ckpt": (0, 4, True, True, "exact"),
    "full-b2": (0, 2, False, True, "exact"),
    "lora64-b2-ckpt": (64, 2, True, True, "exact"),
    "lora64-b4-ckpt": (64, 4, True, True, "exact"),
    "lora64-b4": (64, 4, False, True, "exact"),
    # approximated R1 (finite differences, no double backward): what sets the peak in the rows above
    "full-b2-ckpt-ar1": (0, 2, True, True, "approx"),
    "full-b2-ar1": (0, 2, False, True, "approx"),
    "full-b2-ar1-dbf16": (0, 2, False, True, "approx", "bfloat16"),
    "lora64-b4-ckpt-ar1": (64, 4, True, True, "approx"),
    "lora64-b4-ar1": (64, 4, False, True, "approx"),
    # D's weights and gradients stored in bf16 (stochastic-rounding updates): the LoRA ≤ 6 GB attempt
    "full-b2-ckpt-ar1-dbf16": (0, 2, True, True, "approx", "bfloat16"),
    "lora64-b4-ckpt-ar1-dbf16": (64, 4, True, True, "approx", "bfloat16"),
    "lora64-b4-ckpt-dbf16": (64, 4, True, True, "exact", "bfloat16"),
    # D's backbone frozen with LoRA factors (as the naive LoRA reference's "frozen backbones"), sharing G's frozen base
    "ref-lora64-b4-ckpt-dlora": (64, 4, True, False, "exact", "float32", "lora"),
    "lora64-b4-ckpt-dlora": (64, 4, True, True, "exact", "float32", "lora"),
    "lora64-b4-ckpt-ar1-dlora": (64, 4, True, True, "approx", "float32", "lora"),
    # memory=low as the nodes and the CLI's --low-memory set it (R1 mode, D storage and backbone: low_memory's own)
    "full-b2-ckpt-low": (0, 2, True, True, None),
    "lora64-b2-ckpt-low": (64, 2, True, True, None),
    # issue 20's LoRA ≤ 16 GB at batch 2: a smaller rank, and memory=low with the trained factors (G's and D's, their
    # AdamW states and gradients) and G's EMA stored in bf16 with stochastic-rounding updates (the CLI's
    # --generator-dtype / --d-dtype bfloat16; the nodes' memory=low keeps them in float32)
    "lora32-b2-ckpt-low": (32, 2, True, True, None),
    "lora64-b2-ckpt-low-bf16": (64, 2, True, True, None, "bfloat16"),
}
SDXL_ROWS = ["full-b2-ckpt-low", "lora64-b2-ckpt-low"]  # issue 20: SDXL at 1024², batch 2, memory=low
SCALING_ROWS = ["full-b2-ckpt", "lora64-b2-ckpt"]
R1_EVERY = 16


def log(*a) -> None:
    """Progress line on rank 0 only (flushed: the lead watches the output while it runs)."""
    if RANK == 0:
        print(*a, flush=True)


RANK = int(os.environ.get("RANK", "0"))


def load_pack() -> types.SimpleNamespace:
    """The pack's trainer and ComfyUI adapter, imported by name (the repo root on sys.path), without registering nodes."""
    from onestep_nodes.comfy_unet import ComfyUNet
    from training import config, distributed
    from training.trainer import Trainer
    from training.unet_interface import ModelInfo

    import onestep.latent_lpips as lpips

    return types.SimpleNamespace(ComfyUNet=ComfyUNet, ModelInfo=ModelInfo, Trainer=Trainer, config=config, distributed=distributed, lpips=lpips)


def row_config(P, lora: int, batch: int, ckpt: bool, lowmem: bool, seed: int = 0, r1_mode: str = "exact", d_storage: str = "float32",
               d_backbone: str = "full"):
    """The TrainConfig of one row (batch is the global batch of the trainer): the trainer's defaults (the reference),
    or training.config.low_memory() of them as the node's memory=low and the CLI's --low-memory give it, with the
    row's R1 mode and D storage / backbone. The *-low rows (r1_mode None) take low_memory's own settings; with a
    d_storage other than float32 (the *-low-bf16 rows) G's and D's trained weights and G's EMA are stored in it."""
    c = P.config
    cfg = c.TrainConfig(
        generator=c.GeneratorConfig(lora_rank=lora, gradient_checkpointing=ckpt),
        optim=c.OptimConfig(lr_g=1e-4 if lora else 1e-5, lr_d=1e-5), loss=c.LossConfig(regression="elatentlpips", warmup_steps=0),
        discriminator=c.DiscriminatorConfig(enabled=True, r1_every=R1_EVERY, mix_and_match=True, lora_rank=lora or 64),
        batch_size=batch, bf16=True, seed=seed, save_every=0, log_every=0,
    )
    if lowmem:
        cfg = c.low_memory(cfg)
    if r1_mode is None:  # the *-low rows: memory=low exactly as the training nodes give it
        if d_storage == "float32":
            return cfg
        return dataclasses.replace(cfg, generator=dataclasses.replace(cfg.generator, storage_dtype=d_storage),
                                   discriminator=dataclasses.replace(cfg.discriminator, storage_dtype=d_storage), ema_dtype=d_storage)
    d = dataclasses.replace(cfg.discriminator, r1_mode=r1_mode, storage_dtype=d_storage, backbone=d_backbone)
    if d_backbone == "full" and lowmem:  # a full D in low memory: Adafactor (a LoRA backbone's few factors keep AdamW)
        cfg = dataclasses.replace(cfg, optim=dataclasses.replace(cfg.optim, optimizer_d="adafactor"))
    return dataclasses.replace(cfg, discriminator=d)


def make_batches(n: int, batch: int, size: int, count: int = 4, info=None) -> list[dict]:
    """Synthetic global batches in the pairs layout (CPU; identical on every rank); SDXL's carry the pooled text."""
    g = torch.Generator().manual_seed(0)
    out = []
    for i in range(count):
        out.append({
            "noise": torch.randn(batch, 4, size, size, generator=g),
            "latent": torch.randn(batch, 4, size, size, generator=g) * 5.0,  # VAE units (SD latents have std ~5)
            "context": torch.randn(batch, 77, info.context_dim if info else 768, generator=g),
            "seed": torch.arange(i * batch, (i + 1) * batch), "prompt_index": torch.arange(i * batch, (i + 1) * batch),
        })
        if info is not None and info.pooled_dim:
            out[-1]["pooled"] = torch.randn(batch, info.pooled_dim, generator=g)
    return out


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def mem() -> tuple[float, float]:
    """(max allocated, max reserved) GiB since the last reset (0 on the CPU)."""
    if not torch.cuda.is_available():
        return 0.0, 0.0
    return torch.cuda.max_memory_allocated() / 2**30, torch.cuda.max_memory_reserved() / 2**30


def reset_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


class Bench:
    """The shared pieces: the random UNet (CPU, built once), E-LatentLPIPS (one per process, compiled once per shape)."""

    def __init__(self, args, device: torch.device):
        self.args, self.device = args, device
        self.P = load_pack()
        sdxl = args.arch == "sdxl"
        cfg = {(False, False): F.SD15_UNET, (False, True): F.TINY_UNET, (True, False): F.SDXL_UNET, (True, True): F.TINY_SDXL_UNET}[sdxl, args.tiny]
        self.size = 16 if args.tiny else 128 if sdxl else 64
        t0 = time.perf_counter()
        model_config = (comfy.supported_models.SDXL if sdxl else comfy.supported_models.SD15)(dict(cfg))
        if sdxl:  # a reduced width names its heads (the class's defaults are SDXL's own)
            model_config.unet_config.update({k: cfg[k] for k in ("num_heads", "num_head_channels")})
        model = model_config.get_model({})
        self.master = F.randomize(model.diffusion_model, 7).float().cpu()
        self.encode_adm = model.encode_adm if sdxl else None  # core's label vector from the pooled text and the size
        self.info = self.P.ModelInfo(latent_channels=4, context_dim=cfg["context_dim"], pooled_dim=1280 if sdxl else None,
                                     latent_scale=0.13025 if sdxl else 0.18215, spatial_multiple=2 ** (len(cfg["channel_mult"]) - 1))
        log(f"[bench] random {'tiny ' if args.tiny else ''}{'SDXL' if sdxl else 'SD1.5'} UNet built in {time.perf_counter() - t0:.1f} s "
            f"({sum(p.numel() for p in self.master.parameters()) / 1e6:.1f} M parameters)")
        self.compile = args.compile_lpips
        self.elpips = self.new_elpips()

    def new_elpips(self):
        L = self.P.lpips
        torch.manual_seed(0)
        e = L.ELatentLPIPS(L.LatentLPIPS(in_channels=4), L.get_encoder(self.args.arch), preset="bg").eval().to(self.device)
        if self.compile:
            e.lpips.net.compile(mode="reduce-overhead", dynamic=False)  # fwd+bwd replayed as CUDA graphs (issue 3: 12.5 → 9.5 ms)
        return e

    def fresh_elpips(self, compile_ok: bool) -> None:
        """After an OOM or a compile failure: drop compiled state and graph pools, rebuild."""
        self.elpips = None
        torch._dynamo.reset()
        self.compile = self.compile and compile_ok
        reset_memory()
        self.elpips = self.new_elpips()

    def run_row(self, name: str, single: bool = False) -> dict:
        """Build a trainer for the row, warm up, time the steps; a dict of results ("OOM"/"error" on failure)."""
        lora, batch, ckpt, lowmem = ROWS[name][:4]
        world = 1 if single else WORLD
        row = {"row": name, "lora_rank": lora, "per_gpu_batch": batch, "global_batch": batch * world, "world_size": world,
               "gradient_checkpointing": ckpt, "low_memory": lowmem, "lpips_compiled": self.compile}
        for attempt in (0, 1):
            try:
                row.update(self._measure(name, lora, batch, ckpt, lowmem, world))
                row["status"] = "ok"
                return row
            except torch.cuda.OutOfMemoryError as e:  # noqa: PERF203
                row.update(status="OOM", error=str(e).splitlines()[0][:300])
                failed, retry = "oom", False
            except Exception as e:  # a compile mode that cannot run inside the trainer is retried eagerly, once
                row.update(status="error", error=f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}")
                if self.args.tiny or RANK == 0:
                    traceback.print_exc()
                failed, retry = "error", self.compile and attempt == 0 and world == 1
            # out of the except block: the traceback's frames (and the tensors they hold) are gone now
            row["peak_alloc_gib"], row["peak_reserved_gib"] = (round(v, 2) for v in mem())
            log(f"[bench] {name}: {row['status']} ({row.get('error', '')})")
            self.fresh_elpips(compile_ok=failed == "oom")
            if not retry:
                return row
            log(f"[bench] {name}: retrying with the E-LatentLPIPS trunk eager")
            row["lpips_compiled"] = False
        return row

    def _measure(self, name, lora, batch, ckpt, lowmem, world) -> dict:
        a, P = self.args, self.P
        if a.fake_oom == name:
            raise torch.cuda.OutOfMemoryError(f"simulated out-of-memory in {name} (--fake-oom)")
        d_storage, d_backbone = (*ROWS[name][5:], *("float32", "full")[len(ROWS[name][5:]):])
        cfg = row_config(P, lora, batch * world, ckpt, lowmem, r1_mode=ROWS[name][4], d_storage=d_storage, d_backbone=d_backbone)
        batches = make_batches(4, batch * world, self.size, info=self.info)
        reset_memory()
        t_build = time.perf_counter()
        net = P.ComfyUNet(copy.deepcopy(self.master), self.info, self.encode_adm)
        single = mock.patch.object(P.distributed, "current", lambda: P.distributed.DistInfo()) if world == 1 else contextlib.nullcontext()
        with single:  # alone on this GPU even under torchrun: no broadcasts, no all-reduce
            trainer = P.Trainer(net, cfg, self.elpips, self.device)
        del net
        n_g = sum(p.numel() for p in trainer.trainable_parameters())
        n_d = sum(p.numel() for p in trainer.discriminator_parameters())
        sync()
        build_s = time.perf_counter() - t_build
        log(f"[bench] {name}: built in {build_s:.1f} s (G trainable {n_g / 1e6:.1f} M, D {n_d / 1e6:.1f} M); "
            f"{a.warmup} warm-up + {a.steps} timed steps at batch {batch}/GPU × {world}")
        build_peak = mem()
        parts_ms = _time_parts(trainer) if a.breakdown else None
        times, r1_flags, peaks = [], [], []  # per timed step: ms, R1 or not, (max allocated, max reserved) GiB
        warm_peak = build_peak
        resident = 0.0
        t_row = time.perf_counter()
        for i in range(a.warmup + a.steps):
            if self.compile:
                torch.compiler.cudagraph_mark_step_begin()
            r1 = trainer.step % cfg.discriminator.r1_every == 0  # GAN from step 0: D steps every step, R1 on these
            if torch.cuda.is_available():
                torch.cuda.reset_peak_memory_stats()
            sync()
            t0 = time.perf_counter()
            logs = trainer.train_step(batches[i % len(batches)])
            sync()
            dt = (time.perf_counter() - t0) * 1000
            if i == 0:
                log(f"[bench] {name}: first step {dt / 1000:.1f} s (compile, autotune); loss terms {', '.join(f'{k} {v:.3g}' for k, v in sorted(logs.items()))}")
            if parts_ms is not None and i == a.warmup:
                for v in parts_ms.values():
                    v.clear()
            if a.profile and i == a.warmup + 1:
                _profile(trainer, batches[i % len(batches)], name)
            if i < a.warmup:
                warm_peak = tuple(max(x, y) for x, y in zip(warm_peak, mem()))
                resident = torch.cuda.memory_allocated() / 2**30 if torch.cuda.is_available() else 0.0
            else:
                times.append(dt)
                r1_flags.append(r1)
                peaks.append(mem())
            if i >= a.warmup and (i - a.warmup) % 8 == 7:
                log(f"[bench] {name}: {i - a.warmup + 1}/{a.steps} timed steps, last {dt:.0f} ms, peak {peaks[-1][0]:.2f} GiB")
        peak_timed = tuple(max(p[j] for p in peaks) for j in (0, 1))
        peak_r1 = max((p[0] for p, r in zip(peaks, r1_flags) if r), default=float("nan"))
        peak_no_r1 = max((p[0] for p, r in zip(peaks, r1_flags) if not r), default=float("nan"))
        plain = [t for t, r in zip(times, r1_flags) if not r]
        with_r1 = [t for t, r in zip(times, r1_flags) if r]
        med_plain = statistics.median(plain) if plain else float("nan")
        med_r1 = statistics.median(with_r1) if with_r1 else float("nan")
        k = cfg.discriminator.r1_every
        weighted = ((k - 1) * med_plain + med_r1) / k if with_r1 else med_plain
        out = {
            "trainable_g": n_g, "trainable_d": n_d, "build_s": round(build_s, 1), "row_s": round(time.perf_counter() - t_row, 1),
            "timed_steps": len(times), "r1_steps": len(with_r1), "ms_per_step": round(weighted, 1),
            "ms_median_no_r1": round(med_plain, 1), "ms_median_r1": round(med_r1, 1), "ms_mean_all": round(statistics.fmean(times), 1),
            "ms_median_all": round(statistics.median(times), 1),
            "images_per_s_global": round(batch * world / weighted * 1000, 2),
            # steady state (the timed steps, R1 steps included) — the figure the memory targets are about
            "peak_alloc_gib": round(peak_timed[0], 2), "peak_reserved_gib": round(peak_timed[1], 2),
            "peak_alloc_gb": round(peak_timed[0] * 2**30 / 1e9, 2), "peak_alloc_r1_step_gib": round(peak_r1, 2),
            "peak_alloc_no_r1_step_gib": round(peak_no_r1, 2),
            # construction and warm-up (first step: compile of the E-LatentLPIPS trunk, CUDA-graph recording)
            "peak_alloc_build_gib": round(build_peak[0], 2), "peak_alloc_warmup_gib": round(warm_peak[0], 2),
            "peak_reserved_warmup_gib": round(warm_peak[1], 2), "resident_gib": round(resident, 2),
            "last_losses": {k2: round(v, 4) for k2, v in logs.items()},
            "config": trainer.config.to_dict(),
        }
        if parts_ms is not None:  # medians over the timed steps, and the rest of a step (forward, backward, clipping)
            out["ms_parts"] = {k: round(statistics.median(v), 1) for k, v in parts_ms.items() if v}
            out["ms_parts"]["forward_backward_rest"] = round(med_plain - sum(out["ms_parts"].values()), 1)
            log(f"[bench] {name}: parts (median ms) {out['ms_parts']}")
        if world > 1:  # the slowest rank sets the pace; report it
            t = torch.tensor([weighted, out["peak_alloc_gib"]], device=self.device, dtype=torch.float64)
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
            out["ms_per_step_max_rank"], out["peak_alloc_gib_max_rank"] = round(t[0].item(), 1), round(t[1].item(), 2)
        del trainer, logs
        return out


WORLD = int(os.environ.get("WORLD_SIZE", "1"))


def _time_parts(trainer) -> dict[str, list[float]]:
    """Wrap the optimiser steps and the EMA update of a trainer with synchronised timers (--breakdown); the lists
    of ms they fill. The synchronisations cost a little, so the breakdown rows are not the headline figures."""
    out: dict[str, list[float]] = {}

    def timed(label, fn):
        out[label] = []

        def wrapper(*args, **kwargs):
            sync()
            t0 = time.perf_counter()
            r = fn(*args, **kwargs)
            sync()
            out[label].append((time.perf_counter() - t0) * 1000)
            return r
        return wrapper

    trainer.opt_g.step = timed("opt_g_step", trainer.opt_g.step)
    if trainer.opt_d is not None:
        trainer.opt_d.step = timed("opt_d_step", trainer.opt_d.step)
    trainer.ema.update = timed("ema_update", trainer.ema.update)
    return out


def _profile(trainer, batch: dict, name: str) -> None:
    """torch.profiler over one training step: the top operators by GPU time and by CPU time (--profile)."""
    from torch.profiler import ProfilerActivity, profile
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with profile(activities=acts) as prof:
        trainer.train_step(batch)
        sync()
    ka = prof.key_averages()
    key = "self_device_time_total" if torch.cuda.is_available() else "self_cpu_time_total"
    log(f"[bench] {name}: profile of one step, top operators by {key}\n" + ka.table(sort_by=key, row_limit=25, max_name_column_width=60))
    log(f"[bench] {name}: profile of one step, top operators by CPU total\n" + ka.table(sort_by="cpu_time_total", row_limit=25, max_name_column_width=60))


def table(rows: list[dict]) -> str:
    lines = ["| row | G trainable | D trainable | batch (per GPU × GPUs) | grad ckpt | ms/step (R1 1-in-16 weighted) | ms no-R1 / R1 step (median) | "
             "peak alloc GiB (GB) | peak alloc R1 / other steps GiB | peak reserved GiB | resident GiB |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        head = f"| {r['row']} | {r.get('trainable_g', 0) / 1e6:.1f} M | {r.get('trainable_d', 0) / 1e6:.1f} M | {r['per_gpu_batch']} × {r['world_size']} | {'on' if r['gradient_checkpointing'] else 'off'} |"
        if r["status"] != "ok":
            lines.append(f"{head} {r['status']} | | {r.get('peak_alloc_gib', '')} | | {r.get('peak_reserved_gib', '')} | |")
        else:
            lines.append(f"{head} {r['ms_per_step']:.1f} | {r['ms_median_no_r1']:.1f} / {r['ms_median_r1']:.1f} | "
                         f"{r['peak_alloc_gib']:.2f} ({r['peak_alloc_gb']:.2f}) | {r['peak_alloc_r1_step_gib']:.2f} / {r['peak_alloc_no_r1_step_gib']:.2f} | "
                         f"{r['peak_reserved_gib']:.2f} | {r['resident_gib']:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else list(argv)
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", choices=("sd15", "sdxl"), default="sd15", help="sdxl: SDXL's UNet at 1024² (default rows: " + " ".join(SDXL_ROWS) + ")")
    ap.add_argument("--rows", nargs="+", default=None, choices=list(ROWS), help="rows to run (default: all; with --scaling: " + " ".join(SCALING_ROWS) + ")")
    ap.add_argument("--steps", type=int, default=32, help="timed steps per row (≥ 32 holds two R1 steps)")
    ap.add_argument("--warmup", type=int, default=4, help="untimed steps first (the first compiles E-LatentLPIPS' trunk)")
    ap.add_argument("--scaling", action="store_true", help="under torchrun: each row alone on one GPU, then on all")
    ap.add_argument("--no-compile-lpips", dest="compile_lpips", action="store_false", help="E-LatentLPIPS trunk eager")
    ap.add_argument("--cudnn-benchmark", action="store_true", help="autotune conv algorithms (ComfyUI: --fast autotune)")
    ap.add_argument("--tiny", action="store_true", help="CPU check: tiny UNet (tools.fixtures.TINY_UNET), 16×16 latents")
    ap.add_argument("--fake-oom", default="", help="(testing) raise an out-of-memory error in this row")
    ap.add_argument("--breakdown", action="store_true", help="also time G's and D's optimiser steps and the EMA update apart (synchronised)")
    ap.add_argument("--profile", action="store_true", help="print torch.profiler's top operators for one step of each row")
    ap.add_argument("--out", default="")
    args = ap.parse_args(argv)
    rows = args.rows or (SCALING_ROWS if args.scaling else SDXL_ROWS if args.arch == "sdxl" else list(ROWS))
    if WORLD > 1 and not args.scaling:
        raise SystemExit("under torchrun pass --scaling")
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    if WORLD > 1:  # the trainer's all-reduces: NCCL on GPUs (as training/cli.py), gloo on the CPU
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    if torch.cuda.is_available():
        device = torch.device("cuda")
        torch.backends.cudnn.benchmark = args.cudnn_benchmark  # ComfyUI sets it only with --fast autotune
    else:
        device = torch.device("cpu")
        torch.set_num_threads(max(1, (os.cpu_count() or 2) // max(1, WORLD)))
    t_start = time.perf_counter()
    command = " ".join(([f"torchrun --nproc_per_node {WORLD}", "-m benchmarks.bench_train"] if WORLD > 1 else ["python -m benchmarks.bench_train"]) + argv)
    log(f"[bench] {command}")
    bench = Bench(args, device)
    results = []
    for name in rows:
        if args.scaling:
            results.append(bench.run_row(name, single=True))
            if WORLD > 1:
                dist.barrier()
        results.append(bench.run_row(name))
        r = results[-1]
        log(f"[bench] {name}: {r['status']} {r.get('ms_per_step', '')} ms/step, peak {r.get('peak_alloc_gib', '')} GiB allocated "
            f"({time.perf_counter() - t_start:.0f} s since start)")
    info = {
        "command": command, "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu", "torch": torch.__version__,
        "world_size": WORLD, "arch": args.arch, "size": bench.size * 8, "latent": [4, bench.size, bench.size], "context": [77, bench.info.context_dim],
        "r1_every": R1_EVERY,
        "steps": args.steps, "warmup": args.warmup, "tiny": args.tiny, "bf16_autocast": True, "cudnn_benchmark": args.cudnn_benchmark,
        "rows": results, "total_s": round(time.perf_counter() - t_start, 1),
    }
    if args.scaling and WORLD > 1:
        scaling = []
        for one, many in zip(results[0::2], results[1::2]):
            if one["status"] == "ok" and many["status"] == "ok":
                t1, tn = one["ms_per_step"], many.get("ms_per_step_max_rank", many["ms_per_step"])
                scaling.append({"row": one["row"], "ms_1gpu": t1, f"ms_{WORLD}gpu": tn, "images_per_s_1gpu": round(one["per_gpu_batch"] / t1 * 1000, 2),
                                f"images_per_s_{WORLD}gpu": round(many["global_batch"] / tn * 1000, 2),
                                "throughput_scaling": round(WORLD * t1 / tn, 3), "efficiency": round(t1 / tn, 3)})
        info["scaling"] = scaling
    if RANK == 0:
        print(f"\ndevice: {info['device']}, torch {info['torch']}, {args.arch}, {info['size']}² ({bench.size}×{bench.size} latents), bf16 autocast, "
              f"R1 every {R1_EVERY}, {args.steps} timed steps after {args.warmup} warm-up; command: {command}", flush=True)
        print(table(results), flush=True)
        if info.get("scaling"):
            print(f"\n| row | ms/step 1 GPU (batch 2) | ms/step {WORLD} GPUs (global batch {2 * WORLD}) | images/s 1 GPU | images/s {WORLD} GPUs | throughput scaling | efficiency |")
            print("|---|---|---|---|---|---|---|")
            for s in info["scaling"]:
                print(f"| {s['row']} | {s['ms_1gpu']:.1f} | {s[f'ms_{WORLD}gpu']:.1f} | {s['images_per_s_1gpu']:.2f} | {s[f'images_per_s_{WORLD}gpu']:.2f} | "
                      f"{s['throughput_scaling']:.2f}× | {s['efficiency']:.0%} |", flush=True)
        print(f"total {info['total_s']:.0f} s", flush=True)
        if args.out:
            with open(args.out, "w") as f:
                json.dump(info, f, indent=1)
    if WORLD > 1:
        dist.barrier()
        dist.destroy_process_group()
    return info


if __name__ == "__main__":
    main()
