"""Resumable training state: one torch file written atomically, read back with weights_only=True."""
from __future__ import annotations

import os
from dataclasses import asdict

import torch

from ..atomic import atomic_write


def save_state(path: str, state: dict) -> None:
    """Write `state` (tensors, dicts, numbers, strings) atomically: a crash never leaves half a checkpoint."""
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            torch.save(state, f)

    atomic_write(path, write)


def load_state(path: str | None) -> dict | None:
    """The saved state, or None when there is none yet."""
    if not path or not os.path.exists(path):
        return None
    return torch.load(path, map_location="cpu", weights_only=True)


def restore(path: str | None, parts: dict, generator: torch.Generator) -> int:
    """Load each part's state_dict (modules, optimizers) and the sampling RNG from `path`; the step to resume at."""
    state = load_state(path)
    if state is None:
        return 0
    for name, part in parts.items():
        part.load_state_dict(state[name])
    generator.set_state(state["rng"])
    return int(state["step"])


def snapshot(path: str, parts: dict, generator: torch.Generator, step: int, config: dict) -> None:
    """Atomically write what `restore` reads back."""
    save_state(path, {**{name: part.state_dict() for name, part in parts.items()}, "rng": generator.get_state(), "step": step, "config": config})


def end_of_step(step: int, loss: torch.Tensor, cfg, progress, checkpoint: str | None, parts: dict, generator: torch.Generator) -> None:
    """The bookkeeping both training loops share: report every cfg.log_every steps, snapshot every
    cfg.checkpoint_every steps, and both at the last step (cfg.steps)."""
    last = step == cfg.steps
    if progress is not None and (step % cfg.log_every == 0 or last):
        progress(step, loss.item())
    if checkpoint and (step % cfg.checkpoint_every == 0 or last):
        snapshot(checkpoint, parts, generator, step, asdict(cfg))
