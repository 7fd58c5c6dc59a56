"""Teacher sampling speed of the proof-scale benchmark (issue 14): how fast the small teacher makes pairs, eager
against CUDA-graph replay (and channels-last / torch.compile), at the pairs' setting (Euler, 50 steps, CFG 1.5).

  python -m benchmarks.bench_proof_scale_sampling [--teacher WORK/teacher.safetensors] [--count 8000] [--batch 2000]
      [--modes eager,graph,graph-cl,compile-graph] [--json OUT.json]

Prints a markdown table (mode, batch, pairs/s, UNet images/s, max |Δ| to eager) and the command. Without
--teacher a randomly initialised teacher of the benchmark's architecture is timed (speed does not depend on the
weights; the Δ column then compares random networks' outputs, still a check that replay computes the same).
"""
from __future__ import annotations

import argparse
import sys
import time

import torch

from benchmarks.records import finish
from proof_scale.sampler import class_labels, initial_noise, sample_teacher_from_noise
from proof_scale.teacher import TeacherNetConfig, build_unet, load_teacher, random_context_table


def _sample(unet, table, z, labels, args, graphs: bool) -> torch.Tensor:
    return sample_teacher_from_noise(unet, table, z, labels, args.steps, args.cfg, "euler", args.batch, graphs=graphs)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_proof_scale_sampling", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teacher", default=None, help="a proof_scale teacher.safetensors (default: random weights)")
    p.add_argument("--count", type=int, default=8000, help="pairs per timed mode")
    p.add_argument("--batch", type=int, default=2000, help="pairs per sampling call (CFG doubles the UNet batch)")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--cfg", type=float, default=1.5)
    p.add_argument("--modes", default="eager,graph,graph-cl", help="comma-separated: eager, eager-cl, graph, graph-cl, compile-graph")
    p.add_argument("--json", default=None, help="also write the rows as JSON here")
    args = p.parse_args(argv)
    device = torch.device("cuda")
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True
    if args.teacher:
        unet, table, _, _ = load_teacher(args.teacher, device)
    else:
        torch.manual_seed(0)
        unet, table = build_unet(TeacherNetConfig(context_dim=64)).to(device).eval(), random_context_table(77, 64).to(device)
    unet.requires_grad_(False)
    z, labels = initial_noise(args.count, 7), class_labels(args.count)
    reference = None
    rows = []
    print(f"device: {torch.cuda.get_device_name(device)} (torch {torch.__version__}); Euler {args.steps} steps, CFG {args.cfg:g}\n")
    print("| mode | batch | pairs/s | UNet images/s | first call (s) | max abs Δ to first mode |")
    print("|---|---|---|---|---|---|", flush=True)
    for mode in args.modes.split(","):
        net = unet.to(memory_format=torch.channels_last if mode.endswith("-cl") else torch.contiguous_format)
        if mode == "compile-graph":
            net = torch.compile(unet)
        graphs = mode != "eager" and mode != "eager-cl"
        try:
            t0 = time.perf_counter()
            _sample(net, table, z[: args.batch], labels[: args.batch], args, graphs)  # warm-up / capture / compile
            torch.cuda.synchronize()
            first = time.perf_counter() - t0
            t0 = time.perf_counter()
            x = _sample(net, table, z, labels, args, graphs)
            torch.cuda.synchronize()
            seconds = time.perf_counter() - t0
        except Exception as e:  # noqa: BLE001 (a mode that cannot run here is reported, not fatal)
            rows.append({"mode": mode, "error": f"{type(e).__name__}: {e}"[:300]})
            print(f"| {mode} | — | failed: {rows[-1]['error']} | | | |", flush=True)
            continue
        if reference is None:
            reference = x
        nfe = args.steps * (2 if args.cfg != 1.0 else 1)
        rows.append({"mode": mode, "batch": args.batch, "count": args.count, "seconds": seconds, "first_call_seconds": first,
                     "pairs_per_second": args.count / seconds, "unet_images_per_second": args.count * nfe / seconds,
                     "max_abs_diff_to_first_mode": float((x - reference).abs().max())})
        r = rows[-1]
        print(f"| {r['mode']} | {r['batch']} | {r['pairs_per_second']:.0f} | {r['unet_images_per_second']:.0f} | {r['first_call_seconds']:.1f} | "
              f"{r['max_abs_diff_to_first_mode']:.2e} |", flush=True)
    unet.to(memory_format=torch.contiguous_format)
    finish("benchmarks.bench_proof_scale_sampling", argv, rows, args.json, device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
