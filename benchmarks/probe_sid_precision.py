"""How much of SiD-LSG's generator signal survives bf16 autocast (issue 16): the data-free row trains under bf16 on
the GPU, the released SiD-LSG runs in fp32 with TF32 off. G's gradient follows y_real − y_fake (the teacher φ at κ4,
the fake score ψ at κ2 = 1, both on x_t from G's sample); this probe computes that gap on the CPU in fp32 and under
bf16 autocast from a carried state (proof_scale/carried_state.py) and prints, per timestep, the gap, the bf16 error
and their cosine — for single noise draws, and for the gap averaged over K draws with x_g fixed (what G's expected
gradient follows: an error that shrinks as 1/sqrt(K) is noise that training averages out; one that does not is bias):

  python -m benchmarks.probe_sid_precision --state benchmarks/results/proof_scale_h200_run42/state_g \
      --context .devdata/ps/context.safetensors [--batch 40] [--draws 12] [--kappa4 1.5]

The context table is the proof-scale run's (`proof_scale_bundle.sh` puts it in .devdata/ps/). Writes nothing.
"""
from __future__ import annotations

import argparse
import copy
import os

import torch
from safetensors import safe_open

from onestep.schedule import SD_SCHEDULE
from proof_scale.carried_state import NET_PREFIX, NET_SUFFIX, G_FILE, dequantize, read
from proof_scale.teacher_import import import_teacher
from training.methods.sid_losses import diffuse, x0_from_output

TEACHER = "default_models/proof_scale/fmnist-teacher.safetensors"


def carried(teacher: torch.nn.Module, path: str) -> torch.nn.Module:
    """A copy of the teacher with a carried network's weights."""
    base = teacher.state_dict()
    weights = dequantize(read(path)[0], base)
    net = copy.deepcopy(teacher)
    net.load_state_dict({k: weights.get(k, v) for k, v in base.items()})
    return net.eval()


class Gap:
    """y_real − y_fake on x_t = sqrt(ᾱ_t)·x_g + sqrt(1 − ᾱ_t)·ε, in fp32 or under bf16 autocast."""

    def __init__(self, phi, psi, cond, uncond, kappa4: float):
        self.phi, self.psi, self.cond, self.uncond, self.kappa4 = phi, psi, cond, uncond, kappa4
        self.ac = SD_SCHEDULE.alphas_cumprod().float()

    def x0(self, net, xt, t, context):  # the trainer's formulas (training/methods/sid_losses.py)
        return x0_from_output("eps", net(xt, t, encoder_hidden_states=context).sample, xt, self.ac[t].view(-1, 1, 1, 1)).float()

    @torch.no_grad()
    def __call__(self, xg, eps, t, bf16: bool) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            xt = diffuse(xg, eps, self.ac[t].view(-1, 1, 1, 1))
            real_c, real_u = self.x0(self.phi, xt, t, self.cond), self.x0(self.phi, xt, t, self.uncond)
            return real_u + self.kappa4 * (real_c - real_u) - self.x0(self.psi, xt, t, self.cond)


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return torch.nn.functional.cosine_similarity(a.flatten(1), b.flatten(1), dim=1).mean().item()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--state", required=True, help=f"a carried-state folder ({G_FILE}, {NET_PREFIX}fake_score{NET_SUFFIX})")
    p.add_argument("--context", required=True, help="the run's context table (context.safetensors: 10 classes + the empty prompt)")
    p.add_argument("--teacher", default=TEACHER)
    p.add_argument("--batch", type=int, default=40)
    p.add_argument("--draws", type=int, default=12, help="noise draws averaged per item for the expected gap")
    p.add_argument("--kappa4", type=float, default=1.5)
    p.add_argument("--t-init", type=int, default=625)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    torch.manual_seed(a.seed)
    teacher = import_teacher(a.teacher)[0].float().eval()
    g = carried(teacher, os.path.join(a.state, G_FILE))
    psi = carried(teacher, os.path.join(a.state, f"{NET_PREFIX}fake_score{NET_SUFFIX}"))
    table = safe_open(a.context, "pt").get_tensor("context")
    n, c, s = a.batch, teacher.config.in_channels, teacher.config.sample_size
    labels = torch.arange(n) % (len(table) - 1)
    gap = Gap(teacher, psi, table[labels], table[-1:].expand(n, -1, -1), a.kappa4)
    z, eps = torch.randn(n, c, s, s), torch.randn(n, c, s, s)
    t_init = torch.full((n,), a.t_init)
    a0 = gap.ac[a.t_init]

    def sample(bf16: bool) -> torch.Tensor:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return gap.x0(g, (1 - a0).sqrt() * z, t_init, gap.cond)

    xg32, xg16 = sample(False), sample(True)
    print(f"state {a.state}, batch {n}, latents {c}x{s}x{s}, kappa4 {a.kappa4}; G's sample bf16 vs fp32: mean abs "
          f"{(xg16 - xg32).abs().mean():.4f}\n")
    print("One noise draw (G, psi and phi all in the same precision):\n")
    print("| t | mean abs gap, fp32 | bf16 error, mean abs | cosine(bf16 gap, fp32 gap) |\n|---|---|---|---|")
    for tv in (50, 200, 400, 625, 800, 950):
        t = torch.full((n,), tv)
        g32, g16 = gap(xg32, eps, t, False), gap(xg16, eps, t, True)
        print(f"| {tv} | {g32.abs().mean():.4f} | {(g16 - g32).abs().mean():.4f} | {cosine(g16, g32):.3f} |")
    print(f"\nThe gap averaged over {a.draws} noise draws per item, x_g fixed (fp32):\n")
    print("| t | mean abs E[gap], fp32 | E[bf16 error], mean abs | cosine(E[gap] bf16, E[gap] fp32) |\n|---|---|---|---|")
    for tv in (200, 400, 625, 800):
        t = torch.full((n,), tv)
        s32, s16 = torch.zeros_like(xg32), torch.zeros_like(xg32)
        for _ in range(a.draws):
            e = torch.randn_like(xg32)
            s32 += gap(xg32, e, t, False) / a.draws
            s16 += gap(xg32, e, t, True) / a.draws
        print(f"| {tv} | {s32.abs().mean():.4f} | {(s16 - s32).abs().mean():.4f} | {cosine(s16, s32):.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
