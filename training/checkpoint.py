"""Trainer checkpoints: one safetensors file, tensors in the body and everything else (step, config, optimiser
hyperparameters) as JSON in its header under "onestep.trainer_state". Written atomically (never half a file) and
never pickled; a state holding NaN or infinite values is refused, so the last good checkpoint stays in place."""
from __future__ import annotations

import json
import os
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .core import atomic_write

STATE_KEY = "onestep.trainer_state"
FORMAT = "onestep-trainer-state"


class NonFiniteStateError(RuntimeError):
    """A training state with NaN/inf values, which is never written."""


def _flatten(obj: Any, path: str, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, torch.Tensor):
        tensors[path] = obj.detach().cpu().contiguous().clone()
        return {"__tensor__": path}
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj):
            return {k: _flatten(v, f"{path}/{k}", tensors) for k, v in obj.items()}
        return {"__items__": [[k, _flatten(v, f"{path}/{k}", tensors)] for k, v in obj.items()]}  # int keys (optimiser state)
    if isinstance(obj, (list, tuple)):
        return [_flatten(v, f"{path}/{i}", tensors) for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store a {type(obj).__name__} at {path} in a checkpoint")


def _unflatten(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict):
        if set(obj) == {"__tensor__"}:
            return tensors[obj["__tensor__"]]
        if set(obj) == {"__items__"}:
            return {k: _unflatten(v, tensors) for k, v in obj["__items__"]}
        return {k: _unflatten(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_unflatten(v, tensors) for v in obj]
    return obj


def check_finite(tensors: dict[str, torch.Tensor]) -> None:
    """Raise NonFiniteStateError naming the first tensor with NaN/inf."""
    for name, t in tensors.items():
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise NonFiniteStateError(f"refusing to save a training state with non-finite values in {name}")


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """Write a nested state (dicts, lists, tensors, JSON scalars) atomically; refuse non-finite tensors."""
    tensors: dict[str, torch.Tensor] = {}
    tree = _flatten(state, "", tensors)
    check_finite(tensors)
    header = {"format": "pt", "onestep.format": FORMAT, STATE_KEY: json.dumps(tree)}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=header))


def load_checkpoint(path: str | os.PathLike) -> dict:
    """The nested state save_checkpoint wrote (tensors on the CPU)."""
    with safe_open(os.fspath(path), "pt") as f:
        meta = f.metadata() or {}
        if meta.get("onestep.format") != FORMAT:
            raise ValueError(f"{os.path.basename(path)} is not a trainer checkpoint (no {FORMAT!r} header)")
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not iterable)
    return _unflatten(json.loads(meta[STATE_KEY]), tensors)
