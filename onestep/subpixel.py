"""Nearest ×2 upsampling followed by a 3×3 convolution (stride 1, padding 1), computed without the upsampled tensor.

Every SD VAE decoder level and SD UNet level that doubles the resolution does `conv3x3(nearest_up2(x))`. After a
nearest upsampling each output pixel (2i+a, 2j+b) of the convolution sees only 2×2 distinct input pixels, so the
nine taps fold into four per phase (a, b) — rows for a = 0: {i−1: w₀, i: w₁+w₂}; for a = 1: {i: w₀+w₁, i+1: w₂}, and
the same for columns. All four phases are one 2×2 convolution of the low-resolution input (padding 1) with 4·C_out
output channels, phase (a, b) read at offset (a, b) of its (H+1)×(W+1) result and written to out[..., a::2, b::2].

The values equal upsample-then-convolve up to the order of the sums (the folded weights are summed in float32, then
cast to the weight's dtype: in bf16 a folded weight rounds once where the reference rounds each product); the work is
4/9 of the multiply-adds, and the 4×-larger upsampled tensor is never written or read. In the SD VAE decoder these
convolutions are 27 % of the FLOPs (the two at the top resolutions the largest), so the decoder does ~15 % less.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

def _fold(w: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The two phases' 2-tap kernels along `dim` of a 3-tap one: a = 0 takes rows {i−1: w₀, i: w₁+w₂}, a = 1 takes
    {i: w₀+w₁, i+1: w₂}. Tensor ops on the weight's own device (no constant from the host: a compiled call replayed
    from a CUDA graph may copy nothing from pageable memory)."""
    t0, t1, t2 = w.unbind(dim)
    return torch.stack([t0, t1 + t2], dim), torch.stack([t0 + t1, t2], dim)


def phase_weights(weight: torch.Tensor) -> torch.Tensor:
    """[C_out, C_in, 3, 3] → [4·C_out, C_in, 2, 2]: phase (a, b)'s folded kernel at channels (2a + b)·C_out…, summed
    in float32 (float64 weights: in float64) and returned in the weight's dtype."""
    if weight.ndim != 4 or weight.shape[-2:] != (3, 3):
        raise ValueError(f"a 3×3 convolution's weight has shape [C_out, C_in, 3, 3], not {tuple(weight.shape)}")
    exact = weight.to(torch.promote_types(weight.dtype, torch.float32))  # 16-bit weights are folded in float32
    phases = [col for row in _fold(exact, 2) for col in _fold(row, 3)]  # (0, 0), (0, 1), (1, 0), (1, 1)
    return torch.cat(phases).to(weight.dtype)


def upsample_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """conv2d(interpolate(x, scale_factor=2, mode="nearest"), weight, bias, padding=1) for x [B, C_in, H, W] and a
    3×3 weight, without the upsampled tensor: [B, C_out, 2H, 2W]."""
    if x.ndim != 4:
        raise ValueError(f"upsample_conv takes [B, C, H, W], not {tuple(x.shape)}")
    b, _, h, w = x.shape
    c_out = weight.shape[0]
    y = F.conv2d(x, phase_weights(weight), bias.repeat(4) if bias is not None else None, padding=1)  # [B, 4·C_out, H+1, W+1]
    out = torch.empty((b, c_out, 2 * h, 2 * w), dtype=y.dtype, device=y.device)
    phases = out.view(b, c_out, h, 2, w, 2)
    for a in (0, 1):
        for c in (0, 1):
            k = 2 * a + c
            phases[:, :, :, a, :, c] = y[:, k * c_out:(k + 1) * c_out, a:a + h, c:c + w]
    return out


class SubpixelUpsample(nn.Module):
    """Stands in for a host's "nearest ×2, then 3×3 convolution" module: `weight_and_bias(x)` gives the convolution's
    weight and bias as the host would use them on x (its casts and patches); inputs other than [B, C, H, W] go to
    `fallback` (the host's own module, e.g. for video latents)."""

    def __init__(self, weight_and_bias: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor | None]], fallback: nn.Module):
        super().__init__()
        self.weight_and_bias = weight_and_bias
        self.fallback = fallback

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4:
            return self.fallback(x)
        weight, bias = self.weight_and_bias(x)
        return upsample_conv(x, weight, bias)


class ModuleView:
    """A view of a model in which some submodules are swapped for others (swap_modules). The modules on the way to a
    swapped one are shallow copies (their own child lists, everything else — weights included — the model's own);
    the model itself is not changed. `current()` says whether the model still has the children and attributes the
    copies were made from (a host that later replaces a submodule or an attribute, e.g. an object patch, makes the
    view stale: make another)."""

    def __init__(self, module: nn.Module, swapped: int, copies: list[tuple[nn.Module, nn.Module]]):
        self.module, self.swapped = module, swapped
        self._copies = copies
        self._made_from = [_fingerprint(original) for original, _ in copies]

    def current(self) -> bool:
        return all(_fingerprint(original) == seen for (original, _), seen in zip(self._copies, self._made_from))


def _fingerprint(module: nn.Module) -> tuple:
    """The identities of a module's attributes and children (what a shallow copy of it holds)."""
    return tuple((k, id(v)) for k, v in module.__dict__.items() if k != "_modules") + tuple((k, id(v)) for k, v in module._modules.items())


def swap_modules(root: nn.Module, replace: Callable[[nn.Module], nn.Module | None]) -> ModuleView:
    """A view of `root` in which every submodule that `replace` maps to a module is swapped for it (ModuleView); with
    nothing swapped the view's module is root itself."""
    swapped, copies = 0, []

    def visit(module: nn.Module) -> nn.Module:
        nonlocal swapped
        new = replace(module)
        if new is not None:
            swapped += 1
            return new
        children = {name: visit(child) if child is not None else None for name, child in module._modules.items()}
        if all(children[name] is child for name, child in module._modules.items()):
            return module
        copy = object.__new__(type(module))
        copy.__dict__ = dict(module.__dict__)
        copy._modules = children  # a dict of its own: root's stays as it was
        copies.append((module, copy))
        return copy

    return ModuleView(visit(root), swapped, copies)
