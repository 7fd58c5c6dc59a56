"""Notices a discriminator that stopped learning, so a run does not spend hours as regression alone unawares.

A dead D scores real and generated samples alike: its logits go constant (its losses sit at ln 2 with the standard
loss, or at any fixed pair of values), D's mean score gap between a real sample and its own fake (`d_gap`, logged
every D step) falls to noise, and G's GAN gradient vanishes. Proof-scale run 21 is the case this was written from:
D at lr 5e-4 scored |gap| ~1e-5 from its ~300th step (its gradient norm 10⁻³), while the same row at 1.5e-4 stayed
alive for 2,500 steps (docs/benchmarks.md, "session 21 run 21"). The test is on the gap alone — a logit difference,
the same units whatever the network's size — averaged over a window of D steps. In the proof-scale records the
100-step means of a live D never fell below 2.7e-3 (runs 12–15), and those of the Ds that went flat stayed below
6e-4 (runs 10, 11, 19, 21; tests/test_core_discriminator_watch.py replays them all).
"""
from __future__ import annotations

from collections import deque

WINDOW = 100  # D steps averaged: a live D's gap is noisy step to step, a dead one's stays near zero for good
GAP_FLOOR = 1e-3  # logits: between the dead Ds' window means (≤ 6e-4) and the live ones' (≥ 2.7e-3) at proof scale


class DiscriminatorWatch:
    """Fed every step's logged terms; returns a warning once, when D's mean |d_gap| over the last `window` D steps is
    below `gap_floor`."""

    def __init__(self, lr_d: float, window: int = WINDOW, gap_floor: float = GAP_FLOOR):
        self.lr_d, self.gap_floor = lr_d, gap_floor
        self.gaps: deque[float] = deque(maxlen=window)
        self.norms: deque[float] = deque(maxlen=window)
        self.warned = False

    def __call__(self, step: int, logs: dict) -> str | None:
        if self.warned or "d_gap" not in logs:
            return None
        self.gaps.append(abs(float(logs["d_gap"])))
        self.norms.append(float(logs.get("grad_norm_d", float("nan"))))
        if len(self.gaps) < self.gaps.maxlen:
            return None
        gap = sum(self.gaps) / len(self.gaps)
        if not gap < self.gap_floor:
            return None
        self.warned = True
        norm = sum(self.norms) / len(self.norms)
        return (f"the discriminator stopped learning by step {step}: over its last {len(self.gaps)} steps it scored real and "
                f"generated samples alike (mean |score gap| {gap:.1e}, gradient norm {norm:.1e}), so the GAN term gives the "
                f"generator nothing and the run goes on as regression alone. Lower D's learning rate (lr_d, now {self.lr_d:g}) "
                "and resume from an earlier checkpoint, or start again.")
