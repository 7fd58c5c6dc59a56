"""Starting a one-step generator part-way (img2img, hires fix): its single call at model time timestep × denoise.

With a start latent and denoise d < 1, the call is made at the σ of model time t·d (t: the file's timestep) on the
start latent re-noised to that σ, so a lower d keeps more of it; d = 1 is the file's own σ_t. Every host runs this
rule (ComfyUI's One-Step Generate and One-Step Sigmas, Forge's img2img), so the same file and denoise start at the
same σ everywhere.

σ(t) and its inverse are k-diffusion's, as ComfyUI's ModelSamplingDiscrete and Forge's Prediction hold them: the
discrete table σ_i = sqrt((1 − ᾱ_i)/ᾱ_i) of the spec's schedule stored as float32 logs, interpolated log-linearly
between integer times; the model time of a σ is the index of the nearest table entry, so the UNet sees an integer
time. Rectified flow: σ = t/1000 and back. The float32 steps are those hosts' own, so the σ here is bit-identical
to what ComfyUI computed for the same file before this moved into the core (tests/test_comfy_inprocess.py checks).
"""
from __future__ import annotations

import math
from functools import lru_cache

import torch

from .parameterization import FLOW_TIME_SCALE, OneStepSpec
from .schedule import DiscreteSchedule


@lru_cache(maxsize=8)
def _log_sigmas(schedule: DiscreteSchedule) -> torch.Tensor:
    ac = schedule.alphas_cumprod()
    return (((1.0 - ac) / ac) ** 0.5).log().float()


def _sigma(spec: OneStepSpec, timestep: torch.Tensor) -> torch.Tensor:
    if spec.prediction == "flow":
        return timestep.float() / FLOW_TIME_SCALE
    log_sigmas = _log_sigmas(spec.schedule)
    t = torch.clamp(timestep.float(), min=0, max=len(log_sigmas) - 1)
    w = t.frac()
    return ((1 - w) * log_sigmas[t.floor().long()] + w * log_sigmas[t.ceil().long()]).exp()


def _timestep(spec: OneStepSpec, sigma: float) -> torch.Tensor:
    if spec.prediction == "flow":
        return torch.tensor(sigma) * FLOW_TIME_SCALE
    dists = torch.tensor(sigma).log() - _log_sigmas(spec.schedule)[:, None]
    return dists.abs().argmin(dim=0).view(())


def sigma_at(spec: OneStepSpec, timestep: float) -> float:
    """σ at a (possibly fractional) model time, on the spec's schedule."""
    return float(_sigma(spec, torch.tensor(float(timestep))))


def timestep_at(spec: OneStepSpec, sigma: float) -> float:
    """The model time the UNet gets for a call at σ: the nearest table index (discrete), σ·1000 (flow)."""
    return float(_timestep(spec, float(sigma)))


def check_denoise(denoise: float) -> float:
    if not (isinstance(denoise, (int, float)) and math.isfinite(denoise) and 0.0 < denoise <= 1.0):
        raise ValueError(f"denoise must be in (0, 1], not {denoise!r}")
    return float(denoise)


def start_sigma(spec: OneStepSpec, denoise: float = 1.0) -> float:
    """σ of the single call: the file's σ_t for denoise 1, else σ at model time timestep × denoise."""
    denoise = check_denoise(denoise)
    sigma = sigma_at(spec, spec.timestep)
    if denoise < 1.0:  # the time of σ_t times denoise, in the hosts' dtypes (an integer index × a float → float32)
        sigma = float(_sigma(spec, _timestep(spec, sigma) * denoise))
    return sigma
