"""Resumable training state: one torch file written atomically, read back with weights_only=True."""
from __future__ import annotations

import os
import tempfile

import torch


def save_state(path: str, state: dict) -> None:
    """Write `state` (tensors, dicts, numbers, strings) atomically: a crash never leaves half a checkpoint."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
    os.close(fd)
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
        os.replace(tmp, path)
    except BaseException:
        os.remove(tmp)
        raise


def load_state(path: str | None) -> dict | None:
    """The saved state, or None when there is none yet."""
    if not path or not os.path.exists(path):
        return None
    return torch.load(path, map_location="cpu", weights_only=True)
