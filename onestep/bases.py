"""Base architectures a generator can be built on, and how to recognise them from UNet weights."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Base:
    """What the pack needs to know about a base architecture."""

    name: str  # id written into generator files
    context_dim: int | None  # width of the text conditioning (cross-attention keys); None: any
    latent_channels: int  # channels of the latent the UNet denoises
    latent_format: str  # ComfyUI latent format name (scale factor and preview colours)
    has_adm: bool  # takes a pooled/size vector ("y"), as SDXL does


BASES: dict[str, Base] = {
    "sd15": Base("sd15", 768, 4, "sd15", False),
    "sd21": Base("sd21", 1024, 4, "sd15", False),
    "sdxl": Base("sdxl", 2048, 4, "sdxl", True),
    # Any other UNet of the SD family (small test and proof-scale models): checked by the weights alone.
    "custom": Base("custom", None, 0, "sd15", False),
}


def get_base(name: str) -> Base:
    """The base called `name`, with a clear error for unknown names."""
    try:
        return BASES[name]
    except KeyError:
        raise ValueError(f"unknown base architecture {name!r}; known: {', '.join(BASES)}") from None


@dataclass(frozen=True)
class UNetShape:
    """What an ldm-layout UNet state dict reveals about itself."""

    in_channels: int
    out_channels: int
    context_dim: int | None
    has_adm: bool


def inspect_ldm_unet(sd: dict[str, torch.Tensor]) -> UNetShape:
    """Read channel counts and conditioning width off ldm-layout UNet weights."""
    for key in ("input_blocks.0.0.weight", "out.2.weight"):
        if key not in sd:
            raise ValueError(f"not an SD-family UNet in ComfyUI/ldm layout: key {key!r} is missing")
    context = None
    for k, v in sd.items():
        if k.endswith("attn2.to_k.weight"):
            context = int(v.shape[1])
            break
    return UNetShape(
        in_channels=int(sd["input_blocks.0.0.weight"].shape[1]),
        out_channels=int(sd["out.2.weight"].shape[0]),
        context_dim=context,
        has_adm="label_emb.0.0.weight" in sd,
    )


def base_from_shape(shape: UNetShape) -> str:
    """The standard base whose conditioning the UNet takes, or "custom"."""
    for b in BASES.values():
        if b.context_dim == shape.context_dim and b.has_adm == shape.has_adm and b.latent_channels == shape.in_channels:
            return b.name
    return "custom"
