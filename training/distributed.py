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


BUCKET_ELEMENTS = 1 << 26  # values per all-reduce (256 MB of float32): bounds the extra memory of the averaging


def average_gradients(params: list[nn.Parameter], info: DistInfo) -> None:
    """Replace each gradient by its mean over ranks (missing gradients count as zero), in place, bucket by bucket."""
    if info.world_size == 1 or not params:
        return
    bucket: list[nn.Parameter] = []
    size = 0
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        bucket.append(p)
        size += p.numel()
        if size >= BUCKET_ELEMENTS:
            _average_bucket(bucket, info)
            bucket, size = [], 0
    if bucket:
        _average_bucket(bucket, info)


def _average_bucket(params: list[nn.Parameter], info: DistInfo) -> None:
    flat = torch.cat([p.grad.reshape(-1).float() for p in params])  # one coalesced all-reduce per bucket
    dist.all_reduce(flat)
    flat /= info.world_size
    offset = 0
    for p in params:
        n = p.numel()
        p.grad.copy_(flat[offset:offset + n].view_as(p))
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
