"""Paired differentiable augmentations for E-LatentLPIPS (ADA-style presets, Karras et al. 2020).

One random transform per call, with identical parameters for both inputs. Presets (combine letters, e.g. "bg"):
  b  xflip, rotate90, integer translation (±0.125 of the size)
  g  isotropic scale 2^N(0,0.2), rotation U(−π, π), anisotropic scale 2^N(0,0.2), fractional translation N(0, 0.125)
  c  brightness +U(−.5,.5), contrast ×U(.5,1.5) about the item mean, saturation ×U(0,2) about the channel mean
  o  cutout: a box of half the size at a random centre is zeroed
Geometric parts compose into one affine matrix per item (normalised with kornia's geometry conversions) and
are applied as one differentiable bilinear resampling with reflection padding, as ADA pads. Parameters are drawn
from a torch.Generator, so a seed fixes them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import kornia
import torch

PRESET_LETTERS = "bgco"


@dataclass(frozen=True)
class AugmentConfig:
    """Strengths of each augmentation (the elatentlpips defaults)."""

    xint_max: float = 0.125  # integer translation, fraction of the size
    scale_std: float = 0.2  # log2 std of isotropic scaling
    rotate_max: float = 1.0  # rotation range as a fraction of ±π
    aniso_std: float = 0.2  # log2 std of anisotropic scaling
    xfrac_std: float = 0.125  # fractional translation std, fraction of the size
    brightness: float = 0.5  # additive brightness range ±
    contrast: tuple[float, float] = (0.5, 1.5)  # multiplicative contrast range
    saturation: tuple[float, float] = (0.0, 2.0)  # multiplicative saturation range
    cutout_size: float = 0.5  # cutout box size, fraction of the size


def parse_preset(preset: str) -> str:
    """Validate a preset string such as "bg" (empty or "none": no augmentation)."""
    preset = "" if preset in ("", "none") else preset
    bad = set(preset) - set(PRESET_LETTERS)
    if bad:
        raise ValueError(f"unknown augmentation letters {''.join(sorted(bad))!r} in {preset!r}; use any of b, g, c, o")
    return preset


class PairedAugment:
    """Draws one transform per item and applies it to several tensors alike."""

    def __init__(self, preset: str = "bg", config: AugmentConfig = AugmentConfig()):
        self.preset = parse_preset(preset)
        self.cfg = config

    def sample(self, n: int, height: int, width: int, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Parameters for n items (on the CPU; `apply` moves them)."""
        g, c = generator, self.cfg
        p: dict[str, torch.Tensor] = {}
        eye = torch.eye(3).repeat(n, 1, 1)
        m = eye.clone()
        size = torch.tensor([width, height], dtype=torch.float32)
        if "b" in self.preset:
            flip = torch.randint(0, 2, (n,), generator=g) * 2 - 1
            m = _scale(flip.float(), torch.ones(n)) @ m
            m = _rotate(torch.randint(0, 4, (n,), generator=g).float() * (math.pi / 2)) @ m
            m = _translate(torch.round((torch.rand(n, 2, generator=g) * 2 - 1) * c.xint_max * size)) @ m
        if "g" in self.preset:
            s = torch.exp2(torch.randn(n, generator=g) * c.scale_std)
            m = _scale(s, s) @ m
            m = _rotate((torch.rand(n, generator=g) * 2 - 1) * math.pi * c.rotate_max) @ m
            a = torch.exp2(torch.randn(n, generator=g) * c.aniso_std)
            m = _scale(a, 1.0 / a) @ m
            m = _translate(torch.randn(n, 2, generator=g) * c.xfrac_std * size) @ m
        if "b" in self.preset or "g" in self.preset:
            center = (size - 1) / 2  # pixel-centre coordinates, align_corners=True
            m = _translate(center.expand(n, 2)) @ m @ _translate(-center.expand(n, 2))
            # The sampling grid needs output→input in normalised coordinates: invert on the CPU here, since a
            # batched inverse on the GPU synchronises the device (kornia's warp_affine does that on every call).
            norm = kornia.geometry.conversions.normalize_homography(m, (height, width), (height, width))
            p["theta"] = torch.linalg.inv(norm.double()).float()[:, :2]
        if "c" in self.preset:
            p["brightness"] = (torch.rand(n, generator=g) * 2 - 1) * c.brightness
            p["contrast"] = c.contrast[0] + torch.rand(n, generator=g) * (c.contrast[1] - c.contrast[0])
            p["saturation"] = c.saturation[0] + torch.rand(n, generator=g) * (c.saturation[1] - c.saturation[0])
        if "o" in self.preset:
            p["cutout_center"] = torch.rand(n, 2, generator=g)
        return p

    def apply(self, x: torch.Tensor, p: dict[str, torch.Tensor]) -> torch.Tensor:
        """x transformed by parameters from `sample` (differentiable in x)."""
        n, _, h, w = x.shape
        col = lambda t: t.to(x.device, x.dtype).view(n, 1, 1, 1)  # noqa: E731
        if "theta" in p:
            grid = torch.nn.functional.affine_grid(p["theta"].to(x.device, x.dtype), [n, x.shape[1], h, w], align_corners=True)
            x = torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=True)
        if "brightness" in p:
            x = x + col(p["brightness"])
            mean = x.mean(dim=(1, 2, 3), keepdim=True)
            x = (x - mean) * col(p["contrast"]) + mean
            cmean = x.mean(dim=1, keepdim=True)
            x = (x - cmean) * col(p["saturation"]) + cmean
        if "cutout_center" in p:
            cy = p["cutout_center"][:, 1].to(x.device).view(n, 1, 1, 1)
            cx = p["cutout_center"][:, 0].to(x.device).view(n, 1, 1, 1)
            gy = (torch.arange(h, device=x.device).view(1, 1, h, 1) + 0.5) / h
            gx = (torch.arange(w, device=x.device).view(1, 1, 1, w) + 0.5) / w
            half = self.cfg.cutout_size / 2
            keep = ((gy - cy).abs() >= half) | ((gx - cx).abs() >= half)
            x = x * keep.to(x.dtype)
        return x

    def __call__(self, *xs: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, ...]:
        """The same random transform applied to every tensor given (all [N, C, H, W] of one shape)."""
        if not self.preset:
            return xs
        n, _, h, w = xs[0].shape
        p = self.sample(n, h, w, generator)
        return tuple(self.apply(x, p) for x in xs)


def _scale(sx: torch.Tensor, sy: torch.Tensor) -> torch.Tensor:
    m = torch.eye(3).repeat(sx.shape[0], 1, 1)
    m[:, 0, 0], m[:, 1, 1] = sx, sy
    return m


def _rotate(theta: torch.Tensor) -> torch.Tensor:
    m = torch.eye(3).repeat(theta.shape[0], 1, 1)
    m[:, 0, 0], m[:, 0, 1] = torch.cos(theta), -torch.sin(theta)
    m[:, 1, 0], m[:, 1, 1] = torch.sin(theta), torch.cos(theta)
    return m


def _translate(t: torch.Tensor) -> torch.Tensor:
    m = torch.eye(3).repeat(t.shape[0], 1, 1)
    m[:, 0, 2], m[:, 1, 2] = t[:, 0], t[:, 1]
    return m
