"""The narrow interface the training engine needs from a teacher UNet, whatever library built it.

The generator G(z, c) = x0(UNet(x_in, t, c)) (onestep/parameterization.py) needs only the call, plus what the
engine's memory levers use (gradient checkpointing, LoRA targets) and the export's key layout. Methods that need
more declare it themselves (Diffusion2GAN's discriminator reads the encoder: discriminator.UNetEncoder). Adapters:
training/diffusers_unet.py (diffusers UNet2DConditionModel, headless); onestep_nodes/comfy_unet.py (ComfyUI's ldm UNetModel).
"""
from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from torch import nn

from .core import LATENT_SPACES
from .host_to_device import to_device

# Attention projections and feed-forward layers: the same names in diffusers' and ldm's transformer blocks.
LORA_TARGET_PATTERN = re.compile(r"(^|\.)(attn[12]\.(to_q|to_k|to_v|to_out\.0)|ff\.net\.(0\.proj|2))$")


@dataclass(frozen=True)
class ModelInfo:
    """What data must match for a UNet to train on it."""

    latent_channels: int  # channels of the latent the UNet reads and writes
    context_dim: int  # width of the cross-attention conditioning (768 SD1.5, 1024 SD2, 2048 SDXL)
    pooled_dim: int | None = None  # width of the pooled text embedding the UNet needs (SDXL: 1280), None: none
    latent_scale: float = LATENT_SPACES["sd15"].scale  # UNet (x0) space = (VAE latent − latent_shift) · latent_scale
    latent_shift: float = 0.0  # see latent_scale
    spatial_multiple: int = 1  # latent height and width must be multiples of this (2^downsamplings)

    def to_unet_space(self, latent: torch.Tensor) -> torch.Tensor:
        """ComfyUI LATENT (VAE units) → the UNet's x0 space."""
        return (latent - self.latent_shift) * self.latent_scale

    def to_latent(self, x0: torch.Tensor) -> torch.Tensor:
        """The UNet's x0 space → ComfyUI LATENT (VAE units)."""
        return x0 / self.latent_scale + self.latent_shift


UNET_EXTRA = ("pooled", "size")  # batch entries every UNet call takes besides x, t and the text: the pooled text [B, P] and
# SDXL's size/crop conditioning [B, 6] (height, width, crop_h, crop_w, target_height, target_width; absent: the default,
# original = target = the image size, no crop), travelling with the text through G, D and the teacher


def unet_extra(batch: Mapping[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """The UNET_EXTRA entries of a batch, as float32 on `device` (the keyword arguments of the UNet calls)."""
    return {k: to_device(batch[k], device, torch.float32) for k in UNET_EXTRA if k in batch}


@runtime_checkable
class TrainableUNet(Protocol):
    """A UNet as the trainer uses it (an nn.Module; see training/diffusers_unet.py for the reference adapter)."""

    info: ModelInfo

    def __call__(self, x_in: torch.Tensor, t: torch.Tensor, context: torch.Tensor, **extra) -> torch.Tensor:
        """The raw network output (ε, v, x0 or velocity) for UNet input x_in at timesteps t [B]; extra: UNET_EXTRA."""

    def set_gradient_checkpointing(self, enabled: bool) -> None:
        """Recompute block activations in backward."""

    def lora_targets(self) -> list[str]:
        """Names (relative to this module) of the nn.Linear / nn.Conv2d layers LoRA should wrap."""

    def export_state_dict(self, sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """This module's state dict (keys as named here) → ComfyUI's ldm UNet layout for onestep.format."""


def copy_module(module: nn.Module, share_weights: bool = False) -> nn.Module:
    """copy.deepcopy of a module; with share_weights the copy's modules are new but its parameters and buffers are
    the original's tensors (a second set of layers on the same weights: no memory for the weights)."""
    memo = {id(t): t for t in (*module.parameters(), *module.buffers())} if share_weights else {}
    return copy.deepcopy(module, memo)


def copy_without(module: nn.Module, names: tuple[str, ...], share_weights: bool = False) -> nn.Module:
    """copy_module of `module` with its children `names` set to None in the copy (they are not deep-copied only to be
    dropped; the original keeps them)."""
    dropped = {k: getattr(module, k) for k in names}
    for k in dropped:
        setattr(module, k, None)
    try:
        return copy_module(module, share_weights)
    finally:
        for k, v in dropped.items():
            setattr(module, k, v)


def default_lora_targets(module: nn.Module) -> list[str]:
    """Attention q/k/v/out projections and feed-forward linears of every transformer block."""
    return [n for n, m in module.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d)) and LORA_TARGET_PATTERN.search(n)]


def store_frozen(module: nn.Module, dtype: torch.dtype) -> None:
    """Keep the parameters that are not trained in `dtype` (trained ones and buffers unchanged). In place, so a
    frozen weight another module shares (a LoRA discriminator's backbone) stays shared."""
    for p in module.parameters():
        if not p.requires_grad and p.is_floating_point() and p.dtype != dtype:
            p.data = p.detach().to(dtype)


class IncompatibleDataError(ValueError):
    """Training data that does not fit the UNet; the message names what differs."""


def check_batch_compatible(batch: Mapping[str, torch.Tensor], info: ModelInfo, keys: tuple[str, ...] = ("noise", "latent", "context")) -> None:
    """Refuse a batch (or one dataset item, unbatched) whose shapes do not fit the UNet, naming the mismatch; `keys`
    are the entries the method needs (a prompts-only method: just "context")."""
    for key in keys:
        if key not in batch:
            raise IncompatibleDataError(f"training data lacks {key!r} (has {', '.join(sorted(batch))})")
    context = batch["context"]
    if context.ndim == 2:  # one dataset item: add the batch dimension
        batch = {k: v[None] if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        context = batch["context"]
    if "latent" in keys:
        _check_latents(batch["noise"], batch["latent"], info)
    if context.ndim != 3 or context.shape[-1] != info.context_dim:
        raise IncompatibleDataError(
            f"the dataset's text conditioning has width {context.shape[-1]} but the teacher UNet's cross-attention takes "
            f"{info.context_dim}: the pairs were made with another text encoder (e.g. SD1.5 CLIP-L 768, SD2 1024, SDXL 2048)"
        )
    pooled = batch.get("pooled")
    if info.pooled_dim is not None and pooled is None:
        raise IncompatibleDataError(f"the teacher UNet needs a pooled text embedding of width {info.pooled_dim} (SDXL); the dataset has none")
    if info.pooled_dim is not None and pooled.shape[-1] != info.pooled_dim:
        raise IncompatibleDataError(f"the dataset's pooled embedding has width {pooled.shape[-1]}, the teacher UNet takes {info.pooled_dim}")
    size = batch.get("size")
    if size is not None and info.pooled_dim is None:
        raise IncompatibleDataError("the dataset has SDXL size/crop conditioning but the teacher UNet takes no size embedding (not SDXL-family)")
    if size is not None and size.shape[-1] != 6:
        raise IncompatibleDataError(f"the dataset's size conditioning has {size.shape[-1]} values per item, SDXL's has 6")


def _check_latents(noise: torch.Tensor, latent: torch.Tensor, info: ModelInfo) -> None:
    if latent.ndim != 4 or noise.shape != latent.shape:
        raise IncompatibleDataError(f"noise {tuple(noise.shape)} and latent {tuple(latent.shape)} must both be [B, C, H, W] of one shape")
    if latent.shape[1] != info.latent_channels:
        raise IncompatibleDataError(
            f"the dataset's latents have {latent.shape[1]} channels but the teacher UNet makes {info.latent_channels}-channel "
            "latents: these pairs were collected with another model family"
        )
    h, w = latent.shape[-2:]
    if h % info.spatial_multiple or w % info.spatial_multiple:
        raise IncompatibleDataError(f"latents of {h}×{w} do not fit the UNet: height and width must be multiples of {info.spatial_multiple}")
