"""Probe: GroupNorm at the SD/SDXL VAE decoder's shapes, native and split into wide reductions.

Why: probe_vae_decoder at 1024², batch 1, bf16 on an H100 puts 46 of the decoder's 89 ms in one kernel,
RowwiseMomentsCUDAKernel (GroupNorm's statistics), at ~143 GB/s: with batch 1 and 32 groups it reduces 32 rows of
up to 4 M elements, one thread block a row, so 32 of the GPU's 132 SMs work. The split form computes the same
statistics with torch's generic reductions (which spread one row over many blocks) and applies them in one
elementwise pass (an fp32 addcmul, or inference-mode batch norm with the group statistics: `affine="batch_norm"`). The table gives each variant's time and its largest error against an fp32 reference next to the
native kernel's own error. The split form is onestep/group_norm.py's group_norm_wide, which VAE Decode (fast) runs.

    python -m benchmarks.probe_group_norm [--batch 1] [--size 1024]
"""
from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from onestep.group_norm import group_norm_wide


def time_ms(fn, rounds: int) -> float:
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(rounds):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / rounds


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--size", type=int, default=1024, help="image size: the decoder's levels are size/8 .. size")
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--shapes", default="", help="CHANNELSxSIZE,... instead of the decoder's (e.g. the SD UNet's at 512²: "
                   "320x64,640x32,1280x16,1280x8)")
    args = p.parse_args(argv)
    dev = torch.device("cuda")
    s = args.size
    shapes = [(512, s // 8), (512, s // 4), (512, s // 2), (256, s // 2), (256, s), (128, s)]
    if args.shapes:
        shapes = [tuple(int(v) for v in item.split("x")) for item in args.shapes.split(",")]
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}, bf16, batch {args.batch}, 32 groups")
    print("| shape | native ms | split ms | split, batch-norm pass ms | native NHWC ms | native max err | split max err | "
          "batch-norm pass max err | GB/s split |")
    print("|---|---|---|---|---|---|---|---|---|")
    total = [0.0, 0.0, 0.0]
    for ch, hw in shapes:
        g = torch.Generator(device=dev).manual_seed(0)
        x = (torch.randn(args.batch, ch, hw, hw, device=dev, generator=g) * 2 + 0.5).to(torch.bfloat16)
        w = (torch.rand(ch, device=dev, generator=g) + 0.5).to(torch.bfloat16)
        b = (torch.randn(ch, device=dev, generator=g) * 0.1).to(torch.bfloat16)
        ref = F.group_norm(x.float(), 32, w.float(), b.float(), 1e-6)
        with torch.inference_mode():
            native = time_ms(lambda: F.group_norm(x, 32, w, b, 1e-6), args.rounds)
            split = time_ms(lambda: group_norm_wide(x, 32, w, b, 1e-6), args.rounds)
            split_bn = time_ms(lambda: group_norm_wide(x, 32, w, b, 1e-6, "batch_norm"), args.rounds)
            xl = x.contiguous(memory_format=torch.channels_last)
            nhwc = time_ms(lambda: F.group_norm(xl, 32, w, b, 1e-6), args.rounds)
            err_n = (F.group_norm(x, 32, w, b, 1e-6).float() - ref).abs().max().item()
            err_s = (group_norm_wide(x, 32, w, b, 1e-6).float() - ref).abs().max().item()
            err_bn = (group_norm_wide(x, 32, w, b, 1e-6, "batch_norm").float() - ref).abs().max().item()
        gbs = 4 * x.numel() * x.element_size() / split / 1e6  # the least it moves: two reads for the statistics, one read and one write
        total[0] += native
        total[1] += split
        total[2] += split_bn
        print(f"| {args.batch}×{ch}×{hw}² | {native:.3f} | {split:.3f} | {split_bn:.3f} | {nhwc:.3f} | {err_n:.4f} | {err_s:.4f} | "
              f"{err_bn:.4f} | {gbs:.0f} |")
    print(f"sum over one call per shape: native {total[0]:.2f} ms, split {total[1]:.2f} ms, split with the batch-norm pass {total[2]:.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
