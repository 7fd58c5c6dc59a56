"""benchmarks/probe_sid_fixed_point.py's ground truth (its toy world: benchmarks/sid_toy.py): its teacher φ is the
exact ε-prediction of the 2-D mixture diffused under SD's schedule (ε̂ = −sqrt(1 − ᾱ_t)·∇ log p_t, checked against
autograd of the mixture's log density), its unconditional branch is the class average, a per-t guidance interval guides
only inside it, and a short SiD run with the pack's losses moves G from its blurry start toward the data."""
from __future__ import annotations

import math

import pytest
import torch

from benchmarks import probe_sid_fixed_point as probe
from benchmarks import sid_toy as toy


def log_density(x: torch.Tensor, t: int, prior: torch.Tensor) -> torch.Tensor:
    """log p_t(x) of the diffused mixture: modes N(sqrt(ᾱ)·μ_k, (ᾱσ² + 1 − ᾱ)·I) with the given mode prior [9]."""
    ab = float(toy.ALPHAS[t])
    var = ab * toy.MODE_STD**2 + (1 - ab)
    d = x[:, None, :] - math.sqrt(ab) * toy.CENTRES[None]
    return torch.logsumexp(prior.log()[None] - d.pow(2).sum(-1) / (2 * var) - math.log(2 * math.pi * var), dim=1)


@pytest.mark.parametrize("leak", [0.0, 0.2])
def test_the_teacher_is_the_exact_epsilon_prediction(leak):
    g = torch.Generator().manual_seed(0)
    teacher = toy.ExactTeacher(leak)
    for t in (20, 300, 625, 979):
        x = (1.5 * torch.randn(64, 2, generator=g)).requires_grad_(True)
        for c in (0, 2, -1):
            ctx = toy.context(torch.full((64,), c))
            prior = toy.mode_prior(ctx, leak)[0]
            assert torch.isclose(prior.sum(), torch.tensor(1.0))
            (score,) = torch.autograd.grad(log_density(x, t, prior).sum(), x)
            eps = teacher(x.detach().view(-1, 2, 1, 1), torch.full((64,), float(t)), ctx).flatten(1)
            assert torch.allclose(eps, -math.sqrt(1 - float(toy.ALPHAS[t])) * score, atol=1e-4), (t, c)


def test_a_leaky_teacher_needs_its_guidance():
    """--leak models the proof-scale teacher: its classes leak at CFG 1 (class accuracy below the data's), and CFG 1.5
    restores them; the prior still sums to 1, and the other classes' modes get λ × their unconditional prior."""
    prior = toy.mode_prior(toy.context(torch.tensor([0, -1])), 0.2)
    assert torch.allclose(prior.sum(1), torch.ones(2))
    own = toy.MODE_CLASS == 0
    assert (prior[0, ~own] > 0).all() and torch.allclose(prior[0, ~own], 0.2 * prior[1, ~own])
    g = torch.Generator().manual_seed(0)
    c = torch.arange(1500) % toy.CLASSES
    z = torch.randn(1500, 2, generator=g)
    acc = {k: toy.score((toy.ddim(toy.ExactTeacher(0.2), z, c, k, steps=25), c))["class_acc"] for k in (1.0, 1.5)}
    data = toy.score((toy.real_samples(c, g), c))["class_acc"]
    assert acc[1.0] < data - 0.05 < acc[1.5] - 0.05, (acc, data)


def test_the_guidance_interval_guides_inside_it_only():
    teacher = toy.ExactTeacher()
    guided = toy.IntervalGuided(teacher, 1.5, (250, 1000))
    x = torch.randn(4, 2, 1, 1, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([100.0, 249.0, 250.0, 900.0])
    c = toy.context(torch.tensor([0, 1, 2, 0]))
    u = toy.context(torch.full((4,), -1))
    cond, uncond = teacher(x, t, c), teacher(x, t, u)
    out = guided(x, t, c)
    assert torch.allclose(out[:2], cond[:2]) and torch.allclose(out[2:], (uncond + 1.5 * (cond - uncond))[2:])


def test_a_short_sid_run_moves_g_toward_the_data():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    teacher = toy.ExactTeacher()
    psi = toy.ScoreNet()
    gen = toy.Generator()
    c = torch.arange(600) % toy.CLASSES
    before = toy.score(toy.sample_gen(gen, 600, torch.Generator().manual_seed(2)))
    ema = probe.sid_train(teacher, psi, gen, (1.0, 1.0, 1.0), 1.0, 300, 64, 1e-3, g)
    ema.load_state_dict(gen.state_dict())  # the live G: the EMA of 300 steps is still mostly the start
    after = toy.score(toy.sample_gen(ema, 600, torch.Generator().manual_seed(2)))
    assert after["energy"] < 0.5 * before["energy"], (before, after)
    assert toy.score((toy.real_samples(c, g), c))["recall"] > 0.9  # the metric sees the data as the data


def test_the_live_anchor_pulls_g_toward_the_teachers_samples():
    """The prompts-only recall anchor row: the same seeds with and without it end at different G's, and with it G's
    samples sit closer to the teacher's CFG-1.5 DDIM samples of the same z."""
    teacher = toy.ExactTeacher(0.2)
    z, c = torch.randn(256, 2, generator=torch.Generator().manual_seed(3)), torch.arange(256) % toy.CLASSES
    target = toy.ddim(teacher, z, c, 1.5, steps=25)
    dist = {}
    for w in (0.0, 2.0):
        torch.manual_seed(0)
        gen, psi = toy.Generator(), toy.ScoreNet()
        probe.sid_train(teacher, psi, gen, (1.0, 1.0, 1.5), 1.0, 150, 64, 1e-3, torch.Generator().manual_seed(0), anchor=w)
        with torch.no_grad():
            dist[w] = float((gen(z, c).flatten(1) - target).pow(2).sum(1).mean())
    assert dist[2.0] < 0.8 * dist[0.0], dist


def test_the_live_gans_critic_learns_and_its_lead_holds_g():
    """The live-GAN rows (run 42 part s on the toy): D learns to rank the teacher's samples above a G's that sit off
    them, under the same re-noising; during D's lead G and ψ stand still (live_gan_hold)."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    teacher = toy.ExactTeacher(0.2)
    critic = toy.Critic()
    opt = torch.optim.Adam(critic.parameters(), lr=1e-3, betas=(0.9, 0.99))
    accs = []
    for _ in range(150):
        z, c = torch.randn(64, 2, generator=g), torch.randint(0, toy.CLASSES, (64,), generator=g)
        real = toy.ddim(teacher, z, c, 1.5, steps=10).view(-1, 2, 1, 1)
        accs.append(probe.critic_step(critic, opt, real, 0.6 * real, c, g))
    assert sum(accs[:10]) / 10 < 0.8 < sum(accs[-20:]) / 20, accs
    gen, psi = toy.Generator(), toy.ScoreNet()
    before = [p.detach().clone() for p in (*gen.parameters(), *psi.parameters())]
    probe.sid_train(teacher, psi, gen, (1.0, 1.0, 1.5), 1.0, 0, 64, 1e-3, g, gan=0.1, gan_lead=3)
    assert all(torch.equal(a, b) for a, b in zip(before, (*gen.parameters(), *psi.parameters())))
