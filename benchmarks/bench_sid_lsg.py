"""GPU benchmark: SiD-LSG training steps on an SD1.5-architecture UNet and their memory (issue 16).

SiD-LSG holds three UNets: the generator G (trained), the fake score ψ (trained) and the frozen teacher φ
(training/methods/sid_lsg.py). The UNet is diffusers' UNet2DConditionModel with SD1.5's configuration (SD15_UNET
below, random weights, full width) behind training/diffusers_unet.DiffusersUNet, as the headless CLI and the
proof-scale rows run SiD-LSG; no ComfyUI is needed. 512² (64×64×4 latents), synthetic prompt embeddings [B, 77, 768]
and an empty-prompt embedding (the official guidance κ1 = κ2 = κ4 = 1.5 doubles every ψ and φ call for CFG), the
method's optimiser settings (β = (0, 0.999), lr 1e-6, no clipping).

Rows (one process, one after another in the order of ROWS; an out-of-memory row is recorded as "OOM" and the run goes on;
a row that would pass --time-budget is recorded as "skipped"):
  ref-fp32-b{1,2}        the reference: float32 weights and compute (no autocast), AdamW for G and ψ, our default
                         EMA (0.999, float32), no gradient checkpointing (the official recipe's fp32 + Adam)
  full-lowmem-b{1,2}     full fine-tune of G and ψ with every lever: training.config.low_memory (bf16 autocast,
                         Adafactor, ψ's weights and gradients in bf16 with stochastic rounding, φ's copy in bf16),
                         G's weights and gradients in bf16 too (GeneratorConfig.storage_dtype), gradient
                         checkpointing, no EMA (ema_decay 0)
  full-lowmem-g32-b1     the same with G's weights in float32 (what --low-memory --gradient-checkpointing
                         --ema-decay 0 give): what G's bf16 storage saves
  lora64-b{1,2}          LoRA rank 64 on G and ψ (low_memory: one bf16 copy of the teacher that G's base, ψ's base and
                         φ share; AdamW for the factors; their EMA), gradient checkpointing
A step is one whole SiD iteration: the fake-score phase (G without gradients, ψ trained) and the generator phase
(G, ψ and φ, gradients into G), each with its optimiser step, and the EMA update. Per row: trainable parameters of G
and ψ, ms/step (median of the timed steps after the warm-up), peak torch.cuda.max_memory_allocated and
max_memory_reserved over the timed steps (GiB and GB), the memory allocated between steps, and the bytes of the
weights, optimiser states and EMA counted tensor by tensor (so the CPU check has a memory figure too).

Usage (repo root; torch, safetensors, diffusers and kornia importable, no ComfyUI):
    python -m benchmarks.bench_sid_lsg [--rows ...] [--steps 6] [--warmup 2] [--time-budget 135] [--out sid_mem.json]
    python -m benchmarks.bench_sid_lsg --tiny      # CPU check of the same code paths: tiny UNet, 16×16 latents
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import gc
import json
import shlex
import statistics
import sys
import time
import traceback
from dataclasses import dataclass

import torch

from onestep.atomic import atomic_write
from training.config import GeneratorConfig, OptimConfig, SidConfig, TrainConfig, low_memory
from training.diffusers_unet import DiffusersUNet
from training.engine import Engine
from training.methods import Resources
from training.methods.sid_lsg import SidLSG

# SD1.5's UNet (runwayml/stable-diffusion-v1-5 unet/config.json): 860 M parameters
SD15_UNET = dict(
    sample_size=64, in_channels=4, out_channels=4, center_input_sample=False, flip_sin_to_cos=True, freq_shift=0,
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    block_out_channels=(320, 640, 1280, 1280), layers_per_block=2, downsample_padding=1, mid_block_scale_factor=1,
    act_fn="silu", norm_num_groups=32, norm_eps=1e-5, cross_attention_dim=768, attention_head_dim=8,
)
TINY_UNET = dict(  # the same block types, narrow (the CPU check)
    sample_size=16, block_out_channels=(32, 64), down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), layers_per_block=1, cross_attention_dim=768, attention_head_dim=8,
    norm_num_groups=32,
)
SD15_SCALE = 0.18215
TOKENS, CONTEXT_DIM = 77, 768


@dataclass(frozen=True)
class Row:
    name: str
    batch: int  # global batch = micro-batch (one process, no accumulation)
    recipe: str  # "ref" | "lowmem" | "lora"
    g_bf16: bool = True  # lowmem: G's trained weights in bf16
    lora_rank: int = 0


ROWS = [  # the targets' rows first: a row that would overrun --time-budget is skipped, so the last ones go first
    Row("ref-fp32-b1", 1, "ref"),
    Row("full-lowmem-b1", 1, "lowmem"),
    Row("lora64-b1", 1, "lora", lora_rank=64),
    Row("full-lowmem-b2", 2, "lowmem"),
    Row("lora64-b2", 2, "lora", lora_rank=64),
    Row("full-lowmem-g32-b1", 1, "lowmem", g_bf16=False),
    Row("ref-fp32-b2", 2, "ref"),
]
BY_NAME = {r.name: r for r in ROWS}


def row_config(row: Row, latent: int) -> TrainConfig:
    """The TrainConfig of a row: SiD-LSG's defaults (official guidance, α, t range) and its optimiser settings, then
    the row's memory recipe (module docstring)."""
    o = SidLSG.optim_defaults
    lowmem = row.recipe != "ref"
    cfg = TrainConfig(
        method=SidLSG.name,
        generator=GeneratorConfig(lora_rank=row.lora_rank, gradient_checkpointing=lowmem),
        optim=OptimConfig(lr_g=o["lr_g"], lr_d=o["lr_d"], betas=tuple(o["betas"]), grad_clip=o["grad_clip"], lr_warmup=0),
        sid=SidConfig(latent_height=latent, latent_width=latent), batch_size=row.batch, bf16=lowmem, seed=0, save_every=0,
        log_every=0,
    )
    if not lowmem:
        return cfg
    cfg = low_memory(cfg)
    if row.recipe == "lowmem":
        cfg = dataclasses.replace(cfg, generator=dataclasses.replace(cfg.generator, storage_dtype="bfloat16" if row.g_bf16 else "float32"),
                                  ema_decay=0.0)
    return cfg


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peaks(device: torch.device) -> tuple[float, float]:
    """(max allocated, max reserved) bytes since the last reset (0 on the CPU)."""
    if device.type != "cuda":
        return 0.0, 0.0
    return float(torch.cuda.max_memory_allocated(device)), float(torch.cuda.max_memory_reserved(device))


def reset_peaks(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def reset_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    reset_peaks(device)


def _bytes(tensors, seen: set) -> int:
    """Bytes of the tensors' storages not counted yet (shared weights count once)."""
    total = 0
    for t in tensors:
        if not isinstance(t, torch.Tensor):
            continue
        key = (t.device, t.untyped_storage().data_ptr())
        if key not in seen:
            seen.add(key)
            total += t.untyped_storage().nbytes()
    return total


def counted_state(engine: Engine) -> dict[str, int]:
    """Bytes of what lives between steps, tensor by tensor: each network's weights (a weight two networks share counts
    once, for the first), the optimisers' states and the EMA."""
    seen: set = set()
    m = engine.method
    out = {"weights_g": _bytes(engine.unet.parameters(), seen), "weights_fake": _bytes(m.fake.parameters(), seen),
           "weights_teacher": _bytes(m.teacher.parameters(), seen), "buffers": 0}
    for net in (engine.unet, m.fake, m.teacher):
        out["buffers"] += _bytes(net.buffers(), seen)
    for name, net in engine.networks.items():
        opt = getattr(net.optimizer, "inner", net.optimizer)  # a bf16 network's wrapped optimiser holds the states
        out[f"optimizer_{net.key}"] = _bytes((v for st in opt.state.values() for v in st.values()), seen)
    out["ema"] = _bytes(engine.ema.shadow.values(), seen)
    out["total"] = sum(out.values())
    return out


def make_batches(batch: int, count: int = 4) -> list[dict]:
    """Synthetic prompt embeddings in the prompts layout (CPU)."""
    g = torch.Generator().manual_seed(0)
    return [{"context": torch.randn(batch, TOKENS, CONTEXT_DIM, generator=g)} for _ in range(count)]


def build_master(tiny: bool) -> torch.nn.Module:
    """The random teacher UNet (CPU, float32), built once; every row trains a copy."""
    from diffusers import UNet2DConditionModel

    torch.manual_seed(7)
    unet = UNet2DConditionModel(**(TINY_UNET if tiny else SD15_UNET)).eval()
    with torch.no_grad():  # diffusers zero-initialises conv_out: give the output layer some signal (G's x0 is not z)
        unet.conv_out.weight.normal_(0.0, 0.02)
    return unet


class Bench:
    def __init__(self, args, device: torch.device):
        self.args, self.device = args, device
        self.latent = 16 if args.tiny else 64
        t0 = time.perf_counter()
        self.master = build_master(args.tiny)
        self.build_master_s = time.perf_counter() - t0
        self.empty = torch.randn(TOKENS, CONTEXT_DIM, generator=torch.Generator().manual_seed(1))
        print(f"[bench] random {'tiny' if args.tiny else 'SD1.5'} UNet built in {self.build_master_s:.1f} s "
              f"({sum(p.numel() for p in self.master.parameters()) / 1e6:.1f} M parameters)", flush=True)

    def run_row(self, row: Row) -> dict:
        cfg = row_config(row, self.latent)
        g = cfg.generator
        rec = {"row": row.name, "batch": row.batch, "recipe": row.recipe, "lora_rank": row.lora_rank, "fake_lora_rank": cfg.sid.fake_lora_rank,
               "bf16_autocast": cfg.bf16, "gradient_checkpointing": g.gradient_checkpointing, "optimizer": cfg.optim.optimizer_d or cfg.optim.optimizer,
               "optimizer_g": cfg.optim.optimizer, "ema": f"{cfg.ema_decay:g} {cfg.ema_dtype}" if cfg.ema_decay > 0 else "none",
               "storage": {"g": g.storage_dtype, "fake": cfg.sid.fake_dtype, "frozen": g.frozen_dtype}}
        try:
            rec.update(self._measure(row, cfg))
            rec["status"] = "ok"
        except torch.cuda.OutOfMemoryError as e:  # noqa: PERF203
            rec.update(status="OOM", error=str(e).splitlines()[0][:300])
        except Exception as e:  # an error in one row must not lose the others
            rec.update(status="error", error=f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}")
            traceback.print_exc()
        if rec["status"] != "ok":  # out of the except block: the traceback's frames (and the engine they hold) are gone
            alloc, reserved = peaks(self.device)
            rec["peak_alloc_gib"], rec["peak_reserved_gib"] = round(alloc / 2**30, 2), round(reserved / 2**30, 2)
            print(f"[bench] {row.name}: {rec['status']} ({rec['error']})", flush=True)
        reset_memory(self.device)
        return rec

    def _measure(self, row: Row, cfg: TrainConfig) -> dict:
        a = self.args
        if a.fake_oom == row.name:
            raise torch.cuda.OutOfMemoryError(f"simulated out-of-memory in {row.name} (--fake-oom)")
        batches = make_batches(row.batch)
        dev = self.device
        reset_memory(dev)
        t_build = time.perf_counter()
        unet = DiffusersUNet(copy.deepcopy(self.master), latent_scale=SD15_SCALE)
        engine = Engine(unet, cfg, Resources(unconditional=lambda: {"context": self.empty}), dev)
        del unet
        sync(dev)
        build_s = time.perf_counter() - t_build
        n_g = sum(p.numel() for p in engine.trainable_parameters())
        n_fake = sum(p.numel() for p in engine.method.fake.parameters() if p.requires_grad)
        build_peak = peaks(dev)
        print(f"[bench] {row.name}: built in {build_s:.1f} s (G trainable {n_g / 1e6:.1f} M, ψ {n_fake / 1e6:.1f} M); "
              f"{a.warmup} warm-up + {a.steps} timed steps at batch {row.batch}", flush=True)
        times, step_peaks, warm_peak = [], [], build_peak
        resident, logs = 0.0, {}
        t_row = time.perf_counter()
        for i in range(a.warmup + a.steps):
            reset_peaks(dev)
            sync(dev)
            t0 = time.perf_counter()
            logs = engine.train_step(batches[i % len(batches)])
            sync(dev)
            dt = (time.perf_counter() - t0) * 1000
            if i < a.warmup:
                warm_peak = tuple(max(x, y) for x, y in zip(warm_peak, peaks(dev)))
            else:
                times.append(dt)
                step_peaks.append(peaks(dev))
            if dev.type == "cuda":
                resident = float(torch.cuda.memory_allocated(dev))
        state = counted_state(engine)
        alloc, reserved = (max(p[j] for p in step_peaks) for j in (0, 1))
        med = statistics.median(times)
        out = {
            "trainable_g": n_g, "trainable_fake": n_fake, "trainable": n_g + n_fake,
            "build_s": round(build_s, 1), "row_s": round(time.perf_counter() - t_row, 1), "timed_steps": len(times),
            "ms_per_step": round(med, 1), "ms_mean": round(statistics.fmean(times), 1), "ms_min": round(min(times), 1),
            "images_per_s": round(row.batch / med * 1000, 2),
            # steady state: the timed steps (the figure the memory targets are about)
            "peak_alloc_gib": round(alloc / 2**30, 2), "peak_alloc_gb": round(alloc / 1e9, 2),
            "peak_reserved_gib": round(reserved / 2**30, 2), "peak_reserved_gb": round(reserved / 1e9, 2),
            "resident_gib": round(resident / 2**30, 2), "resident_gb": round(resident / 1e9, 2),
            "counted_state_bytes": state, "counted_state_gib": round(state["total"] / 2**30, 2),
            # construction (float32 copies made before their bf16 conversion) and warm-up (first-call autotuning)
            "peak_alloc_build_gib": round(build_peak[0] / 2**30, 2), "peak_alloc_warmup_gib": round(warm_peak[0] / 2**30, 2),
            "last_losses": {k: round(float(v), 4) for k, v in logs.items()},
            "config": cfg.to_dict(),
        }
        print(f"[bench] {row.name}: {med:.0f} ms/step, peak {out['peak_alloc_gib']:.2f} GiB allocated ({out['peak_alloc_gb']:.2f} GB), "
              f"{out['peak_reserved_gib']:.2f} GiB reserved, {out['resident_gib']:.2f} GiB between steps", flush=True)
        del engine, logs
        return out


def table(rows: list[dict]) -> str:
    lines = ["| row | trainable G + ψ | batch | G / ψ / frozen storage | optimiser | EMA | grad ckpt | ms/step (median) | images/s | "
             "peak alloc GiB (GB) | peak reserved GiB (GB) | between steps GiB | counted states GiB |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    short = {"float32": "fp32", "bfloat16": "bf16"}
    for r in rows:
        if "storage" not in r:  # skipped for the time budget
            lines.append(f"| {r['row']} | | {r['batch']} | | | | | {r['status']} | | | | | |")
            continue
        s = r["storage"]
        storage = f"{short[s['g']]} / {short[s['fake']]} / {short[s['frozen']]}" + ("" if r["bf16_autocast"] else " (fp32 compute)")
        n = f"{r['trainable_g'] / 1e6:.1f} M + {r['trainable_fake'] / 1e6:.1f} M" if "trainable_g" in r else ""
        head = f"| {r['row']} | {n} | {r['batch']} | {storage} | {r['optimizer']} | {r['ema']} | {'on' if r['gradient_checkpointing'] else 'off'} |"
        if r["status"] != "ok":
            lines.append(f"{head} {r['status']} | | {r.get('peak_alloc_gib', '')} | {r.get('peak_reserved_gib', '')} | | |")
        else:
            lines.append(f"{head} {r['ms_per_step']:.1f} | {r['images_per_s']:.2f} | {r['peak_alloc_gib']:.2f} ({r['peak_alloc_gb']:.2f}) | "
                         f"{r['peak_reserved_gib']:.2f} ({r['peak_reserved_gb']:.2f}) | {r['resident_gib']:.2f} | {r['counted_state_gib']:.2f} |")
    return "\n".join(lines)


def write_json(path: str, info: dict) -> None:
    text = json.dumps(info, indent=1)
    atomic_write(path, lambda tmp: open(tmp, "w", encoding="utf-8").write(text))


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else list(argv)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", nargs="+", default=None, choices=list(BY_NAME), help="rows to run, in this order (default: all)")
    ap.add_argument("--steps", type=int, default=6, help="timed steps per row (after the warm-up)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first (autotuning, allocator growth)")
    ap.add_argument("--tiny", action="store_true", help="CPU check: tiny UNet, 16×16 latents")
    ap.add_argument("--time-budget", type=float, default=135.0,
                    help="seconds for the whole run: a row is skipped when the time so far plus the longest row so far would pass it")
    ap.add_argument("--fake-oom", default="", help="(testing) raise an out-of-memory error in this row")
    ap.add_argument("--out", default="", help="write the records here as JSON (atomically)")
    args = ap.parse_args(argv)
    if args.steps < 1 or args.warmup < 0:
        ap.error("need --steps ≥ 1 and --warmup ≥ 0")
    rows = [BY_NAME[n] for n in args.rows] if args.rows else ROWS
    device = torch.device("cuda" if torch.cuda.is_available() and not args.tiny else "cpu")
    command = "python -m benchmarks.bench_sid_lsg " + " ".join(shlex.quote(x) for x in argv)
    print(f"[bench] {command}", flush=True)
    t_start = time.perf_counter()
    bench = Bench(args, device)
    results, longest = [], 0.0
    for row in rows:
        elapsed = time.perf_counter() - t_start
        if results and elapsed + longest > args.time_budget:
            results.append({"row": row.name, "batch": row.batch, "recipe": row.recipe, "status": "skipped",
                            "error": f"{elapsed:.0f} s + the longest row ({longest:.0f} s) would pass --time-budget {args.time_budget:g} s"})
            print(f"[bench] {row.name}: skipped ({results[-1]['error']})", flush=True)
            continue
        t_row = time.perf_counter()
        results.append(bench.run_row(row))
        longest = max(longest, time.perf_counter() - t_row)
        print(f"[bench] {row.name}: {results[-1]['status']} ({time.perf_counter() - t_start:.0f} s since start)", flush=True)
    import diffusers

    info = {
        "command": command, "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu", "torch": torch.__version__,
        "diffusers": diffusers.__version__, "tiny": args.tiny, "size": bench.latent * 8, "latent": [4, bench.latent, bench.latent],
        "context": [TOKENS, CONTEXT_DIM], "steps": args.steps, "warmup": args.warmup,
        "tf32": {"matmul": torch.backends.cuda.matmul.allow_tf32, "cudnn": torch.backends.cudnn.allow_tf32},
        "build_master_s": round(bench.build_master_s, 1), "rows": results, "total_s": round(time.perf_counter() - t_start, 1),
    }
    print(f"\ndevice: {info['device']}, torch {info['torch']}, diffusers {info['diffusers']}, {info['size']}² ({bench.latent}×{bench.latent} "
          f"latents), κ1 = κ2 = κ4 = 1.5 (CFG doubles ψ's and φ's batch), {args.steps} timed steps after {args.warmup} warm-up; "
          f"total {info['total_s']:.0f} s\ncommand: {command}", flush=True)
    print(table(results), flush=True)
    if args.out:
        write_json(args.out, info)
    return info


if __name__ == "__main__":
    main()
