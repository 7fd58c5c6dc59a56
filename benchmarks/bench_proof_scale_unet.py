"""Where the proof-scale teacher's GPU time goes (issue 14): its UNet's forward (sampling) and forward + backward
(training) at the pipeline's batch sizes, per memory format and precision, and the top CUDA kernels of each.

  python -m benchmarks.bench_proof_scale_unet [--forward-batch 4000] [--train-batch 1024] [--variants ...] [--profile]

Variants: nchw (bf16 autocast, float32 weights), nchw-nobench (cudnn.benchmark off), cl (channels-last + autocast),
cl-bf16 (channels-last, bf16 weights, no autocast), compile (nchw through torch.compile, mode "default": the
pipeline's --compile-teacher; its first call compiles, outside the timing). Each row prints as soon as it is measured: ms per call and
TFLOP/s from the UNet's counted FLOPs (torch.utils.flop_counter).
"""
from __future__ import annotations

import argparse
import sys
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from proof_scale.teacher import TeacherNetConfig, build_unet


def _flops(unet, x, t, c) -> float:
    with FlopCounterMode(display=False) as f, torch.no_grad():
        unet(x[:2].float(), t[:2], encoder_hidden_states=c[:2].float())
    return f.get_total_flops() / 2


def _time(fn, n: int = 8) -> float:
    fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / n


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_proof_scale_unet", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--forward-batch", type=int, default=4000)
    p.add_argument("--train-batch", type=int, default=1024)
    p.add_argument("--variants", default="nchw-nobench,nchw,cl,cl-bf16")
    p.add_argument("--profile", action="store_true", help="print the top CUDA kernels of each variant's forward")
    args = p.parse_args(argv)
    dev = torch.device("cuda")
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    torch.manual_seed(0)
    base = build_unet(TeacherNetConfig(context_dim=64))
    per_image = None
    print(f"device: {torch.cuda.get_device_name(dev)} (torch {torch.__version__})", flush=True)
    print("| variant | pass | batch | ms | TFLOP/s |\n|---|---|---|---|---|", flush=True)
    for variant in args.variants.split(","):
        torch.backends.cudnn.benchmark = variant != "nchw-nobench"
        cl = variant.startswith("cl")
        bf16_weights = variant.endswith("bf16")
        unet = build_unet(TeacherNetConfig(context_dim=64))
        unet.load_state_dict(base.state_dict())
        unet = unet.to(dev, dtype=torch.bfloat16 if bf16_weights else torch.float32)
        fmt = torch.channels_last if cl else torch.contiguous_format
        unet = unet.to(memory_format=fmt)
        if variant == "compile":
            unet.compile(mode="default", dynamic=False)
        for name, batch in (("forward", args.forward_batch), ("train", args.train_batch)):
            dtype = torch.bfloat16 if bf16_weights else torch.float32
            x = torch.randn(batch, 1, 32, 32, device=dev, dtype=dtype).contiguous(memory_format=fmt)
            t = torch.randint(0, 1000, (batch,), device=dev)
            c = torch.randn(batch, 77, 64, device=dev, dtype=dtype)
            if per_image is None:
                per_image = _flops(base.to(dev), x, t, c)
                base.cpu()

            def call(name=name, x=x, t=t, c=c):
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=not bf16_weights):
                    if name == "forward":
                        with torch.no_grad():
                            unet(x, t, encoder_hidden_states=c)
                    else:
                        out = unet(x.requires_grad_(False), t, encoder_hidden_states=c).sample
                        out.float().pow(2).mean().backward()
                        unet.zero_grad(set_to_none=True)

            try:
                sec = _time(call)
            except Exception as e:  # noqa: BLE001 (report and go on)
                print(f"| {variant} | {name} | {batch} | failed: {type(e).__name__}: {str(e)[:120]} | |", flush=True)
                continue
            flops = per_image * batch * (1 if name == "forward" else 3)
            print(f"| {variant} | {name} | {batch} | {1000 * sec:.1f} | {flops / sec / 1e12:.1f} |", flush=True)
            if args.profile and name == "forward":
                with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
                    call()
                    torch.cuda.synchronize()
                print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=12, max_name_column_width=70), flush=True)
        unet = None
        torch.cuda.empty_cache()
    print(f"\n{per_image / 1e9:.2f} GFLOP per image forward; python -m benchmarks.bench_proof_scale_unet {' '.join(argv)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
