"""Data-parallel training under torch.distributed (torchrun), DDP-equivalent by explicit gradient averaging.

Each rank takes a disjoint slice of every global batch (training/data.py) and, after its micro-batches, the
trainable gradients are averaged across ranks with one coalesced all-reduce before each optimiser step — the
same arithmetic as DistributedDataParallel. DDP's hooks are not used because R1 differentiates D twice and G
and D alternate on shared forward passes, which DDP's reducer does not support.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job."""

    rank: int = 0  # index of this process
    world_size: int = 1  # number of processes

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def current() -> DistInfo:
    """The initialised process group, or a single process."""
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size())
    return DistInfo()


def average_gradients(params: list[nn.Parameter], info: DistInfo) -> None:
    """Replace each gradient by its mean over ranks (missing gradients count as zero)."""
    if info.world_size == 1 or not params:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1).float() for g in grads])
    dist.all_reduce(flat)
    flat /= info.world_size
    offset = 0
    for p, g in zip(params, grads):
        n = g.numel()
        p.grad = flat[offset:offset + n].view_as(p).to(p.dtype)
        offset += n


def average_terms(terms: dict[str, float], info: DistInfo, device: torch.device) -> dict[str, float]:
    """Loss terms averaged over ranks (every rank gets the same values, NaN included)."""
    if info.world_size == 1:
        return terms
    keys = sorted(terms)
    v = torch.tensor([terms[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(v)
    return dict(zip(keys, (v / info.world_size).tolist()))


def broadcast_module(module: nn.Module, info: DistInfo) -> None:
    """Make every rank start from rank 0's parameters and buffers."""
    if info.world_size == 1:
        return
    with torch.no_grad():
        for t in [*module.parameters(), *module.buffers()]:
            dist.broadcast(t.data, src=0)
