"""Rectified flow (Liu et al., ICLR 2023, "Flow Straight and Fast", Eq. 1 and Alg. 1; InstaFlow, ICLR 2024) in the
flow convention of the pack's generator files (prediction "flow", onestep/parameterization.py).

  σ ∈ [0, 1] is the noise fraction and τ = 1000·σ the UNet's time input (FLOW_TIME_SCALE; 1000 at the noise end,
  as InstaFlow's released pipelines and ComfyUI's ModelSamplingDiscreteFlow use it):
      X_σ = (1 − σ)·x + σ·z              (z noise at σ = 1, x data at σ = 0)
      v(X_σ, τ | c) ≈ x − z              (the velocity points from noise to data: sampling runs σ from 1 down to 0)
      x0 = X_σ + σ·v                      (exact on a straight path; one step from noise: x0 = z + v(z, 1000))
      Euler from σ to σ' < σ: X_σ' = X_σ + (σ − σ')·v(X_σ, 1000·σ); N equal steps: x ← x + v/N.
  Liu et al. write X_t = t·X1 + (1 − t)·X0 with X0 = z, X1 = x: their t is 1 − σ, so τ = 1000·(1 − t).
  As a k-diffusion denoiser (ComfyUI's CONST sampling with the sign of v flipped, onestep_nodes/generator_model.py)
  D(x, σ) = x + σ·v, so k-diffusion's Euler step x + (x − D)/σ·(σ' − σ) (onestep/euler.py) is the Euler step above.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from .euler import sample_euler
from .parameterization import FLOW_TIME_SCALE

VelocityFn = Callable[..., torch.Tensor]  # velocity(x, τ [B], **cond) -> v, the raw UNet of a flow model


def interpolate(z: torch.Tensor, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """X_σ = (1 − σ)·x + σ·z for per-item σ [B] (or a number)."""
    s = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1, *[1] * (x.ndim - 1))
    return (1.0 - s) * x + s * z


def velocity_target(z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The straight path's velocity x − z (data − noise)."""
    return x - z


def model_time(sigma: torch.Tensor) -> torch.Tensor:
    """The UNet's time input τ = 1000·σ."""
    return sigma * FLOW_TIME_SCALE


def flow_sigmas(steps: int) -> torch.Tensor:
    """[1, 1 − 1/N, ..., 1/N, 0]: N equal Euler steps from the noise end (ComfyUI's "simple" scheduler on a flow MODEL
    gives the same σ when N divides 1000)."""
    if steps < 1:
        raise ValueError(f"steps must be ≥ 1, not {steps}")
    return torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64).float()


class FlowDenoiser(torch.nn.Module):
    """A velocity UNet as a k-diffusion denoiser D(x, σ) = x + σ·v(x, 1000σ); `cfg` ≠ 1 mixes velocities,
    v = v_u + cfg·(v_c − v_u), with the unconditional `uncond` kwargs (CFG is linear, so mixing D is the same)."""

    def __init__(self, velocity: VelocityFn):
        super().__init__()
        self.velocity = velocity

    def forward(self, x: torch.Tensor, sigma: torch.Tensor, cfg: float = 1.0, uncond: dict | None = None, **cond) -> torch.Tensor:
        v = self.velocity(x, model_time(sigma), **cond)
        if cfg != 1.0:
            v_u = self.velocity(x, model_time(sigma), **(uncond or {}))
            v = v_u + cfg * (v - v_u)
        return x + sigma.reshape(-1, *[1] * (x.ndim - 1)).to(x.dtype) * v.to(x.dtype)


def euler(velocity: VelocityFn, z: torch.Tensor, steps: int, **cond) -> torch.Tensor:
    """k equal Euler steps of a flow from noise z: x ← x + (σ_i − σ_{i+1})·v(x, 1000·σ_i) (x ← x + v/k), by the generic
    Euler sampler on a FlowDenoiser."""
    sigmas = flow_sigmas(steps).to(z.device)
    return sample_euler(FlowDenoiser(velocity), z, sigmas, extra_args=cond)
