"""Can the conditional diffusion discriminator tell a one-step student's samples from its teacher's at all (issue 14)?

In proof-scale runs 6 and 9 the Diffusion2GAN D never separated the regression student's outputs from the teacher's
(d_real ≈ d_fake while it learned the wrong-prompt fakes), then collapsed to constant logits. This probe takes G out
of the loop: fixed paired sets (teacher Euler/CFG samples and the student's one-step samples from the same noise z
and prompt), a fresh D per configuration trained only as a classifier with the trainer's loss (non-saturating,
averaged over positions and scales, no R1), and held-out accuracy at fixed noise levels.

  python -m benchmarks.probe_discriminator --teacher T.safetensors --student S.safetensors --context CTX.safetensors
      [--configs NAME:key=value,...;...] [--steps 600] [--batch 256] [--count 12000] [--json OUT.json]

Configuration keys: lr, t_min, t_max, z (0/1: z-conditioning), freeze (1: only the readout heads train), beta1,
multiscale (0/1). Prints one table row per configuration and evaluation point: held-out accuracy (real > 0 and
fake < 0, averaged) and paired accuracy (score(real) > score(fake) for the same z) at t = 0, 100, 250, 499.
"""
from __future__ import annotations

import argparse
import copy
import sys
import time

import torch
from safetensors.torch import load_file

from benchmarks.records import finish
from onestep.parameterization import OneStepGenerator, OneStepSpec
from onestep.precision import keep_output_float32
from proof_scale.sampler import class_labels, initial_noise, sample_teacher_from_noise
from proof_scale.teacher_import import import_teacher, import_unet
from training.diffusers_unet import DiffusersUNet
from training.discriminator import ConditionalDiffusionDiscriminator, diffuse
from training.losses import _ns, item_score

DEFAULT_CONFIGS = ("trainer:lr=1.5e-4;lr1e-3:lr=1e-3;t0-100:t_max=100;heads-only:freeze=1,lr=1e-3;"
                   "no-z:z=0;beta0:beta1=0;t0:t_max=0;lr1e-3-t0-100:lr=1e-3,t_max=100")
BASE = {"lr": 1.5e-4, "t_min": 0, "t_max": 499, "z": 1, "freeze": 0, "beta1": 0.9, "multiscale": 1}
EVAL_T = (0, 100, 250, 499)


def parse_configs(text: str) -> list[tuple[str, dict]]:
    out = []
    for item in filter(None, text.split(";")):
        name, _, rest = item.partition(":")
        cfg = dict(BASE)
        for kv in filter(None, rest.split(",")):
            k, _, v = kv.partition("=")
            if k not in BASE:
                raise ValueError(f"unknown key {k!r} in {item!r}; keys: {', '.join(BASE)}")
            cfg[k] = type(BASE[k])(float(v)) if isinstance(BASE[k], int) else float(v)
        out.append((name, cfg))
    return out


@torch.no_grad()
def student_samples(student, spec: OneStepSpec, table, z, labels, batch: int, device) -> torch.Tensor:
    keep_output_float32(student.conv_out)
    gen = OneStepGenerator(DiffusersUNet(student, 1.0, 0.0), spec).to(device).eval()
    out = []
    for i in range(0, len(labels), batch):
        with torch.autocast(device.type, dtype=torch.bfloat16):
            out.append(gen(z[i:i + batch].to(device), table[labels[i:i + batch].to(device)]).float().cpu())
    return torch.cat(out)


def d_score(d, x, t, z, ctx) -> torch.Tensor:
    """Per-item mean logit over positions and scales (the trainer's own d_rank_acc score)."""
    return item_score(d(x, t, z, ctx))


@torch.no_grad()
def evaluate(d, spec, real, fake, z, ctx, device) -> dict:
    d.eval()
    g = torch.Generator().manual_seed(7)
    out = {}
    for tv in EVAL_T:
        acc, paired = [], []
        for i in range(0, len(real), 1000):
            r, f, zz, cc = (v[i:i + 1000].to(device) for v in (real, fake, z, ctx))
            eps = torch.randn(r.shape, generator=g).to(device)
            t = torch.full((len(r),), float(tv), device=device)
            with torch.autocast(device.type, dtype=torch.bfloat16):
                sr = d_score(d, diffuse(spec, r, eps, t), t, zz, cc)
                sf = d_score(d, diffuse(spec, f, eps, t), t, zz, cc)
            acc.append(((sr > 0).float().mean() + (sf < 0).float().mean()).item() / 2)
            paired.append((sr > sf).float().mean().item())
        out[f"acc_t{tv}"], out[f"paired_t{tv}"] = sum(acc) / len(acc), sum(paired) / len(paired)
    d.train()
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(prog="python -m benchmarks.probe_discriminator", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teacher", required=True, help="the proof-scale teacher generator file (method teacher)")
    p.add_argument("--student", required=True, help="a one-step student generator file of the same architecture")
    p.add_argument("--context", required=True, help='.safetensors with "context" [11, L, D] (the class prompts + the empty one)')
    p.add_argument("--configs", default=DEFAULT_CONFIGS)
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--count", type=int, default=12000, help="paired samples (the last 2,000 are held out)")
    p.add_argument("--eval-every", type=int, default=200)
    p.add_argument("--timestep", type=int, default=625, help="the student's one-step timestep (ε at t, σ·z input)")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    device = torch.device("cuda")
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    teacher, net, _ = import_teacher(args.teacher)
    student, _, _ = import_unet(args.student)
    teacher, table = teacher.to(device), load_file(args.context)["context"].float().to(device)
    spec = OneStepSpec("eps", args.timestep, "sigma_z")
    labels, z = class_labels(args.count), initial_noise(args.count, 123)
    t0 = time.monotonic()
    real = sample_teacher_from_noise(teacher, table, z, labels, 50, 1.5, "euler", 2000)
    fake = student_samples(student, spec, table, z, labels, 2000, device)
    rmse = (real - fake).pow(2).mean().sqrt().item()
    print(f"device: {torch.cuda.get_device_name(device)}; {args.count} pairs in {time.monotonic() - t0:.0f} s; "
          f"RMSE teacher−student {rmse:.4f}; std teacher {real.std():.4f}, student {fake.std():.4f}\n")
    ctx = table[labels].cpu()
    n_test = 2000
    split = lambda v: (v[:-n_test], v[-n_test:])  # noqa: E731
    (r_tr, r_te), (f_tr, f_te), (z_tr, z_te), (c_tr, c_te) = map(split, (real, fake, z, ctx))
    print("| config | step | loss | " + " | ".join(f"acc t={t} | paired t={t}" for t in EVAL_T) + " | s |")
    print("|---|---|---|" + "---|---|" * len(EVAL_T) + "---|", flush=True)
    rows = []
    for name, cfg in parse_configs(args.configs):
        enc = DiffusersUNet(copy.deepcopy(teacher).float(), 1.0, 0.0).encoder_copy()
        d = ConditionalDiffusionDiscriminator(enc, bool(cfg["z"]), bool(cfg["multiscale"]), 64, torch.Generator().manual_seed(0)).to(device)
        d.requires_grad_(True)
        if cfg["freeze"]:
            d.encoder.requires_grad_(False)
        opt = torch.optim.AdamW([q for q in d.parameters() if q.requires_grad], lr=cfg["lr"], betas=(cfg["beta1"], 0.999), weight_decay=0.0)
        g = torch.Generator().manual_seed(1)
        start, losses = time.monotonic(), []
        for step in range(1, args.steps + 1):
            idx = torch.randint(0, len(r_tr), (args.batch,), generator=g)
            r, f, zz, cc = (v[idx].to(device) for v in (r_tr, f_tr, z_tr, c_tr))
            t = torch.randint(int(cfg["t_min"]), int(cfg["t_max"]) + 1, (args.batch,), generator=g).float().to(device)
            eps = torch.randn(r.shape, generator=g).to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16):
                logits = d(torch.cat([diffuse(spec, r, eps, t), diffuse(spec, f, eps, t)]), t.repeat(2), zz.repeat(2, 1, 1, 1), cc.repeat(2, 1, 1))
            halves = [list(x) for x in zip(*[l.split(args.batch) for l in logits])]
            loss = (_ns(halves[0], real=True) + _ns(halves[1], real=False)).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(d.parameters(), 1.0)
            opt.step()
            losses.append(loss.item())
            if step % args.eval_every == 0 or step == args.steps:
                m = evaluate(d, spec, r_te, f_te, z_te, c_te, device)
                row = {"config": name, **cfg, "step": step, "loss": sum(losses[-50:]) / len(losses[-50:]), **m, "seconds": time.monotonic() - start}
                rows.append(row)
                print(f"| {name} | {step} | {row['loss']:.4f} | " + " | ".join(f"{m[f'acc_t{t}']:.3f} | {m[f'paired_t{t}']:.3f}" for t in EVAL_T)
                      + f" | {row['seconds']:.0f} |", flush=True)
        del d, opt
    finish("benchmarks.probe_discriminator", argv, rows, args.json, device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
