"""GroupNorm with its statistics from wide reductions, for the VAE decoder's large feature maps.

Why: torch's GroupNorm kernel reduces each (sample, group) row in one thread block. The SD/SDXL VAE decoder at
1024², batch 1, has 32 rows of up to 4 M elements, so 32 of an H100's 132 SMs work: its GroupNorms took 46 of the
decoder's 89 ms (bf16, ~143 GB/s; benchmarks/probe_vae_decoder.py). torch's generic reductions spread one row over
many blocks: the mean from an fp32-accumulated sum, the variance from torch.var (Welford, fp32 inside, so a large
mean does not cancel), then one elementwise pass with the affine folded into a per-channel scale and shift — 6×
faster at those shapes with the same error against an fp32 reference (benchmarks/probe_group_norm.py). Small maps
(the UNet's) keep the native kernel: there the split form's extra launches cost more than they save.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from .ranges import check_choice

WIDE_MIN_GROUP_ELEMENTS = 1 << 19  # per (sample, group) row; below it the native kernel was as fast or faster (H100)


AFFINES = ("addcmul", "batch_norm", "auto")  # group_norm_wide's normalising pass
# "auto": batch norm from this many channels per group, addcmul below. The batch-norm pass was faster at 8 and 16
# channels per group and slower at 4 (the SD/SDXL decoder's 128-channel 1024² maps), on an H100 at 1024², bf16
# (docs/benchmarks.md, "The batch-norm pass of the wide GroupNorm, timed").
BATCH_NORM_MIN_GROUP_CHANNELS = 8


def group_norm_wide(x: torch.Tensor, groups: int, weight: torch.Tensor | None, bias: torch.Tensor | None, eps: float,
                    affine: str = "addcmul") -> torch.Tensor:
    """F.group_norm(x, groups, weight, bias, eps) with the statistics from two wide reductions per group (no
    autograd: its last pass writes into a new tensor). `affine`: the normalising pass as one addcmul with fp32 scale
    and shift (torch's casting elementwise kernel), or as inference-mode batch norm over the (sample, channel) planes
    with the group statistics as its running ones (fp32 math, one rounding; NCHW maps or batch 1) — which is faster is
    measured by benchmarks/probe_group_norm.py; "auto" picks by channels per group."""
    check_choice("the normalising pass", affine, AFFINES)
    b, c = x.shape[:2]
    per_channel = c // groups
    if affine == "auto":
        affine = "batch_norm" if per_channel >= BATCH_NORM_MIN_GROUP_CHANNELS else "addcmul"
    if x.ndim == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        rows, dims = x.permute(0, 2, 3, 1).reshape(b, -1, groups, per_channel), (1, 3)  # NHWC memory: a view, no copy
    else:
        rows, dims = x.reshape(b, groups, -1), (2,)
    mean = rows.sum(dims, dtype=torch.float32) / (rows.numel() // (b * groups))
    var = torch.var(rows, dims, correction=0).float()
    if affine == "batch_norm" and (x.is_contiguous() or b == 1):
        planes = x.reshape((1, b * c) + x.shape[2:]) if x.is_contiguous() else x  # batch 1: x is already one "batch"
        out = torch.nn.functional.batch_norm(
            planes, mean.repeat_interleave(per_channel, 1).flatten(), var.repeat_interleave(per_channel, 1).flatten(),
            None if weight is None else weight.float().repeat(b), None if bias is None else bias.float().repeat(b), False, 0.0, eps)
        return out.view(x.shape) if x.is_contiguous() else out
    rstd = torch.rsqrt(var + eps)
    scale = rstd.repeat_interleave(per_channel, 1)
    shift = -mean.repeat_interleave(per_channel, 1) * scale
    if weight is not None:
        scale = scale * weight.float()
        shift = shift * weight.float()
    if bias is not None:
        shift = shift + bias.float()
    shape = (b, c) + (1,) * (x.ndim - 2)
    out = torch.empty_like(x)  # x's layout; one pass in fp32, rounded once on the store (bf16 scale and shift doubled the error)
    return torch.addcmul(shift.view(shape), x, scale.view(shape), out=out)


def prefers_wide(x: torch.Tensor, groups: int) -> bool:
    """Whether group_norm_wide beats the native kernel on x: on a GPU, rows of at least WIDE_MIN_GROUP_ELEMENTS."""
    return (x.is_cuda and x.ndim >= 3 and x.shape[1] % groups == 0
            and x.numel() >= WIDE_MIN_GROUP_ELEMENTS * x.shape[0] * groups)


class WideGroupNorm(nn.Module):
    """Stands in for a host's GroupNorm module: `weight_and_bias(x)` gives its weight and bias as the host would
    apply them to x (casts, patches); maps where the native kernel is as fast, and calls under autograd, go to
    `fallback` (the host's module)."""

    def __init__(self, weight_and_bias: Callable[[torch.Tensor], tuple[torch.Tensor | None, torch.Tensor | None]], fallback: nn.GroupNorm):
        super().__init__()
        self.weight_and_bias = weight_and_bias
        self.fallback = fallback
        self.num_groups, self.eps = fallback.num_groups, fallback.eps
        self.affine = "auto"  # group_norm_wide's normalising pass by shape (benchmarks/probe_vae_decoder.py --wide-affine sets it)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() or not prefers_wide(x, self.num_groups):
            return self.fallback(x)
        weight, bias = self.weight_and_bias(x)
        return group_norm_wide(x, self.num_groups, weight, bias, self.eps, self.affine)

