"""Weights files of the benchmark: safetensors with JSON metadata under `proof_scale.*` keys (never pickle),
written atomically (onestep/atomic.py), and a content digest that ties cached statistics to the weights."""
from __future__ import annotations

import hashlib
import json

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from onestep.atomic import atomic_write

PREFIX = "proof_scale."


class CheckpointError(ValueError):
    """A file that is not the kind of benchmark weights the caller asked for."""


def save_tensors(path: str, tensors: dict[str, torch.Tensor], kind: str, meta: dict) -> None:
    """Write `tensors` with metadata {proof_scale.format: kind, proof_scale.<key>: JSON of value} atomically."""
    header = {PREFIX + "format": kind, **{PREFIX + k: json.dumps(v) for k, v in meta.items()}}
    cpu = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    atomic_write(path, lambda tmp: save_file(cpu, tmp, metadata=header))


def load_tensors(path: str, kind: str) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, metadata decoded from JSON) of a file written by save_tensors with this kind."""
    with safe_open(path, "pt") as f:
        header = f.metadata() or {}
        if header.get(PREFIX + "format") != kind:
            raise CheckpointError(f"{path} is not a {kind} file (format {header.get(PREFIX + 'format')!r})")
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a dict)
    meta = {k[len(PREFIX):]: json.loads(v) for k, v in header.items() if k.startswith(PREFIX) and k != PREFIX + "format"}
    return tensors, meta


def digest(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over names, dtypes, shapes and bytes of a state dict (order-independent)."""
    h = hashlib.sha256()
    for k in sorted(tensors):
        t = tensors[k].detach().to("cpu").contiguous()
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()
