"""Discrete variance-preserving noise schedules (DDPM, Ho et al. 2020) of the SD-family teachers.

ᾱ_t is the cumulative product of (1 − β_t); σ_t = sqrt((1 − ᾱ_t) / ᾱ_t) is the same noise level in the
k-diffusion convention x = x0 + σ·ε that ComfyUI samples in.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import torch

from .ranges import check_choice


@dataclass(frozen=True)
class DiscreteSchedule:
    """A beta schedule as SD-family model configs describe it."""

    beta_start: float = 0.00085  # β at t=0 (SD1.x/2.x/XL)
    beta_end: float = 0.012  # β at the last step
    steps: int = 1000  # number of discrete training timesteps
    kind: str = "scaled_linear"  # "scaled_linear" (linspace of sqrt β, squared) or "linear"

    def alphas_cumprod(self) -> torch.Tensor:
        """ᾱ_t for t = 0..steps−1, float64."""
        return _alphas_cumprod(self)

    def alpha_bar(self, timestep: int) -> float:
        """ᾱ at an integer timestep, with a clear error outside the schedule."""
        if int(timestep) != timestep or not 0 <= timestep < self.steps:
            raise ValueError(f"timestep {timestep} is not an integer in 0..{self.steps - 1}")
        return float(self.alphas_cumprod()[int(timestep)])

    def sigma(self, timestep: int) -> float:
        """k-diffusion σ_t = sqrt((1 − ᾱ_t)/ᾱ_t)."""
        a = self.alpha_bar(timestep)
        return math.sqrt((1.0 - a) / a)

    def sigmas(self) -> torch.Tensor:
        """σ_t for t = 0..steps−1, float64."""
        a = self.alphas_cumprod()
        return ((1 - a) / a).sqrt()


SPACINGS = ("linspace", "exponential")  # sampler_timesteps: how a sampler's steps are laid over the schedule


def sampler_timesteps(schedule: DiscreteSchedule, steps: int, spacing: str = "linspace") -> torch.Tensor:
    """A sampler's timesteps, decreasing (int64). "linspace": round(linspace(T−1, 0, steps)) (steps = 1: [T−1]), DDIM's
    spacing. "exponential": the timesteps nearest in log σ to σ uniform in log σ from σ_{T−1} to σ_0 (ComfyUI's
    "exponential" scheduler on the discrete schedule), where a second-order solver's error falls fastest; near t = 0
    neighbouring timesteps are further apart in log σ than a long run's spacing, so repeats are dropped (fewer steps)."""
    if steps < 1:
        raise ValueError("steps must be ≥ 1")
    check_choice("the timestep spacing", spacing, SPACINGS)
    if steps == 1:
        return torch.tensor([schedule.steps - 1])
    if spacing == "linspace":
        return torch.linspace(schedule.steps - 1, 0, steps, dtype=torch.float64).round().long()
    log_sigma = schedule.sigmas().log()
    wanted = torch.linspace(float(log_sigma[-1]), float(log_sigma[0]), steps, dtype=torch.float64)
    return torch.unique_consecutive((log_sigma[None, :] - wanted[:, None]).abs().argmin(dim=1))


@lru_cache(maxsize=8)
def _alphas_cumprod(s: DiscreteSchedule) -> torch.Tensor:
    if s.kind == "scaled_linear":
        betas = torch.linspace(s.beta_start**0.5, s.beta_end**0.5, s.steps, dtype=torch.float64) ** 2
    elif s.kind == "linear":
        betas = torch.linspace(s.beta_start, s.beta_end, s.steps, dtype=torch.float64)
    else:
        raise ValueError(f"unknown beta schedule {s.kind!r}")
    return torch.cumprod(1.0 - betas, dim=0)


SD_SCHEDULE = DiscreteSchedule()
