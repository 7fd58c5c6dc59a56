"""One-step parameterizations: how a generator turns noise z into x0 in a single UNet call.

A one-step generator is the teacher's network run at one fixed noise level (docs/methods.md):
  - ε-prediction at timestep t (Diffusion2GAN/DMD2 t=999, DMD2-SDXL t=399, SiD-LSG t=625):
      x0 = (x_in − sqrt(1−ᾱ_t)·ε̂) / sqrt(ᾱ_t)
  - v-prediction at t:  x0 = sqrt(ᾱ_t)·x_in − sqrt(1−ᾱ_t)·v̂
  - x0-prediction at t: x0 = network output
  - rectified-flow velocity (InstaFlow, Liu et al.): model time 1000 at the noise end, x0 = z + v̂.
The UNet input x_in depends on the input convention the method was trained with:
  - "sigma_z": x_in = sqrt(1−ᾱ_t)·z, i.e. k-diffusion's x = σ_t·z scaled by 1/sqrt(σ_t²+1), which is what
    ComfyUI's Euler step from σ_t feeds the UNet (SiD-LSG, Diffusion2GAN here);
  - "raw_z": x_in = z, the raw noise (DMD2's `noisy_image = noise`).
In k-diffusion terms both are x = m·z with m = σ_t ("sigma_z") or sqrt(σ_t²+1) ("raw_z"):
`noise_multiplier` is that m, `input_scale` the c_in that turns x into the UNet input and `denoised` the
denoiser's x0; the ComfyUI adapter maps m onto core's noise scaling, the A1111/Forge adapter (onestep_webui/) all three
onto Forge's predictor.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from .schedule import SD_SCHEDULE, DiscreteSchedule

PREDICTIONS = ("eps", "v", "x0", "flow")
INPUT_CONVENTIONS = ("sigma_z", "raw_z")
FLOW_TIME_SCALE = 1000.0  # rectified-flow model time for σ=1 (the noise end), as SD-based flows use it

UNetFn = Callable[..., torch.Tensor]  # unet(x_in, timesteps, context, **kwargs) -> raw network output


@dataclass(frozen=True)
class OneStepSpec:
    """Where and how the generator's single UNet call is made."""

    prediction: str  # "eps" | "v" | "x0" | "flow" (rectified-flow velocity, data − noise)
    timestep: float  # UNet time input: integer 0..999 for discrete schedules, 1000 for flow at the noise end
    input_convention: str = "sigma_z"  # "sigma_z" | "raw_z" (see module docstring); flow ignores it
    schedule: DiscreteSchedule = SD_SCHEDULE  # the teacher's discrete schedule (unused for flow)

    def __post_init__(self) -> None:
        if self.prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {PREDICTIONS}, not {self.prediction!r}")
        if self.input_convention not in INPUT_CONVENTIONS:
            raise ValueError(f"input convention must be one of {INPUT_CONVENTIONS}, not {self.input_convention!r}")
        if self.prediction == "flow":
            if not 0.0 < self.timestep <= FLOW_TIME_SCALE:
                raise ValueError(f"flow model time must be in (0, {FLOW_TIME_SCALE:g}], not {self.timestep}")
        else:
            self.schedule.alpha_bar(self.timestep)  # raises a clear error for a timestep off the schedule

    def describe(self) -> str:
        """The single call in words, for messages: "ε at t=625 (σ·z input)", "flow velocity at model time 1000"."""
        if self.prediction == "flow":
            return f"flow velocity at model time {self.timestep:g}"
        what = {"eps": "ε", "v": "v", "x0": "x0"}[self.prediction]
        return f"{what} at t={self.timestep:g} ({'σ·z' if self.input_convention == 'sigma_z' else 'raw z'} input)"

    def mismatch(self, other: "OneStepSpec") -> str | None:
        """The first of "prediction", "input_convention", "timestep" in which `other`'s single call differs from this one
        (None: the same call; a flow has no input convention), so a refusal can name the fix (node inputs or CLI flags)."""
        if self.prediction != other.prediction:
            return "prediction"
        if self.prediction != "flow" and self.input_convention != other.input_convention:
            return "input_convention"
        return "timestep" if self.timestep != other.timestep else None

    @property
    def sigma(self) -> float:
        """The noise level in ComfyUI's convention: k-diffusion σ_t, or the flow's t/1000."""
        if self.prediction == "flow":
            return self.timestep / FLOW_TIME_SCALE
        return self.schedule.sigma(self.timestep)

    @property
    def noise_multiplier(self) -> float:
        """m in x = m·z, the k-diffusion sample the single step starts from."""
        if self.prediction == "flow" or self.input_convention == "sigma_z":
            return self.sigma
        return math.sqrt(self.sigma**2 + 1.0)

    @property
    def input_scale(self) -> float:
        """c_in: the UNet input is input_scale·x for the k-diffusion sample x (1/sqrt(σ²+1); the flow takes x as is)."""
        if self.prediction == "flow":
            return 1.0
        return 1.0 / math.sqrt(self.sigma**2 + 1.0)

    def unet_input(self, z: torch.Tensor) -> torch.Tensor:
        """What the UNet sees for noise z: input_scale·(noise_multiplier·z)."""
        return z * (self.noise_multiplier * self.input_scale)

    def denoised(self, output: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """x0 as a k-diffusion denoiser returns it: from the network output and the sample x it was called at."""
        return self.x0(output, x * self.input_scale)

    # The k-diffusion denoiser at any σ (a call started part-way: onestep/img2img.py), as ComfyUI's model_sampling for
    # the file computes it; at σ = self.sigma these equal the properties above and `denoised`.
    def noise_scaling_at(self, sigma: float, noise: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        """The sample x at σ from a start latent (zeros for txt2img) and noise z: latent + m(σ)·z; flow (1 − σ)·latent + σ·z."""
        if self.prediction == "flow":
            return latent * (1.0 - sigma) + noise * sigma
        m = sigma if self.input_convention == "sigma_z" else math.sqrt(sigma**2 + 1.0)
        return latent + noise * m

    def input_scale_at(self, sigma: float) -> float:
        """c_in at σ."""
        return 1.0 if self.prediction == "flow" else 1.0 / math.sqrt(sigma**2 + 1.0)

    def denoised_at(self, output: torch.Tensor, x: torch.Tensor, sigma: float) -> torch.Tensor:
        """x0 from the network output at σ and the sample x it was called at."""
        if self.prediction == "flow":
            return x + output * sigma
        if self.prediction == "x0":
            return output
        if self.prediction == "eps":
            return x - output * sigma
        return x / (sigma**2 + 1.0) - output * (sigma / math.sqrt(sigma**2 + 1.0))

    def x0(self, output: torch.Tensor, x_in: torch.Tensor) -> torch.Tensor:
        """x0 from the network output and the UNet input it was computed from."""
        if self.prediction == "flow":
            return x_in + self.sigma * output
        if self.prediction == "x0":
            return output
        a = self.schedule.alpha_bar(self.timestep)
        if self.prediction == "eps":
            return (x_in - math.sqrt(1.0 - a) * output) / math.sqrt(a)
        return math.sqrt(a) * x_in - math.sqrt(1.0 - a) * output


class OneStepGenerator(torch.nn.Module):
    """G(z, c) = x0 in one call of a raw UNet, the form the losses, sampler and exported file share."""

    def __init__(self, unet: torch.nn.Module | UNetFn, spec: OneStepSpec):
        super().__init__()
        self.unet = unet
        self.spec = spec

    def forward(self, z: torch.Tensor, context: torch.Tensor | None = None, **unet_kwargs) -> torch.Tensor:
        x_in = self.spec.unet_input(z)
        t = torch.full((z.shape[0],), float(self.spec.timestep), device=z.device, dtype=z.dtype)
        return self.spec.x0(self.unet(x_in, t, context, **unet_kwargs), x_in)
