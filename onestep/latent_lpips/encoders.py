"""Latent spaces E-LatentLPIPS knows: channel count and the normalisation applied before the network
(the same scale/shift ComfyUI's latent formats apply when a latent enters the diffusion model), from the pack's one
table of latent spaces (onestep/latent_spaces.py)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..latent_spaces import LATENT_SPACES


@dataclass(frozen=True)
class LatentEncoder:
    """A VAE latent space."""

    name: str  # id in weight files: sd15 | sd21 | sdxl | sd3 | flux | custom-<C>
    channels: int  # latent channels
    scale: float  # x_norm = (x - shift) * scale
    shift: float = 0.0

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """VAE-unit latents → the units the network was trained on."""
        return (x - self.shift) * self.scale


ENCODERS: dict[str, LatentEncoder] = {  # sd15, sd21, sdxl, sd3, flux
    name: LatentEncoder(name, space.channels, space.scale, space.shift) for space in LATENT_SPACES.values() for name in space.encoders or ()
}


def get_encoder(name: str, channels: int | None = None) -> LatentEncoder:
    """A known encoder, or `custom-<C>` (identity normalisation) for any other channel count."""
    if name in ENCODERS:
        return ENCODERS[name]
    if name.startswith("custom"):
        c = channels if channels is not None else int(name.split("-", 1)[1])
        return LatentEncoder(f"custom-{c}", c, 1.0)
    raise ValueError(f"unknown latent encoder {name!r}; known: {', '.join(ENCODERS)} or custom-<channels>")
