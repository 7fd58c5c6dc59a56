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

from .core import atomic, atomic_write

STATE_KEY = "onestep.trainer_state"
FORMAT = "onestep-trainer-state"


class NonFiniteStateError(RuntimeError):
    """A training state with NaN/inf values, which is never written."""


class CheckpointError(ValueError):
    """A file that is not a usable trainer checkpoint (damaged, foreign, or of another trainer); the message names the
    file and the problem."""


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
    """The nested state save_checkpoint wrote (tensors on the CPU); CheckpointError for a damaged or foreign file. A
    resume starts here: what killed writes left beside the checkpoint goes."""
    name = os.path.basename(os.fspath(path))
    if not os.path.isfile(path):
        raise CheckpointError(f"{name}: no such file")
    try:
        with safe_open(os.fspath(path), "pt") as f:
            meta = f.metadata() or {}
            if meta.get("onestep.format") != FORMAT:
                raise CheckpointError(f"{name} is not a trainer checkpoint (no {FORMAT!r} header)")
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not iterable)
    except CheckpointError:
        raise
    except Exception as e:  # safetensors' and the OS's errors: a truncated or foreign file
        raise CheckpointError(f"{name} is not a readable .safetensors file (truncated or corrupt?): {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    try:
        state = _unflatten(json.loads(meta[STATE_KEY]), tensors)
        if not isinstance(state, dict):
            raise TypeError(f"a {type(state).__name__}, not a mapping")
    except (KeyError, TypeError, ValueError, AttributeError, RecursionError) as e:  # json errors are ValueErrors
        raise CheckpointError(f"{name}: its trainer state header is damaged ({type(e).__name__}: {e})") from None
    try:
        check_finite(tensors)
    except NonFiniteStateError as e:
        raise CheckpointError(f"{name}: {str(e).replace('refusing to save a training state with', 'holds')}") from None
    atomic.remove_abandoned(os.path.dirname(os.path.abspath(path)))
    return state


def _describe(t: Any) -> str:
    return f"{str(t.dtype).removeprefix('torch.')} {list(t.shape)}" if isinstance(t, torch.Tensor) else type(t).__name__


def check_fits(state: dict, current: dict, optimizers: dict[str, Any], name: str) -> None:
    """Raise CheckpointError where a loaded state's tensor differs in dtype or shape from the one at the same place of
    `current` (the trainer's own state_dict(); places it lacks — an optimiser before its first step — are skipped), or
    where an optimiser moment (AdamW's or Adafactor's factored ones) is missing or does not fit its parameter
    (optimizers: state key → the trainer's optimiser)."""
    def walk(saved: Any, now: Any, where: str) -> None:
        if isinstance(now, torch.Tensor):
            if not isinstance(saved, torch.Tensor) or saved.dtype != now.dtype or saved.shape != now.shape:
                raise CheckpointError(f"{name}: {where} is {_describe(saved)}, this trainer's is {_describe(now)}")
        elif isinstance(now, dict) and isinstance(saved, dict):
            for k, v in now.items():
                if k in saved:
                    walk(saved[k], v, f"{where}/{k}")
        elif isinstance(now, (list, tuple)) and isinstance(saved, (list, tuple)):
            for i, (a, b) in enumerate(zip(saved, now)):
                walk(a, b, f"{where}/{i}")

    walk({k: v for k, v in state.items() if k not in ("rng", "config")}, {k: v for k, v in current.items() if k not in ("rng", "config")}, "")
    for key, opt in optimizers.items():
        saved = state.get(key)
        if opt is None or not isinstance(saved, dict) or not isinstance(saved.get("state"), dict):
            continue
        params = [p for group in opt.param_groups for p in group["params"]]
        groups = saved.get("param_groups")
        if not isinstance(groups, list) or sum(len(g.get("params", ())) if isinstance(g, dict) else 0 for g in groups) != len(params):
            continue  # another parameter list altogether: load_state_dict says which network does not match
        for i, moments in saved["state"].items():
            if not (isinstance(i, int) and 0 <= i < len(params) and isinstance(moments, dict)):
                continue
            shape = list(params[i].shape)
            missing = [m for m in _required_moments(opt, shape) if m not in moments]
            if missing:
                raise CheckpointError(f"{name}: /{key}/state/{i} lacks {', '.join(missing)} (its parameter is {shape})")
            for m, t in moments.items():
                if m in MOMENTS and (not isinstance(t, torch.Tensor) or list(t.shape) != _moment_shape(m, shape)):
                    want = _moment_shape(m, shape)
                    raise CheckpointError(f"{name}: /{key}/state/{i}/{m} is {_describe(t)}, "
                                          + (f"its parameter {shape} needs {want}" if want is not None else f"its parameter {shape} has no such moment"))


# Per-parameter optimiser moments: AdamW's (exp_avg, exp_avg_sq, max_exp_avg_sq with amsgrad) have the parameter's shape;
# Adafactor factors a matrix's (or conv kernel's) second moment into row_var (last dim 1) and col_var (second-to-last
# dim 1) and keeps a full variance for a vector. A wrong shape would broadcast silently or fail mid-step.
MOMENTS = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq", "row_var", "col_var", "variance")


def _moment_shape(moment: str, shape: list[int]) -> list[int] | None:
    """The shape `moment` of a parameter of `shape` has; None where that parameter has no such moment."""
    factored = len(shape) > 1
    if moment == "row_var":
        return shape[:-1] + [1] if factored else None
    if moment == "col_var":
        return shape[:-2] + [1, shape[-1]] if factored else None
    if moment == "variance":
        return None if factored else shape
    return shape


def _required_moments(opt: Any, shape: list[int]) -> tuple[str, ...]:
    """The moments a stepped parameter's state must hold for `opt` to take its next step."""
    if isinstance(opt, torch.optim.Adafactor):
        return ("step", "row_var", "col_var") if len(shape) > 1 else ("step", "variance")
    if isinstance(opt, torch.optim.AdamW):
        return ("step", "exp_avg", "exp_avg_sq")
    return ()
