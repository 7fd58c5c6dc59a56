"""Float32 output layers for one-step generators run under bf16/fp16 autocast.

A one-step ε-generator at t=999 returns x0 = σ_t·(z − ε̂) with σ_t ≈ 14.6 (SD schedule): the image is a small
residual of ε̂ ≈ z, so rounding ε̂ to bf16 (8 bits of mantissa, ±0.004 near 1) moves x0 by ~0.02–0.06 — black
backgrounds turn grey. The teacher's 50 small steps do not amplify it; one step does. Computing the network's
last layer (and the x0 conversion after it) in float32 removes that rounding at the cost of one convolution.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Float32Conv2d(nn.Conv2d):
    """A Conv2d that computes in float32 whatever autocast is active (weights are read as float32)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            bias = None if self.bias is None else self.bias.float()
            return F.conv2d(x.float(), self.weight.float(), bias, self.stride, self.padding, self.dilation, self.groups)


def keep_output_float32(conv: nn.Module) -> nn.Module:
    """Make a Conv2d compute in float32 (in place: its class becomes Float32Conv2d, so its state-dict keys, its
    parameters and anything sharing them are unchanged); other modules are returned as they are."""
    if isinstance(conv, nn.Conv2d) and not isinstance(conv, Float32Conv2d) and conv.padding_mode == "zeros":
        conv.__class__ = Float32Conv2d
    return conv
