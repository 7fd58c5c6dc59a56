"""Notices a discriminator that stopped learning, so a run does not spend hours as regression alone unawares.

A dead D scores real and generated samples alike: its logits go constant (its losses sit at ln 2 with the standard
loss, or at any fixed pair of values), D's mean score gap between a real sample and its own fake (`d_gap`, logged
every D step) falls to noise, and so does its gradient — G's GAN gradient vanishes with it. Proof-scale run 21 is the
case this was written from: D at lr 5e-4 scored |gap| ~1e-5 from its ~300th step, its gradient norm 10⁻³ against 0.03
at its start, while the same row at 1.5e-4 stayed alive for 2,500 steps (docs/benchmarks.md, "session 21 run 21").

Both must hold over a window of D steps: the mean |gap| (a logit difference, the same units whatever the network's
size) below GAP_FLOOR, and the mean gradient norm below GRAD_DROP × its median over D's first steps. The gap alone
would also catch a D that is slow to start (a fresh head's gap is ~2e-4 at batch 512) — its gradient has not
collapsed. In the proof-scale records (tests/test_core_discriminator_watch.py replays them all) the 100-step means of
a live D never fell below 2.7e-3 in gap nor below 2× its starting gradient norm (runs 12–15); the Ds that went flat
reached gaps under 6e-4 and gradient norms under 0.33× their start (runs 10, 11, 19, 21).

A D can also come back: with Adam's β2 0.99 its steps grow again as its second moments forget the large gradients
(run 22's gan_weight 0.5 row: flat from step ~575, learning again from ~775). Once reported dead, the watch says so
when the window's mean gap is back above REVIVE_GAP and its gradient above the drop — a margin over the floor, so a D
hovering at the threshold does not flood the log with notices.
"""
from __future__ import annotations

import statistics
from collections import deque

WINDOW = 100  # D steps averaged: a live D's gap is noisy step to step, a dead one's stays near zero for good
GAP_FLOOR = 1e-3  # logits: between the dead Ds' window means (≤ 6e-4) and the live ones' (≥ 2.7e-3) at proof scale
GRAD_DROP = 0.5  # of D's starting gradient norm: between the dead Ds' (≤ 0.33×) and the live ones' (≥ 2×)
START = 20  # D's first steps, whose median gradient norm is the reference
REVIVE_GAP = 2.5e-3  # a reported D counts as learning again above this mean |gap| (live Ds' window means: ≥ 2.7e-3)


class DiscriminatorWatch:
    """Fed every step's logged terms; returns a warning when over the last `window` D steps D's mean |d_gap| is below
    `gap_floor` and its mean gradient norm below `grad_drop` × its median over its first START steps, and a note when
    a D so reported learns again (mean |d_gap| ≥ REVIVE_GAP, gradient above the drop)."""

    def __init__(self, lr_d: float, window: int = WINDOW, gap_floor: float = GAP_FLOOR, grad_drop: float = GRAD_DROP):
        self.lr_d, self.gap_floor, self.grad_drop = lr_d, gap_floor, grad_drop
        self.gaps: deque[float] = deque(maxlen=window)
        self.norms: deque[float] = deque(maxlen=window)
        self.start: list[float] = []
        self.dead = False

    def __call__(self, step: int, logs: dict) -> str | None:
        if "d_gap" not in logs:
            return None
        norm = float(logs.get("grad_norm_d", 0.0))
        self.gaps.append(abs(float(logs["d_gap"])))
        self.norms.append(norm)
        if len(self.start) < START:
            self.start.append(norm)
        if len(self.gaps) < self.gaps.maxlen:
            return None
        gap, mean_norm, start = sum(self.gaps) / len(self.gaps), sum(self.norms) / len(self.norms), statistics.median(self.start)
        if self.dead:
            if gap < REVIVE_GAP or mean_norm <= self.grad_drop * start:
                return None
            self.dead = False
            return (f"the discriminator learns again by step {step} (mean |score gap| {gap:.1e} over its last {len(self.gaps)} "
                    f"steps; gradient norm {mean_norm:.1e}).")
        if not (gap < self.gap_floor and mean_norm <= self.grad_drop * start):
            return None
        self.dead = True
        return (f"the discriminator stopped learning by step {step}: over its last {len(self.gaps)} steps it scored real and "
                f"generated samples alike (mean |score gap| {gap:.1e}; gradient norm {mean_norm:.1e}, {start:.1e} at its start), "
                f"so the GAN term gives the generator nothing and the run goes on as regression alone. Lower D's learning "
                f"rate (lr_d, now {self.lr_d:g}) and resume from an earlier checkpoint, or start again.")
