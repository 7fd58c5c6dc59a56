"""Learning-rate schedule of the trainer: linear warm-up, then constant or cosine decay to a floor.

The factor is a pure function of the optimiser step and the config (not of the run's target), so a resumed run
follows exactly the schedule of an uninterrupted one. Why a warm-up: a one-step ε-generator at t=999 amplifies
every change of ε̂ by σ_t ≈ 14.6 in x0 (onestep/precision.py), and Adam's first updates have the full size lr
whatever the gradient; without a warm-up the first steps undo the teacher initialisation (measured in the
proof-scale run of session 4: latent MSE 0.15 → 4.1 after one step at lr 1e-4).
"""
from __future__ import annotations

import math

DECAYS = ("constant", "cosine")


def lr_factor(step: int, warmup: int, decay: str = "constant", decay_steps: int = 0, floor: float = 0.1) -> float:
    """Multiplier of the base lr for optimiser step `step` (0-based): (step+1)/warmup during the warm-up, then 1
    (constant) or a half cosine from 1 at the warm-up's end to `floor` at `decay_steps`, `floor` after it."""
    if decay not in DECAYS:
        raise ValueError(f"lr decay must be one of {DECAYS}, not {decay!r}")
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    if decay == "constant" or decay_steps <= warmup:
        return 1.0
    progress = min(1.0, (step - warmup) / (decay_steps - warmup))
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
