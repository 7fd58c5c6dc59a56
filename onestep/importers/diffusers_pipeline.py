"""InstaFlow / 2-rectified-flow diffusers pipeline folders (Liu et al., "InstaFlow"; gnobitab/RectifiedFlow).

Layout: <folder>/unet/config.json and <folder>/unet/diffusion_pytorch_model[.fp16].{safetensors,bin}.
The UNet predicts the velocity v = data − noise at model time 1000 on pure noise: x0 = z + v.
"""
from __future__ import annotations

import json
import os

from ..format import GeneratorMetadata
from .common import ImportSourceError, detect_base, read_state_dict, to_ldm, write

_WEIGHT_NAMES = (
    "diffusion_pytorch_model.safetensors",
    "diffusion_pytorch_model.fp16.safetensors",
    "diffusion_pytorch_model.bin",
    "diffusion_pytorch_model.fp16.bin",
)


def find_unet_weights(folder: str) -> str:
    """The UNet weight file of a diffusers pipeline (or bare unet/) folder."""
    unet = os.path.join(folder, "unet")
    if not os.path.isdir(unet):
        unet = folder
    if not os.path.isfile(os.path.join(unet, "config.json")):
        raise ImportSourceError(f"{folder} is not a diffusers pipeline folder: unet/config.json is missing")
    for name in _WEIGHT_NAMES:
        if os.path.isfile(os.path.join(unet, name)):
            return os.path.join(unet, name)
    raise ImportSourceError(f"{unet} holds no UNet weights (looked for {', '.join(_WEIGHT_NAMES)})")


def import_diffusers_pipeline(
    source: str, dest: str, *, method: str = "instaflow", base: str | None = None, guidance: float | None = None,
    timestep: float = 1000.0, **_: object,
) -> GeneratorMetadata:
    """Write a rectified-flow one-step generator from a diffusers pipeline folder."""
    weights = find_unet_weights(source)
    with open(os.path.join(os.path.dirname(weights), "config.json")) as f:
        config = json.load(f)
    if config.get("_class_name", "UNet2DConditionModel") != "UNet2DConditionModel":
        raise ImportSourceError(f"{source}: unet/config.json describes a {config['_class_name']}, not a UNet2DConditionModel")
    ldm = to_ldm(read_state_dict(weights))
    return write(
        dest, ldm, method=method, base=detect_base(ldm, base), prediction="flow", timestep=timestep,
        input_convention="sigma_z", guidance=guidance, source=f"{method} diffusers pipeline: {os.path.basename(os.path.normpath(source))}",
    )
