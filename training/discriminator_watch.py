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

The opposite failure is watched too: a D that overpowers G. It then scores every real sample real and every generated
one generated with certainty — its losses on both sides (d_real, d_fake; the relativistic loss's d_pair) fall to ~0 —
G's GAN loss climbs and the student degrades within a few hundred steps. Proof-scale run 43's InstaFlow row A is the
case: from step ~1,085 D's losses fell from ~0.5 to 1e-4 while the val FD went from 10.7 to 64.6 by step 1,200. Over
WIN_WINDOW D steps every side's mean loss below WIN_LOSS reports it (run 43 A: at step 1,120); on record no other GAN
row's 25-step means fell below 0.23 (runs 5–43, tests/test_core_discriminator_watch.py).
"""
from __future__ import annotations

import statistics
from collections import deque

WINDOW = 100  # D steps averaged: a live D's gap is noisy step to step, a dead one's stays near zero for good
GAP_FLOOR = 1e-3  # logits: between the dead Ds' window means (≤ 6e-4) and the live ones' (≥ 2.7e-3) at proof scale
GRAD_DROP = 0.5  # of D's starting gradient norm: between the dead Ds' (≤ 0.33×) and the live ones' (≥ 2×)
START = 20  # D's first steps, whose median gradient norm is the reference
REVIVE_GAP = 2.5e-3  # a reported D counts as learning again above this mean |gap| (live Ds' window means: ≥ 2.7e-3)
WIN_WINDOW = 25  # D steps: a D that wins does so within tens of steps, and the student degrades as fast
WIN_LOSS = 0.05  # mean D loss per side: a winning D's are ~1e-4, a D in balance sits at 0.3–0.7 (on record: ≥ 0.23)
WIN_OVER = 0.15  # a reported D counts as back in balance when every side's mean loss is above this again
D_LOSSES = ("d_real", "d_fake", "d_pair")  # the sides D's loss is logged by (standard loss; relativistic: d_pair)


class DiscriminatorWatch:
    """Fed every step's logged terms; returns a warning when over the last `window` D steps D's mean |d_gap| is below
    `gap_floor` and its mean gradient norm below `grad_drop` × its median over its first START steps, and a note when
    a D so reported learns again (mean |d_gap| ≥ REVIVE_GAP, gradient above the drop); likewise a warning when over the
    last WIN_WINDOW D steps every logged side of D's loss averaged below WIN_LOSS (D overpowers G), and a note when
    they are all above WIN_OVER again."""

    def __init__(self, lr_d: float, window: int = WINDOW, gap_floor: float = GAP_FLOOR, grad_drop: float = GRAD_DROP):
        self.lr_d, self.gap_floor, self.grad_drop = lr_d, gap_floor, grad_drop
        self.gaps: deque[float] = deque(maxlen=window)
        self.norms: deque[float] = deque(maxlen=window)
        self.start: list[float] = []
        self.dead = False
        self.losses: dict[str, deque[float]] = {k: deque(maxlen=WIN_WINDOW) for k in D_LOSSES}
        self.winning = False

    def __call__(self, step: int, logs: dict) -> str | None:
        if "d_gap" not in logs:
            return None
        flat, over = self._flat(step, logs), self._overpowering(step, logs)  # both windows take every D step
        return flat or over

    def _overpowering(self, step: int, logs: dict) -> str | None:
        means = {}
        for key, window in self.losses.items():
            if key in logs:
                window.append(float(logs[key]))
                if len(window) == window.maxlen:
                    means[key] = sum(window) / len(window)
        if not means:
            return None
        shown = ", ".join(f"{k} {v:.1e}" for k, v in means.items())
        if self.winning:
            if min(means.values()) <= WIN_OVER:
                return None
            self.winning = False
            return f"the discriminator is back in balance with the generator by step {step} (mean losses over its last {WIN_WINDOW} steps: {shown})."
        if max(means.values()) >= WIN_LOSS:
            return None
        self.winning = True
        return (f"the discriminator overpowered the generator by step {step}: over its last {WIN_WINDOW} steps it told real from "
                f"generated samples with certainty (mean losses {shown}; a D in balance sits near 0.3–0.7), so the GAN term "
                f"pushes the generator away from what it had learned and the student degrades from here (proof-scale run 43: "
                f"val FD 10.7 → 64.6 within 200 steps). D was last in balance around step {max(0, step - 2 * WIN_WINDOW)}: stop the "
                f"run (cancelling keeps its checkpoint) and go on with a lower learning rate for D (lr_d, now {self.lr_d:g}) or "
                f"GAN weight.")

    def _flat(self, step: int, logs: dict) -> str | None:
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
