"""Training-step speed of the proof-scale distillation rows (issues 14 and 16): the trainer on the benchmark's small
teacher architecture (1×32×32 latents), per row kind and batch, with the batches already on the GPU (as DevicePairs
gives them), bf16 autocast as the pipeline trains.

  python -m benchmarks.bench_proof_scale_train [--rows mse,latentlpips,elatentlpips,diffusion2gan,sid_lsg_teacher_cfg]
      [--batches 256,1024] [--steps 30] [--compile] [--graph] [--channels-last] [--modes M1,M2] [--profile 3] [--json OUT.json]
      [--device cpu]

Prints a markdown table (row, batch, ms/step, training samples/s, peak GiB, and with --profile the GPU's busy share)
and the command; the first --warmup steps (10: the GAN's first R1 step, compiling) are not timed. Weights are random:
speed does not depend on them. The SiD-LSG rows (sid_lsg, sid_lsg_teacher_cfg: proof_scale.rows.SID_ROWS, the
teacher's CFG taken as 1.5) train on the class prompts of a random context table as the data-free rows do.
--teacher FILE: the teacher file's weights and context table instead (a run's own shapes: a compiled mode measured
here leaves torch's cache on the machine warm for that run's rows: run 42's WARM, a background compile while the row
trains, benchmarks/results/proof_scale_h200_run42/run.sh).
--compile measures every row twice, eager and with TrainConfig.compile_blocks (training/compile.py; its compile falls in
the untimed steps), both without R1 (inductor has no double backward; the runs since session 10 train without it).
--graph measures the SiD rows eagerly and with TrainConfig.cuda_graph (training/graph_step.py: the step captured once
after three eager steps, all untimed, then replayed); with --compile too, also "graph+MODE": the compiled blocks' kernels
captured in the step's graph (each --compile-modes mode without CUDA graphs of its own; the compile falls in the
untimed warm-up steps).
--channels-last measures each mode again with TrainConfig.channels_last (every network's 4-D weights, and so the
convolutions' activations, in NHWC: cuDNN's layout for 16-bit tensor cores), as MODE+nhwc right after MODE.
--profile N: N more steps under torch.profiler after the timed ones; "GPU busy" is the kernels' summed time over the
steps' wall time — far under 100 % means the step waits on the host (launches, syncs), which compiling or CUDA graphs
remove, while near 100 % means only less arithmetic makes it faster.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import sys
import time

import torch

from benchmarks.records import finish
from onestep.latent_lpips import ELatentLPIPS, LatentLPIPS, get_encoder
from proof_scale import rows as ps_rows
from proof_scale.distill import class_prompts
from proof_scale.rows import ROW_KINDS, train_config_for_kind
from proof_scale.teacher import TeacherNetConfig, build_unet, load_teacher
from training.diffusers_unet import DiffusersUNet
from training.session import TrainingSession
from training.trainer import Trainer

TEACHER_CFG = 1.5  # the proof-scale teacher row's CFG, which the SiD rows' κ4 takes


def _batches(n: int, batch: int, device: torch.device, context: torch.Tensor):
    g = torch.Generator(device).manual_seed(0)
    for step in range(n):
        labels = torch.randint(0, 10, (batch,), generator=g, device=device)
        yield {"noise": torch.randn(batch, 1, 32, 32, generator=g, device=device), "latent": torch.rand(batch, 1, 32, 32, generator=g, device=device) * 2 - 1,
               "context": context[labels], "prompt_index": labels, "seed": torch.arange(batch, device=device) + step * batch}


def _compiled(config, mode: str | None):
    """config per the measured mode (None: as the row has it; "eager": no compile, no graph; "graph": each step
    replayed as one CUDA graph, TrainConfig.cuda_graph; "graph+M": both, the blocks compiled in mode M; else
    compile_blocks in that torch.compile mode; a "+nhwc" suffix: the same with TrainConfig.channels_last)."""
    if mode is not None and mode.endswith("nhwc"):  # "MODE+nhwc" (or "nhwc": as the row has it) in channels_last
        base = mode[: -len("+nhwc")] if mode.endswith("+nhwc") else None
        return dataclasses.replace(_compiled(config, base), channels_last=True)
    if mode is None:
        return config
    if mode == "graph":
        return dataclasses.replace(config, compile_blocks=False, cuda_graph=True)
    if mode.startswith("graph+"):  # "graph+M": the step's compiled kernels (mode M) replayed as one CUDA graph
        return dataclasses.replace(config, compile_blocks=True, compile_mode=mode[len("graph+"):], cuda_graph=True)
    return dataclasses.replace(config, compile_blocks=mode != "eager", compile_mode="default" if mode == "eager" else mode)


def _teacher_unet(table: torch.Tensor, teacher: torch.nn.Module | None = None) -> DiffusersUNet:
    """The proof-scale teacher's architecture with random weights, for the table's text width; or a fresh copy of a
    teacher file's UNet as proof_scale.distill loads it (eval mode; training changes the copy in place)."""
    if teacher is not None:
        return DiffusersUNet(copy.deepcopy(teacher), 1.0, 0.0)
    return DiffusersUNet(build_unet(TeacherNetConfig(context_dim=table.shape[-1])), 1.0, 0.0)


def _sid_session(kind: str, batch: int, steps: int, mode: str | None, device: torch.device, table: torch.Tensor,
                 teacher: torch.nn.Module | None = None, teacher_cfg: float = TEACHER_CFG) -> TrainingSession:
    """A data-free SiD-LSG row as proof_scale.distill trains it: the class prompts of `table` (its last row the empty
    prompt), no pairs, no run folder."""
    p = ps_rows.plan(kind, {**ps_rows.ROW_DEFAULTS, "batch": batch, "steps": steps}, teacher_cfg=teacher_cfg)
    config = _compiled(ps_rows.train_config(p, bf16=device.type == "cuda", save_every=0), mode)
    return TrainingSession(_teacher_unet(table, teacher), config, class_prompts(table, batch), None, None, device, resume=False)


def _work_cfg(teacher: str | None) -> float:
    """The CFG of the teacher row scored beside a work folder's teacher file (its SiD rows' κ4: guidance 1 or not
    decides which UNet calls a step makes), else the proof-scale teacher row's."""
    path = os.path.join(os.path.dirname(teacher), "teacher_eval.json") if teacher else ""
    if path and os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            return float(json.load(f)["cfg"])
    return TEACHER_CFG


def _gpu_busy(prof, wall: float) -> float:
    """The kernels' summed device time over the profiled steps' wall time (s)."""
    kernels = sum(getattr(e, "self_device_time_total", 0.0) for e in prof.key_averages())  # µs
    return kernels / 1e6 / wall if wall > 0 else float("nan")


def measure(kind: str, batch: int, mode: str | None, steps: int, warmup: int, profile: int, device: torch.device, table: torch.Tensor,
            teacher: torch.nn.Module | None = None, teacher_cfg: float = TEACHER_CFG) -> dict:
    """One row kind at one batch: ms/step over the steps after `warmup`, then `profile` steps under the profiler."""
    torch.manual_seed(0)
    total = steps + profile
    if ps_rows.is_prompts_row(kind):
        session = _sid_session(kind, batch, total, mode, device, table, teacher, teacher_cfg)
        run = lambda on_step: session.run(total, on_step)  # noqa: E731
    else:
        unet = _teacher_unet(table, teacher)
        elpips = ELatentLPIPS(LatentLPIPS(1, width=0.25), get_encoder("custom-1", 1))
        config = train_config_for_kind(kind, batch, steps=total)
        if mode is not None:  # no R1 in either mode: inductor has no double backward
            config = _compiled(dataclasses.replace(config, discriminator=dataclasses.replace(config.discriminator, r1_gamma=0.0)), mode)
        trainer = Trainer(unet, config, elpips if config.loss.regression != "mse" else None, device)
        run = lambda on_step: trainer.run(_batches(total, batch, device, table[:-1]), total, on_step)  # noqa: E731
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    times: list[float] = []
    prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) if profile and cuda else None
    started = time.perf_counter()

    last: dict = {}

    def on_step(step, logs):
        if cuda:
            torch.cuda.synchronize(device)
        times.append(time.perf_counter())
        if step == steps:  # the last timed step's losses: modes that train alike print alike (a graph replaying
            last.update({k: float(v) for k, v in (logs or {}).items() if k in ("sid", "fake_score", "g_total")})  # stale inputs would not)
            if prof is not None:
                prof.start()
        return False

    run(on_step)
    if prof is not None:
        prof.stop()
    per = (times[steps - 1] - times[warmup - 1]) / (steps - warmup)
    row = {"row": kind + ("" if mode is None else f" {mode}"), "batch": batch, "ms_per_step": 1000 * per,
           "samples_per_second": batch / per, "peak_gib": torch.cuda.max_memory_allocated(device) / 2**30 if cuda else float("nan"),
           "warmup_seconds": times[warmup - 1] - started}  # the untimed first steps: a compiled row's compile
    if prof is not None:
        row["gpu_busy"] = _gpu_busy(prof, times[-1] - times[steps - 1])
    if last:
        row["last_losses"] = last
    return row


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_proof_scale_train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", default=",".join(ROW_KINDS), help=f"of {', '.join((*ROW_KINDS, *ps_rows.SID_ROWS))}")
    p.add_argument("--batches", default="256,1024")
    p.add_argument("--steps", type=int, default=30, help="steps per measurement, the warm-up's included")
    p.add_argument("--warmup", type=int, default=10, help="untimed first steps")
    p.add_argument("--compile", action="store_true", help="each row eager and with compile_blocks, both with r1_gamma 0")
    p.add_argument("--compile-modes", default="default", help="with --compile: the torch.compile modes measured after eager "
                   "(training.config.COMPILE_MODES, comma-separated; reduce-overhead: CUDA graphs of the compiled blocks)")
    p.add_argument("--graph", action="store_true", help="the SiD rows also with each step replayed as one CUDA graph "
                   "(TrainConfig.cuda_graph; after eager and any --compile modes)")
    p.add_argument("--channels-last", action="store_true", help="each mode also with TrainConfig.channels_last (NHWC weights "
                   "and activations), measured right after it as MODE+nhwc")
    p.add_argument("--modes", default="", help="exactly these modes, in this order (comma-separated: eager, a compile mode, "
                   "graph, graph+MODE, any of them +nhwc), in place of what --compile/--graph/--channels-last derive")
    p.add_argument("--profile", type=int, default=0, help="this many more steps under torch.profiler (GPU busy share)")
    p.add_argument("--device", default="cuda", help="cuda, or cpu for a check of the code paths")
    p.add_argument("--teacher", default=None, help="a teacher file (proof_scale.teacher) for its weights and context table "
                   "instead of random ones: the shapes a run trains at, so a compile here warms torch's cache for that run")
    p.add_argument("--teacher-cfg", type=float, default=None, help="the SiD rows' κ4 (default: the teacher_eval.json beside "
                   f"--teacher, as the run's rows take it; else {TEACHER_CFG})")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    if not 0 < args.warmup < args.steps:
        p.error("--warmup must be at least 1 and below --steps")
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True  # as the pipeline runs
    teacher, table = load_teacher(args.teacher)[:2] if args.teacher else (None, torch.randn(11, 77, 64))  # 10 classes + ""
    table = table.to(device)
    teacher_cfg = args.teacher_cfg if args.teacher_cfg is not None else _work_cfg(args.teacher)
    compiled = args.compile_modes.split(",") if args.compile else []
    # with both flags, also the graph of each compiled mode that has no CUDA graphs of its own
    graphs = ["graph", *(f"graph+{m}" for m in compiled if m != "reduce-overhead")] if args.graph else []
    modes = ("eager", *compiled, *graphs) if args.compile or args.graph else (None,)
    if args.channels_last:
        modes = tuple(m for base in modes for m in (base, "nhwc" if base is None else f"{base}+nhwc"))
    if args.modes:  # e.g. "eager,graph,graph+nhwc,graph+default": the cheap modes first, a cold compile last
        modes = tuple(args.modes.split(","))
    rows = []
    for kind, batch, mode in ((k, int(b), m) for k in args.rows.split(",") for b in args.batches.split(",") for m in modes):
        try:
            rows.append(measure(kind, batch, mode, args.steps, args.warmup, args.profile, device, table, teacher, teacher_cfg))
        except Exception as e:  # noqa: BLE001 — a mode that cannot run (e.g. a graph capture) is a result too; the rest go on
            print(f"| {kind} {mode} | {batch} | failed: {type(e).__name__}: {str(e)[:300]}", flush=True)
            continue
        r = rows[-1]  # printed at once: a call cut short keeps what ran
        print(f"| {r['row']} | {batch} | {r['ms_per_step']:.1f} ms/step, first {args.warmup} steps {r['warmup_seconds']:.0f} s"
              + (f", GPU busy {100 * r['gpu_busy']:.0f} %" if "gpu_busy" in r else "")
              + "".join(f", {k} {v:.4g}" for k, v in r.get("last_losses", {}).items()), flush=True)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device: {name} (torch {torch.__version__}); {'bf16 autocast, ' if device.type == 'cuda' else ''}batches on the device\n")
    busy = args.profile > 0
    print("| row | batch | ms/step | training samples/s | peak GiB |" + (" GPU busy |" if busy else ""))
    print("|---|---|---|---|---|" + ("---|" if busy else ""))
    for r in rows:  # (failed modes were printed as they ended)
        print(f"| {r['row']} | {r['batch']} | {r['ms_per_step']:.1f} | {r['samples_per_second']:.0f} | {r['peak_gib']:.2f} |"
              + (f" {100 * r.get('gpu_busy', float('nan')):.0f} % |" if busy else ""))
    finish("benchmarks.bench_proof_scale_train", argv, rows, args.json, device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
