"""E-LatentLPIPS (Kang et al. 2024, Eq. 3): E_T[LatentLPIPS(T(a), T(b))] + L1, one draw of T per training call,
an N-draw average (deterministic for a seed) at evaluation."""
from __future__ import annotations

import torch
from torch import nn

from .augment import AugmentConfig, PairedAugment
from .encoders import LatentEncoder
from .network import LatentLPIPS


class ELatentLPIPS(nn.Module):
    """The ensembled latent perceptual distance between VAE-unit latents a and b ([N, C, H, W])."""

    def __init__(
        self, lpips: LatentLPIPS, encoder: LatentEncoder, preset: str = "bg", l1: bool = True,
        augment_config: AugmentConfig = AugmentConfig(),
    ):
        super().__init__()
        if lpips.in_channels != encoder.channels:
            raise ValueError(f"the network takes {lpips.in_channels} channels but encoder {encoder.name} has {encoder.channels}")
        self.lpips = lpips
        self.encoder = encoder
        self.augment = PairedAugment(preset, augment_config)
        self.l1 = l1

    def check(self, a: torch.Tensor, b: torch.Tensor) -> None:
        """Clear errors for inputs this metric cannot compare."""
        if a.ndim != 4 or b.ndim != 4:
            raise ValueError(f"latents must be [batch, channels, height, width], got {tuple(a.shape)} and {tuple(b.shape)}")
        if a.shape[1] != self.encoder.channels or b.shape[1] != self.encoder.channels:
            raise ValueError(
                f"these weights are for {self.encoder.channels}-channel {self.encoder.name} latents; "
                f"got {a.shape[1]} and {b.shape[1]} channels"
            )
        if a.shape[1:] != b.shape[1:]:
            raise ValueError(f"latent shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
        if min(a.shape[-2:]) < 16:
            raise ValueError(f"latents of {a.shape[-2]}×{a.shape[-1]} are too small: the network pools twice; use at least 16×16")
        for name, x in (("a", a), ("b", b)):
            if not torch.isfinite(x).all():
                raise ValueError(f"latent {name} contains NaN or infinite values")

    def forward(self, a: torch.Tensor, b: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """One ensemble member per item: [N] distances (differentiable; a fresh transform per call)."""
        a, b = self.augment(self.encoder.normalize(a), self.encoder.normalize(b), generator=generator)
        d = self.lpips(a, b)
        if self.l1:
            d = d + (a - b).abs().mean(dim=(1, 2, 3))
        return d

    def evaluate(self, a: torch.Tensor, b: torch.Tensor, draws: int = 8, seed: int = 0) -> torch.Tensor:
        """The N-draw ensemble average per item, the same for the same seed."""
        g = torch.Generator().manual_seed(seed)
        return torch.stack([self(a, b, generator=g) for _ in range(max(1, draws))]).mean(dim=0)

    def distance_map(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Where a and b differ: the un-augmented per-pixel distance [N, 1, H, W] (augmenting would move pixels)."""
        a, b = self.encoder.normalize(a), self.encoder.normalize(b)
        d = self.lpips(a, b, spatial=True)
        if self.l1:
            d = d + (a - b).abs().mean(dim=1, keepdim=True)
        return d
