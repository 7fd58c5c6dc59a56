"""Shared steps of the importers: reading weight files safely, converting layouts, writing the generator."""
from __future__ import annotations

import os

import torch
from safetensors.torch import load_file

from ..bases import base_from_shape, get_base, inspect_ldm_unet
from ..format import GeneratorMetadata, save_generator
from ..weights_only import refusal_reason
from ..unet_keys import diffusers_to_ldm, is_diffusers_unet


class ImportSourceError(ValueError):
    """A source that cannot be imported; the message names the problem."""


def read_state_dict(path: str) -> dict[str, torch.Tensor]:
    """Tensors from .safetensors, or from a torch file with weights_only=True (no code runs)."""
    if not os.path.isfile(path):
        raise ImportSourceError(f"{path}: no such file")
    if path.endswith((".safetensors", ".sft")):
        return load_file(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises UnpicklingError and others for non-weight pickles
        raise ImportSourceError(
            f"{os.path.basename(path)} is not a plain weights file: torch.load with weights_only=True refused it "
            f"({refusal_reason(e)}); the pack never runs code a pickle names"
        ) from None
    for key in ("state_dict", "model", "module"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ImportSourceError(f"{os.path.basename(path)} does not hold a state dict of tensors")
    return obj


def to_ldm(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """UNet weights in ComfyUI's layout, whichever layout they came in."""
    for prefix in ("model.diffusion_model.", "unet."):
        if sum(k.startswith(prefix) for k in sd) > len(sd) // 2:
            sd = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
    if is_diffusers_unet(sd):
        return diffusers_to_ldm(sd)
    if "input_blocks.0.0.weight" in sd:
        return sd
    raise ImportSourceError("these weights are not an SD-family UNet (neither diffusers nor ComfyUI/ldm key layout)")


def detect_base(ldm_sd: dict[str, torch.Tensor], base: str | None) -> str:
    """The base named by the user, else the one the weights reveal."""
    found = base_from_shape(inspect_ldm_unet(ldm_sd))
    if base in (None, "", "auto"):
        return found
    get_base(base)
    return base


def write(dest: str, ldm_sd: dict[str, torch.Tensor], **meta_fields) -> GeneratorMetadata:
    """Validate and atomically write the generator; returns its metadata."""
    channels = int(inspect_ldm_unet(ldm_sd).in_channels)
    base = meta_fields["base"]
    meta = GeneratorMetadata(latent_channels=channels, latent_format=get_base(base).latent_format, **meta_fields)
    save_generator(dest, ldm_sd, meta)
    return meta
