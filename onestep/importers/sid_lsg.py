"""SiD-LSG generators (Zhou et al., "Long and Short Guidance in Score identity Distillation").

Checkpoints are pickles of {'ema': diffusers UNet2DConditionModel}: loading them the ordinary way runs
pickled code, so this importer refuses unless the caller opts in, and then reads the file with the
restricted unpickler (restricted_pickle.py), which admits torch/diffusers classes only and runs none of
their code. The generator is ε-prediction at t=625 (σ≈2.5) fed sqrt(1−ᾱ_625)·z: the "sigma_z" convention.
"""
from __future__ import annotations

import os
import pickle

from ..format import GeneratorMetadata
from .common import ImportSourceError, detect_base, to_ldm, write
from .restricted_pickle import PickleRefused, extract_module, find_module, restricted_load

SID_LSG_TIMESTEP = 625


def import_sid_lsg(
    source: str, dest: str, *, allow_pickle: bool = False, base: str | None = None, guidance: float | None = None,
    timestep: float = SID_LSG_TIMESTEP, **_: object,
) -> GeneratorMetadata:
    """Write a generator from a SiD-LSG pickle (requires allow_pickle=True)."""
    if not allow_pickle:
        raise ImportSourceError(
            f"{os.path.basename(source)} is a pickle, and unpickling can run code hidden in the file. "
            "Convert it only if you trust its origin: enable 'allow_pickle' (CLI: --allow-pickle); the pack then "
            "reads it with a restricted unpickler that admits torch and diffusers classes only."
        )
    if not os.path.isfile(source):
        raise ImportSourceError(f"{source}: no such file")
    try:
        obj = restricted_load(source)
    except PickleRefused as e:
        raise ImportSourceError(f"{os.path.basename(source)}: {e}") from None
    except (pickle.UnpicklingError, EOFError, ValueError) as e:
        raise ImportSourceError(f"{os.path.basename(source)} is not a readable pickle: {e}") from None
    module = find_module(obj, "UNet2DConditionModel")
    if module is None:
        raise ImportSourceError(f"{os.path.basename(source)} holds no diffusers UNet2DConditionModel")
    sd, _config = extract_module(module)
    ldm = to_ldm(sd)
    return write(
        dest, ldm, method="sid-lsg", base=detect_base(ldm, base), prediction="eps", timestep=timestep,
        input_convention="sigma_z", guidance=guidance, source=f"sid-lsg pickle: {os.path.basename(source)}",
    )
