"""Where SiD-LSG's guidance settings lead a one-step generator, on a 2-D toy with an exact teacher (issue 16).

The data-free proof-scale row (κ1 = κ2 = 1, κ4 = 1.5) stopped at ~1.9× the teacher's FD with the teacher's precision
and far less recall, and neither a lower lr, a larger batch nor more ψ steps moved it (run 42 parts g and h). This
probe asks what each setting's end point is when nothing but the objective can be at fault: the data is a 2-D mixture
(3 classes × 3 modes on a ring, each class's modes apart, unequal weights), the teacher φ is its exact ε-prediction
under SD's schedule (conditional, and unconditional over the classes), and G (an MLP from z and the class) and ψ (an
MLP score network, pre-trained on φ: "started from the teacher") train with the pack's own SiD losses
(training/methods/sid_losses.py: FakeScoreLoss, SidGeneratorLoss; Adam β = (0, 0.999)). Each row starts G from the
teacher's x0 at t_init = 625 (what the real G is at step 0) unless it says otherwise, and is scored against the real
mixture: energy distance (×100), k-NN precision / recall (k = 3), the exact classifier's accuracy, the per-mode mass
error (TV), and each mode's spread against the data's (1 = the data's). Reference rows: the data, the teacher's
50-step DDIM at CFG 1 and 1.5 (what the proof-scale teacher row is), and the tilted distribution p(x|c)^1.5 p(x)^−0.5
(samples of p(x|c) resampled by p(c|x)^0.5).

  python -m benchmarks.probe_sid_fixed_point [--steps 4000] [--batch 256] [--rows split,lsg,plain,...] [--seed 0]
      [--leak 0.2] [--teacher-cfgs 1,1.5,2] [--anchor 0.25]

--leak λ makes φ the exact ε of a teacher whose classes leak into each other (each class's prior (1 − λ)·p(mode|c) +
λ·p(mode)), so that, like the proof-scale teacher, it needs its CFG: at λ = 0.2 its DDIM samples' class accuracy is
0.79 at CFG 1 and 0.93 at CFG 1.5 (the real teacher's 0.79 / 0.92), its energy best at 1.5.

Prints a table and the command; writes nothing. ~1–2 min a row on 2 CPU cores.
"""
from __future__ import annotations

import argparse
import sys
import time

import torch
from torch import nn

from training.methods.sid_losses import FakeScoreLoss, SidGeneratorLoss, diffuse, x0_from_output

from benchmarks.sid_toy import (ALPHAS, CLASSES, SPEC, T_INIT, Critic, ExactTeacher, Generator, IntervalGuided, ScoreNet, context,
                                ddim, real_samples, sample_gen, score, tilted_samples)

# row → (κ1, κ2, κ4, α, G's start, φ's guidance interval); "pairs": G regressed on the teacher's DDIM pairs first (a
# Diffusion2GAN-like start); an interval [lo, hi) applies κ4 only at those t (Kynkäänniemi et al. 2024), φ unguided elsewhere
ROWS = {
    "split": (1.0, 1.0, 1.5, 1.0, "teacher", None),  # the data-free proof-scale row (sid_lsg_teacher_cfg)
    "lsg": (1.5, 1.5, 1.5, 1.0, "teacher", None),  # the released runs' LSG (sid_lsg)
    "plain": (1.0, 1.0, 1.0, 1.0, "teacher", None),  # no guidance anywhere
    "split_alpha1.2": (1.0, 1.0, 1.5, 1.2, "teacher", None),  # EDM-SiD's α
    "split_kappa4_1.25": (1.0, 1.0, 1.25, 1.0, "teacher", None),
    "lsg_kappa2": (2.0, 2.0, 2.0, 1.0, "teacher", None),
    "split_from_pairs": (1.0, 1.0, 1.5, 1.0, "pairs", None),
    "lsg_from_pairs": (1.5, 1.5, 1.5, 1.0, "pairs", None),
    "split_interval_low": (1.0, 1.0, 1.5, 1.0, "teacher", (0, 500)),
    "split_interval_high": (1.0, 1.0, 1.5, 1.0, "teacher", (500, 1000)),
    "split_interval_mid": (1.0, 1.0, 1.5, 1.0, "teacher", (250, 750)),
    "split_from_t250": (1.0, 1.0, 1.5, 1.0, "teacher", (250, 1000)),
    "split_from_t400": (1.0, 1.0, 1.5, 1.0, "teacher", (400, 1000)),
    "split_kappa4_2_from_t250": (1.0, 1.0, 2.0, 1.0, "teacher", (250, 1000)),
    "split_kappa4_2_from_t400": (1.0, 1.0, 2.0, 1.0, "teacher", (400, 1000)),
    # from the split row's end (G's EMA and ψ, as run 42 carries its state across sessions): does the bound lead a G
    # already on the guided plateau off it? (the control: the split carried on as it was)
    "split_after_split": (1.0, 1.0, 1.5, 1.0, "split_end", None),
    "from_t250_after_split": (1.0, 1.0, 1.5, 1.0, "split_end", (250, 1000)),
    # the recall anchor made from prompts alone: G also regressed on the teacher's own CFG-1.5 DDIM samples drawn in the
    # loop from the same z (ANCHORED: the pack's anchor_weight, the regression's gradient at G's output scaled to W × the
    # SiD gradient's norm, as training/methods/sid_lsg.py does with collected pairs)
    "split_anchor_live": (1.0, 1.0, 1.5, 1.0, "teacher", None),
    # the same from the split row's end, as run 42 part j started it from a G on the guided plateau
    "anchor_live_after_split": (1.0, 1.0, 1.5, 1.0, "split_end", None),
    "anchor_live_from_t250_after_split": (1.0, 1.0, 1.5, 1.0, "split_end", (250, 1000)),  # with the κ4 bound too
    # a coverage anchor with no coupling (IMLE, Li & Malik 2018): each teacher sample, drawn from its own fresh noise,
    # pulls the nearest of G's same-class samples in the SiD batch toward it, so G need not take φ's noise-to-image map
    "imle_after_split": (1.0, 1.0, 1.5, 1.0, "split_end", None),
    "split_imle": (1.0, 1.0, 1.5, 1.0, "teacher", None),
    # guidance late: the unguided row's end (high recall, the CFG-1 teacher's classes) guided from there — the SiD rows
    # that beat the teacher at proof scale started from a high-recall GAN student and were selected on their way down
    "split_after_plain": (1.0, 1.0, 1.5, 1.0, "plain_end", None),
    # SiD's guidance lowered while the anchor keeps the teacher's CFG-1.5 samples (run 42 part o: every GPU row ends
    # more precise and less recalled than the CFG-1.5 teacher): does the anchor keep the classes that κ4 gave?
    "anchor_live_kappa4_1.25_after_split": (1.0, 1.0, 1.25, 1.0, "split_end", None),
    "anchor_live_kappa4_1_after_split": (1.0, 1.0, 1.0, 1.0, "split_end", None),
    # run 42 part q (κ4 lowered under the anchor) moved neither test FD nor recall: does the start decide instead? the
    # anchored split from a G first regressed on the teacher's pairs (a live-regression warm start, prompts only), and
    # the released LSG (ψ trained and read at κ 1.5 too; recall 0.70 against the split's 0.65 unanchored) from the plateau
    # (session 59, every item anchored: neither, energy 0.54 / 0.52 against the anchored split's 0.44, within the noise)
    "split_anchor_live_from_pairs": (1.0, 1.0, 1.5, 1.0, "pairs", None),
    "anchor_live_lsg_after_split": (1.5, 1.5, 1.5, 1.0, "split_end", None),
    # the live GAN (SidConfig.live_gan_*: D on the teacher's CFG-1.5 samples as real) beside the anchor, D leading with
    # G and ψ held first (live_gan_hold; run 42 part s): does a GAN on the teacher's own samples close the anchored
    # split's gap to the CFG-1.5 teacher (energy 0.57 against 0.35, class acc 0.887 against 0.934, session 59)?
    "anchor_live_gan_after_split": (1.0, 1.0, 1.5, 1.0, "split_end", None),
    "gan_live_after_split": (1.0, 1.0, 1.5, 1.0, "split_end", None),  # the GAN alone, no anchor
}
ANCHORED = {"split_anchor_live": 0.25, "anchor_live_after_split": 0.25, "anchor_live_from_t250_after_split": 0.25,
            "imle_after_split": 0.25, "split_imle": 0.25, "anchor_live_kappa4_1.25_after_split": 0.25,
            "anchor_live_kappa4_1_after_split": 0.25, "split_anchor_live_from_pairs": 0.25,
            "anchor_live_lsg_after_split": 0.25, "anchor_live_gan_after_split": 0.25}
GANNED = {"anchor_live_gan_after_split": 0.1, "gan_live_after_split": 0.1}  # the live GAN's share (--gan sets it)
GAN_LEAD = 1000  # D's steps alone before G and ψ train (--gan-lead)
NEAREST = {"imle_after_split", "split_imle"}  # anchored rows whose targets are matched by distance, not by noise
ANCHOR_SHARE = 4  # one item in 4 of each batch gets a teacher sample (25 DDIM steps); --anchor-share sets it


def renoised(x0: torch.Tensor, g: torch.Generator, t: torch.Tensor | None = None, eps: torch.Tensor | None = None,
             t_max: int = 499):
    """(x_t, t, ε) of x0 re-noised as the pack's D sees it: t ~ U{0..t_max} (DiscriminatorConfig's d_t range)."""
    t = torch.randint(0, t_max + 1, (x0.shape[0],), generator=g).float() if t is None else t
    eps = torch.randn(x0.shape, generator=g) if eps is None else eps
    return diffuse(x0, eps, ALPHAS[t.long()].view(-1, 1, 1, 1)), t, eps


def critic_step(d: Critic, opt: torch.optim.Optimizer, real: torch.Tensor, fake: torch.Tensor, c: torch.Tensor,
                g: torch.Generator, r1_gamma: float = 1.0, t_max: int = 499) -> float:
    """D's non-saturating step on (teacher sample, G's sample) pairs under the same t and ε, with R1 on the reals;
    returns its rank accuracy (the pair ordered right), as the pack logs d_rank_acc."""
    real_t, t, eps = renoised(real, g, t_max=t_max)
    fake_t, _, _ = renoised(fake, g, t, eps)
    real_t = real_t.detach().requires_grad_(True)
    ctx = context(c)
    s_real, s_fake = d(real_t, t, ctx), d(fake_t, t, ctx)
    (grad,) = torch.autograd.grad(s_real.sum(), real_t, create_graph=True)
    loss = nn.functional.softplus(-s_real).mean() + nn.functional.softplus(s_fake).mean() + r1_gamma / 2 * grad.pow(2).sum(dim=(1, 2, 3)).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return float((s_real > s_fake).float().mean())


def fit(net: nn.Module, target, steps: int, batch: int, lr: float, g: torch.Generator) -> None:
    """Regress net on target(batch) → (inputs, y) by MSE (Adam, cosine lr)."""
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for _ in range(steps):
        inputs, y = target(batch, g)
        loss = (net(*inputs) - y).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()


def pretrain_psi(teacher: nn.Module, g: torch.Generator) -> ScoreNet:
    """ψ "from the teacher": fitted to φ's ε on x_t of the data, t ~ U{0..999}, 10 % unconditional."""
    psi = ScoreNet()

    def target(n, g):
        c = torch.randint(0, CLASSES, (n,), generator=g)
        x0 = real_samples(c, g).view(-1, 2, 1, 1)
        t = torch.randint(0, 1000, (n,), generator=g).float()
        eps = torch.randn(x0.shape, generator=g)
        x_t = diffuse(x0, eps, ALPHAS[t.long()].view(-1, 1, 1, 1))
        c_in = torch.where(torch.rand(n, generator=g) < 0.1, torch.full_like(c, -1), c)
        with torch.no_grad():
            y = teacher(x_t, t, context(c_in))
        return (x_t, t, context(c_in)), y

    fit(psi, target, 4000, 512, 1e-3, g)
    return psi


def generator_start(teacher: nn.Module, kind: str, g: torch.Generator) -> Generator:
    """G at step 0: the teacher's conditional x0 at t_init from sqrt(1 − ᾱ)·z ("teacher"), or the endpoint of the
    teacher's 50-step DDIM at CFG 1.5 from the same z ("pairs", regression on teacher pairs)."""
    gen = Generator()
    a = ALPHAS[T_INIT]

    def target(n, g):
        z = torch.randn(n, 2, generator=g)
        c = torch.randint(0, CLASSES, (n,), generator=g)
        if kind == "teacher":
            x_in = ((1 - a).sqrt() * z).view(-1, 2, 1, 1)
            with torch.no_grad():
                eps = teacher(x_in, torch.full((n,), float(T_INIT)), context(c))
                y = x0_from_output("eps", eps, x_in, a).flatten(1)
        else:
            y = ddim(teacher, z, c, 1.5, steps=25)
        return (z, c), y.view(-1, 2, 1, 1)

    fit(gen, target, 3000 if kind == "teacher" else 1500, 512, 1e-3, g)
    return gen


def sid_train(teacher, psi, gen, kappas, alpha, steps, batch, lr, g, log_every=0, interval=None, anchor=0.0,
              anchor_share=ANCHOR_SHARE, nearest=False, gan=0.0, gan_lead=0, gan_lr=1e-4, gan_t_max=499):
    """The official loop's two phases per step with the pack's losses; returns G's EMA (0.999). anchor > 0: the recall
    anchor on the teacher's CFG-1.5 samples of 1 / anchor_share of each batch's z, drawn in the loop. gan > 0: the
    pack's live GAN on the same items (SidConfig.live_gan_*: D on the teacher's samples as real and G's as fake, G's
    GAN gradient rescaled to gan × SiD's), after `gan_lead` steps of D alone with G and ψ held (live_gan_hold)."""
    phi = teacher  # unwrapped: the anchor's samples use the teacher's own CFG, whatever interval the SiD loss uses
    k1, k2, k4 = kappas
    t_min = 0
    if interval is not None and interval[1] >= 1000:
        t_min = interval[0]  # the pack's own bound (SidConfig.kappa4_t_min)
    elif interval is not None:  # an upper bound too: φ guides itself
        teacher, k4 = IntervalGuided(teacher, k4, interval), 1.0
    fake_loss, gen_loss = FakeScoreLoss(SPEC, k1), SidGeneratorLoss(SPEC, alpha, k2, k4, kappa4_t_min=t_min)
    opt_psi = torch.optim.Adam(psi.parameters(), lr=lr, betas=(0.0, 0.999))
    opt_g = torch.optim.Adam(gen.parameters(), lr=lr, betas=(0.0, 0.999))
    ema = Generator()
    ema.load_state_dict(gen.state_dict())
    dropout = k1 != 1.0 or k2 != 1.0
    critic = Critic() if gan > 0 else None
    opt_d = torch.optim.Adam(critic.parameters(), lr=gan_lr, betas=(0.9, 0.99)) if critic is not None else None
    rank_acc = []
    for lead in range(gan_lead):  # D leads against a G (and ψ) that stand still
        n = batch // anchor_share
        z, c = torch.randn(n, 2, generator=g), torch.randint(0, CLASSES, (n,), generator=g)
        with torch.no_grad():
            fake = gen(z, c)
        rank_acc.append(critic_step(critic, opt_d, ddim(phi, z, c, 1.5, steps=25).view(-1, 2, 1, 1), fake, c, g, t_max=gan_t_max))
        if log_every and (lead + 1) % log_every == 0:
            print(f"  lead {lead + 1}: d_rank_acc {sum(rank_acc[-log_every:]) / log_every:.3f}", file=sys.stderr, flush=True)
    for step in range(1, steps + 1):
        # fake score on sg(x_g)
        z = torch.randn(batch, 2, generator=g)
        c = torch.randint(0, CLASSES, (batch,), generator=g)
        with torch.no_grad():
            x_g = gen(z, c)
        c_fake = torch.where(torch.rand(batch, generator=g) < 0.1, torch.full_like(c, -1), c) if dropout else c
        t = torch.randint(20, 980, (batch,), generator=g)
        eps = torch.randn(x_g.shape, generator=g)
        uncond = {"context": context(torch.full_like(c, -1))}
        loss_psi = fake_loss(psi, x_g, eps, t, {"context": context(c_fake)}, uncond).mean()
        opt_psi.zero_grad(set_to_none=True)
        loss_psi.backward()
        opt_psi.step()
        # generator through ψ and φ (their weights untouched: only G's optimizer steps)
        z = torch.randn(batch, 2, generator=g)
        c = torch.randint(0, CLASSES, (batch,), generator=g)
        t = torch.randint(20, 980, (batch,), generator=g)
        eps = torch.randn(batch, 2, 1, 1, generator=g)
        x_g = gen(z, c)
        loss_g, ok, _ = gen_loss(psi, teacher, x_g, eps, t, {"context": context(c)}, uncond)
        opt_g.zero_grad(set_to_none=True)
        if anchor > 0 or gan > 0:
            (sid_grad,) = torch.autograd.grad(loss_g[ok].mean(), x_g, retain_graph=True)
            surrogate = (x_g * sid_grad).sum()
            n = batch // anchor_share
            if nearest:  # each teacher sample, from its own noise, pulls G's nearest same-class sample of the batch
                target = ddim(phi, torch.randn(n, 2, generator=g), c[:n], 1.5, steps=25)
                gap = torch.cdist(target, x_g.detach().flatten(1)).masked_fill(c[:n, None] != c[None, :], float("inf"))
                x_a, matched = x_g, x_g[gap.argmin(dim=1)]  # the scale's norm over the whole batch's gradient
            else:  # G on the teacher sample's own noise
                target = ddim(phi, z[:n], c[:n], 1.5, steps=25)
                x_a = matched = gen(z[:n], c[:n])
            target = target.view(-1, 2, 1, 1)
            if anchor > 0:
                (g_a,) = torch.autograd.grad((matched - target).pow(2).sum(dim=(1, 2, 3)).mean(), x_a, retain_graph=True)
                surrogate = surrogate + (x_a * (anchor * sid_grad.norm() / g_a.norm().clamp_min(1e-12)) * g_a).sum()
            if gan > 0:  # D's term on G's samples of the anchor's noise (the pack's live pairs), then D's step on them
                x_d = gen(z[:n], c[:n]) if nearest else x_a
                x_t, t_d, _ = renoised(x_d, g, t_max=gan_t_max)
                (g_d,) = torch.autograd.grad(nn.functional.softplus(-critic(x_t, t_d, context(c[:n]))).mean(), x_d, retain_graph=True)
                surrogate = surrogate + (x_d * (gan * sid_grad.norm() / g_d.norm().clamp_min(1e-12)) * g_d).sum()
            surrogate.backward()
            if gan > 0:
                rank_acc.append(critic_step(critic, opt_d, target, x_d.detach(), c[:n], g, t_max=gan_t_max))
        else:
            loss_g[ok].mean().backward()
        opt_g.step()  # ψ's gradients from this phase are cleared by its own zero_grad next step
        with torch.no_grad():
            for e, p in zip(ema.parameters(), gen.parameters()):
                e.lerp_(p, 0.001)
        if log_every and step % log_every == 0:
            acc = f", d_rank_acc {sum(rank_acc[-log_every:]) / log_every:.3f}" if rank_acc else ""
            print(f"  step {step}: {score(sample_gen(ema, 4000, g))}{acc}", file=sys.stderr, flush=True)
    return ema


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--rows", default=",".join(ROWS), help="comma-separated: " + ", ".join(ROWS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--samples", type=int, default=6000)
    p.add_argument("--log-every", type=int, default=0)
    p.add_argument("--leak", type=float, default=0.0, help="the teacher's class leak λ (0: exact teacher)")
    p.add_argument("--anchor", type=float, default=None, help="the anchored rows' weight (default: ANCHORED's)")
    p.add_argument("--anchor-share", type=int, default=ANCHOR_SHARE,
                   help="one item in this many of each batch is anchored (run 42 part j: 8)")
    p.add_argument("--teacher-cfgs", default="1,1.5", help="CFG scales of the teacher's DDIM reference rows")
    p.add_argument("--gan", type=float, default=None, help="the live-GAN rows' share of SiD's gradient norm (default: GANNED's)")
    p.add_argument("--gan-lead", type=int, default=GAN_LEAD, help="D's steps alone, G and ψ held, before the GAN rows train")
    p.add_argument("--gan-t-max", type=int, default=499, help="D's timesteps t ~ U{0..this} (the pack's d_t_max)")
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    teacher = ExactTeacher(args.leak)
    anchored = {name: w if args.anchor is None else args.anchor for name, w in ANCHORED.items()}
    ganned = {name: w if args.gan is None else args.gan for name, w in GANNED.items()}
    rows = []
    c = torch.arange(args.samples) % CLASSES
    rows.append(("data (other draw)", score((real_samples(c, g), c))))
    for kappa in (float(k) for k in args.teacher_cfgs.split(",")):
        rows.append((f"teacher DDIM-50, CFG {kappa:g}", score((ddim(teacher, torch.randn(args.samples, 2, generator=g), c, kappa), c))))
    rows.append(("tilted p(x|c)^1.5 p(x)^-0.5", score((tilted_samples(c, 1.5, g), c))))
    t0 = time.time()
    psi0 = pretrain_psi(teacher, g)
    starts, psi_starts = {}, {}
    print(f"ψ pre-trained in {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    for name in args.rows.split(","):
        k1, k2, k4, alpha, start, interval = ROWS[name]
        if start.endswith("_end") and start not in starts:  # that row's own run from the teacher's start (G's EMA and ψ)
            base = start[:-len("_end")]
            gen, psi = Generator(), ScoreNet()
            gen.load_state_dict(generator_start(teacher, "teacher", g).state_dict())
            psi.load_state_dict(psi0.state_dict())
            starts[start] = sid_train(teacher, psi, gen, ROWS[base][:3], ROWS[base][3], args.steps, args.batch, args.lr, g,
                                      interval=ROWS[base][5])
            psi_starts[start] = psi
            rows.append((f"G at the {base} row's end ({args.steps} steps)", score(sample_gen(starts[start], args.samples, g))))
        elif start not in starts:
            starts[start] = generator_start(teacher, start, g)
            rows.append((f"G at step 0 ({start})", score(sample_gen(starts[start], args.samples, g))))
        gen, psi = Generator(), ScoreNet()
        gen.load_state_dict(starts[start].state_dict())
        psi.load_state_dict(psi_starts.get(start, psi0).state_dict())
        t0 = time.time()
        ema = sid_train(teacher, psi, gen, (k1, k2, k4), alpha, args.steps, args.batch, args.lr, g, args.log_every,
                        interval, anchored.get(name, 0.0), args.anchor_share, name in NEAREST, ganned.get(name, 0.0),
                        args.gan_lead if name in ganned else 0, gan_t_max=args.gan_t_max)
        where = f" at t in [{interval[0]}, {interval[1]})" if interval else ""
        label = f"SiD {name}: κ1 {k1:g} κ2 {k2:g} κ4 {k4:g}{where} α {alpha:g}, from {start}"
        if name in anchored:
            label += f", anchored {anchored[name]:g} on the teacher's CFG-1.5 samples" + (" (nearest)" if name in NEAREST else "")
        if name in ganned:
            label += f", live GAN {ganned[name]:g} after D's {args.gan_lead}-step lead, D on t ≤ {args.gan_t_max}"
        rows.append((label, score(sample_gen(ema, args.samples, g))))
        print(f"{label}: {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    print(f"\n`python -m benchmarks.probe_sid_fixed_point {' '.join(argv if argv is not None else sys.argv[1:])}` "
          f"({args.steps} steps at batch {args.batch}, lr {args.lr:g}, seed {args.seed}; {args.samples} samples a row)\n")
    print("| row | energy ×100 | precision | recall | class acc | mode mass TV | mode spread (data 1) |")
    print("|---|---|---|---|---|---|---|")
    for label, m in rows:
        print(f"| {label} | {m['energy']:.2f} | {m['precision']:.3f} | {m['recall']:.3f} | {m['class_acc']:.3f} | "
              f"{m['mode_tv']:.3f} | {m['spread']:.2f} |")


if __name__ == "__main__":
    main()
