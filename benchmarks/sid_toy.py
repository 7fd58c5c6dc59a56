"""The 2-D toy world of benchmarks/probe_sid_fixed_point.py (issue 16): a class-conditional mixture with an exact
teacher, the small networks that learn on it, the teacher's sampler and the scores.

The data: 3 classes × 3 modes on a ring, each class's modes apart, unequal weights. The teacher φ is its exact
ε-prediction under SD's schedule (conditional, and unconditional over the classes; with a class leak λ > 0 the exact ε
of a teacher whose classes leak into each other, so that it needs its CFG as the proof-scale teacher does). G, ψ and D
are MLPs. Samples are scored against the real mixture: energy distance (×100), k-NN precision / recall (k = 3), the
exact classifier's accuracy, the per-mode mass error (TV), and each mode's spread against the data's.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from onestep.parameterization import OneStepSpec
from training.methods.sid_losses import guided, x0_from_output

CLASSES, MODES_PER_CLASS, MODE_STD, RADIUS = 3, 3, 0.25, 1.2
MODE_WEIGHTS = (0.5, 0.3, 0.2)  # within each class
T_INIT = 625
SPEC = OneStepSpec(prediction="eps", timestep=T_INIT)
ALPHAS = SPEC.schedule.alphas_cumprod().float()

def mixture():
    """Mode centres [9, 2], their class [9] and weight within the class [9]: mode i on the ring at angle 2πi/9,
    class i mod 3, so each class's modes lie between the other classes'."""
    angles = torch.arange(CLASSES * MODES_PER_CLASS, dtype=torch.float32) * (2 * math.pi / (CLASSES * MODES_PER_CLASS))
    centres = RADIUS * torch.stack([angles.cos(), angles.sin()], dim=1)
    cls = torch.arange(CLASSES * MODES_PER_CLASS) % CLASSES
    weight = torch.tensor([MODE_WEIGHTS[i // CLASSES] for i in range(CLASSES * MODES_PER_CLASS)])
    return centres, cls, weight


CENTRES, MODE_CLASS, MODE_WEIGHT = mixture()


def context(c: torch.Tensor) -> torch.Tensor:
    """[B, 1, CLASSES + 1]: one-hot class, or the last slot alone for the unconditional ("empty prompt") branch (c = −1)."""
    out = torch.zeros(c.shape[0], 1, CLASSES + 1)
    out[torch.arange(c.shape[0]), 0, torch.where(c < 0, CLASSES, c)] = 1.0
    return out


UNCOND = context(torch.tensor([-1]))  # [1, 1, CLASSES + 1]: the empty prompt


def mode_prior(ctx: torch.Tensor, leak: float = 0.0) -> torch.Tensor:
    """[B, 9] prior of each mode under a context: its weight within the class, or weight / 3 unconditionally. With a
    leak λ > 0 the class's prior is (1 − λ)·p(mode|c) + λ·p(mode): a teacher that under-separates the classes."""
    onehot = ctx[:, 0, :]
    uncond = MODE_WEIGHT / CLASSES  # [9]
    is_cond = onehot[:, :CLASSES].sum(1, keepdim=True)  # [B, 1]
    cond = (1 - leak) * onehot[:, MODE_CLASS] * MODE_WEIGHT + leak * is_cond * uncond  # [B, 9]
    return cond + onehot[:, CLASSES:CLASSES + 1] * uncond


def alpha_at(t: torch.Tensor) -> torch.Tensor:
    """ᾱ_t per item [B, 1] for (float) timesteps t."""
    return ALPHAS[t.round().long().clamp(0, 999)].view(-1, 1)


class ExactTeacher(nn.Module):
    """φ: the mixture's exact ε-prediction at x_t, ε̂ = s·Σ_k r_k (x − a μ_k) / (a²σ² + s²), a = sqrt(ᾱ_t), s = sqrt(1 − ᾱ_t).
    leak > 0: the exact ε of a teacher whose classes leak into each other (mode_prior), so that its CFG helps it, as the
    real teacher's does (the proof-scale teacher needs CFG 1.5 for its class accuracy)."""

    def __init__(self, leak: float = 0.0):
        super().__init__()
        self.leak = leak

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        x = x_t.flatten(1)  # [B, 2]
        ab = alpha_at(t)
        a, s = ab.sqrt(), (1 - ab).sqrt()
        var = a * a * MODE_STD**2 + s * s  # [B, 1]
        diff = x[:, None, :] - a[:, :, None] * CENTRES[None]  # [B, 9, 2]
        logp = mode_prior(context, self.leak).clamp_min(1e-30).log() - diff.pow(2).sum(-1) / (2 * var) - torch.log(var)
        r = torch.softmax(logp, dim=1)  # [B, 9]
        eps = s * (r[:, :, None] * diff).sum(1) / var
        return eps.view_as(x_t)


class IntervalGuided(nn.Module):
    """φ with CFG κ only for t in [lo, hi): called as an unguided network (κ = 1 in guided()), it guides itself."""

    def __init__(self, teacher: nn.Module, kappa: float, interval: tuple[int, int]):
        super().__init__()
        self.teacher, self.kappa, self.interval = teacher, kappa, interval

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        cond = self.teacher(x_t, t, context)
        uncond = self.teacher(x_t, t, UNCOND.expand_as(context))
        inside = ((t >= self.interval[0]) & (t < self.interval[1])).float().view(-1, *([1] * (x_t.ndim - 1)))
        return cond + inside * (self.kappa - 1) * (cond - uncond)


def time_features(t: torch.Tensor) -> torch.Tensor:
    ab = alpha_at(t)
    freqs = torch.arange(1, 5, dtype=torch.float32) * math.pi
    tt = t.view(-1, 1) / 1000.0
    return torch.cat([ab.sqrt(), (1 - ab).sqrt(), (tt * freqs).sin(), (tt * freqs).cos()], dim=1)


def mlp(n_in: int, width: int = 256, depth: int = 4, n_out: int = 2) -> nn.Sequential:
    layers, n = [], n_in
    for _ in range(depth - 1):
        layers += [nn.Linear(n, width), nn.SiLU()]
        n = width
    return nn.Sequential(*layers, nn.Linear(n, n_out))


class ScoreNet(nn.Module):
    """ψ: ε from x_t, t and the context."""

    def __init__(self):
        super().__init__()
        self.net = mlp(2 + 10 + CLASSES + 1)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x_t.flatten(1), time_features(t), context[:, 0]], dim=1)).view_as(x_t)


class Critic(nn.Module):
    """D of the live GAN: one logit from x_t, t and the class (the pack's D reads the same three)."""

    def __init__(self):
        super().__init__()
        self.net = mlp(2 + 10 + CLASSES + 1, n_out=1)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x_t.flatten(1), time_features(t), context[:, 0]], dim=1))[:, 0]


class Generator(nn.Module):
    """G: x_g from z and the class."""

    def __init__(self):
        super().__init__()
        self.net = mlp(2 + CLASSES + 1)

    def forward(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([z, context(c)[:, 0]], dim=1)).view(-1, 2, 1, 1)


def real_samples(c: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """[B, 2] from the mixture's class c."""
    probs = (MODE_CLASS[None] == c[:, None]).float() * MODE_WEIGHT[None]
    k = torch.multinomial(probs, 1, generator=g)[:, 0]
    return CENTRES[k] + MODE_STD * torch.randn(c.shape[0], 2, generator=g)


def class_posterior(x: torch.Tensor) -> torch.Tensor:
    """[B, 3] p(c|x) under the data (equal class priors)."""
    logp = -(x[:, None, :] - CENTRES[None]).pow(2).sum(-1) / (2 * MODE_STD**2) + MODE_WEIGHT.log()[None]
    per_mode = torch.softmax(logp, dim=1)
    return torch.stack([per_mode[:, MODE_CLASS == c].sum(1) for c in range(CLASSES)], dim=1)


def tilted_samples(c: torch.Tensor, kappa: float, g: torch.Generator) -> torch.Tensor:
    """p(x|c)^κ p(x)^(1−κ) ∝ p(x|c)·p(c|x)^(κ−1): class-c samples resampled by p(c|x)^(κ−1)."""
    pool = real_samples(c.repeat_interleave(8), g)
    w = class_posterior(pool)[torch.arange(pool.shape[0]), c.repeat_interleave(8)].clamp_min(1e-12) ** (kappa - 1)
    pick = torch.multinomial(w.view(-1, 8), 1, generator=g)[:, 0]
    return pool.view(-1, 8, 2)[torch.arange(c.shape[0]), pick]


@torch.no_grad()
def ddim(teacher: nn.Module, z: torch.Tensor, c: torch.Tensor, kappa: float, steps: int = 50) -> torch.Tensor:
    """The teacher's deterministic sampler from x_999 = z (DDIM, ComfyUI's Euler in ᾱ terms), CFG κ."""
    ts = torch.linspace(999, 0, steps).round()
    x = z.view(-1, 2, 1, 1)
    cond, uncond = {"context": context(c)}, {"context": context(torch.full_like(c, -1))}
    for i, t in enumerate(ts):
        tt = t.expand(z.shape[0])
        a = ALPHAS[int(t)]
        x0 = x0_from_output("eps", guided(teacher, x, tt, cond, uncond, kappa), x, a)
        if i + 1 == len(ts):
            return x0.flatten(1)
        a_next = ALPHAS[int(ts[i + 1])]
        eps = (x - a.sqrt() * x0) / (1 - a).sqrt()
        x = a_next.sqrt() * x0 + (1 - a_next).sqrt() * eps
    return x.flatten(1)


def sample_gen(gen, n, g):
    c = torch.arange(n) % CLASSES
    with torch.no_grad():
        return gen(torch.randn(n, 2, generator=g), c).flatten(1), c


def energy(x: torch.Tensor, y: torch.Tensor) -> float:
    return float(2 * torch.cdist(x, y).mean() - torch.cdist(x, x).mean() - torch.cdist(y, y).mean())


def knn_radius(x: torch.Tensor, k: int) -> torch.Tensor:
    return torch.cdist(x, x).kthvalue(k + 1, dim=1).values


def score(samples: tuple[torch.Tensor, torch.Tensor], k: int = 3) -> dict:
    """The samples against the data's own samples (fixed seed): energy distance ×100 (per class, averaged), k-NN
    precision / recall (pooled), class accuracy by the exact posterior, per-mode mass TV and spread."""
    x, c = samples
    ref_g = torch.Generator().manual_seed(12345)
    real = real_samples(c, ref_g)
    e = sum(energy(x[c == i], real[c == i]) for i in range(CLASSES)) / CLASSES
    d = torch.cdist(x, real)
    precision = float((d <= knn_radius(real, k)[None]).any(1).float().mean())
    recall = float((d.T <= knn_radius(x, k)[None]).any(1).float().mean())
    acc = float((class_posterior(x).argmax(1) == c).float().mean())
    nearest = torch.cdist(x, CENTRES).argmin(1)
    tv, spread = 0.0, []
    for i in range(CLASSES):
        own = nearest[c == i]
        mass = torch.stack([(own == m).float().mean() for m in range(len(CENTRES))])
        target = torch.where(MODE_CLASS == i, MODE_WEIGHT, torch.zeros(()))
        tv += 0.5 * float((mass - target).abs().sum()) / CLASSES
    for m in range(len(CENTRES)):
        pts = x[(nearest == m) & (c == MODE_CLASS[m])]
        if len(pts) > 10:
            spread.append(float((pts - CENTRES[m]).pow(2).sum(1).mean().sqrt() / (MODE_STD * math.sqrt(2))))
    return {"energy": 100 * e, "precision": precision, "recall": recall, "class_acc": acc, "mode_tv": tv,
            "spread": sum(spread) / max(len(spread), 1)}
