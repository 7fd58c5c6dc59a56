"""Training-step speed of the proof-scale distillation rows (issue 14): the Diffusion2GAN trainer on the benchmark's
small teacher architecture (1×32×32 latents), per row kind and batch, with the batches already on the GPU (as
DevicePairs gives them), bf16 autocast as the pipeline trains.

  python -m benchmarks.bench_proof_scale_train [--rows mse,latentlpips,elatentlpips,diffusion2gan] [--batches 256,1024]
      [--steps 30] [--compile] [--json OUT.json]

Prints a markdown table (row, batch, ms/step, training samples/s, peak GiB) and the command; the first 10 steps
(warm-up, the GAN's first R1 step) are not timed. Weights are random: speed does not depend on them.
--compile measures every row twice, eager and with TrainConfig.compile_blocks (training/compile.py; its compile falls in
the untimed steps), both without R1 (inductor has no double backward; the runs since session 10 train without it).
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time

import torch

from benchmarks.records import finish
from onestep.latent_lpips import ELatentLPIPS, LatentLPIPS, get_encoder
from proof_scale.rows import ROW_KINDS, train_config_for_kind
from proof_scale.teacher import TeacherNetConfig, build_unet
from training.diffusers_unet import DiffusersUNet
from training.trainer import Trainer

WARMUP = 10


def _batches(n: int, batch: int, device: torch.device, context: torch.Tensor):
    g = torch.Generator(device).manual_seed(0)
    for step in range(n):
        labels = torch.randint(0, 10, (batch,), generator=g, device=device)
        yield {"noise": torch.randn(batch, 1, 32, 32, generator=g, device=device), "latent": torch.rand(batch, 1, 32, 32, generator=g, device=device) * 2 - 1,
               "context": context[labels], "prompt_index": labels, "seed": torch.arange(batch, device=device) + step * batch}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_proof_scale_train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", default=",".join(ROW_KINDS))
    p.add_argument("--batches", default="256,1024")
    p.add_argument("--steps", type=int, default=30, help="steps per measurement (the first 10 untimed)")
    p.add_argument("--compile", action="store_true", help="each row eager and with compile_blocks, both with r1_gamma 0")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    device = torch.device("cuda")
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True  # as the pipeline runs
    context = torch.randn(11, 77, 64, device=device)
    rows = []
    modes = (False, True) if args.compile else (False,)
    for kind, batch, compiled in ((k, int(b), c) for k in args.rows.split(",") for b in args.batches.split(",") for c in modes):
        torch.manual_seed(0)
        unet = DiffusersUNet(build_unet(TeacherNetConfig(context_dim=64)), 1.0, 0.0)
        elpips = ELatentLPIPS(LatentLPIPS(1, width=0.25), get_encoder("custom-1", 1))
        config = train_config_for_kind(kind, batch, steps=args.steps)
        if args.compile:
            config = dataclasses.replace(config, compile_blocks=compiled,
                                         discriminator=dataclasses.replace(config.discriminator, r1_gamma=0.0))
        trainer = Trainer(unet, config, elpips if config.loss.regression != "mse" else None, device)
        torch.cuda.reset_peak_memory_stats(device)
        times = []

        def on_step(step, logs, times=times):
            torch.cuda.synchronize(device)
            times.append(time.perf_counter())

        trainer.run(_batches(args.steps, batch, device, context), args.steps, on_step)
        per = (times[-1] - times[WARMUP - 1]) / (len(times) - WARMUP)
        rows.append({"row": kind + (" compiled" if compiled else ""), "batch": batch, "ms_per_step": 1000 * per, "samples_per_second": batch / per,
                     "peak_gib": torch.cuda.max_memory_allocated(device) / 2**30})
        del trainer, unet
        torch.cuda.empty_cache()
    print(f"device: {torch.cuda.get_device_name(device)} (torch {torch.__version__}); bf16 autocast, batches on the GPU\n")
    print("| row | batch | ms/step | training samples/s | peak GiB |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['row']} | {r['batch']} | {r['ms_per_step']:.1f} | {r['samples_per_second']:.0f} | {r['peak_gib']:.2f} |")
    finish("benchmarks.bench_proof_scale_train", argv, rows, args.json, device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
