"""Resumable training state: one torch file written atomically, read back with weights_only=True."""
from __future__ import annotations

import os

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
