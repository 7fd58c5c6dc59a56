"""DMD2-style one-step UNets (Yin et al., "Improved Distribution Matching Distillation"; tianweiy/DMD2).

Released as a UNet state dict (diffusers layout, .bin or .safetensors). The UNet is ε-prediction fed the raw
noise (`noisy_image = noise`) at t=999 for SD1.5 and t=399 for one-step SDXL:
x0 = (z − sqrt(1−ᾱ_t)·ε̂)/sqrt(ᾱ_t), i.e. the "raw_z" input convention.
"""
from __future__ import annotations

import os

from ..format import GeneratorMetadata
from .common import detect_base, read_state_dict, to_ldm, write

DEFAULT_TIMESTEP = {"sd15": 999, "sd21": 999, "sdxl": 399, "custom": 999}


def import_dmd2(
    source: str, dest: str, *, base: str | None = None, timestep: float | None = None, guidance: float | None = None,
    **_: object,
) -> GeneratorMetadata:
    """Write a generator from a DMD2-style UNet state dict."""
    ldm = to_ldm(read_state_dict(source))
    base = detect_base(ldm, base)
    t = DEFAULT_TIMESTEP[base] if timestep is None else timestep
    return write(
        dest, ldm, method="dmd2", base=base, prediction="eps", timestep=t, input_convention="raw_z",
        guidance=guidance, source=f"dmd2 UNet state dict: {os.path.basename(source)}",
    )
