"""The one-step sampler in k-diffusion's signature (Karras et al. 2022; crowsonkb/k-diffusion), which
ComfyUI's KSAMPLER takes unchanged: one denoiser call at sigmas[0], whose x0 is the sample.

For a denoiser D this equals one Euler step to σ=0: x + (x − D(x,σ))/σ·(0 − σ) = D(x, σ).
"""
from __future__ import annotations

import torch


class OneStepSigmasError(ValueError):
    """The sigmas given to the one-step sampler describe more than one step."""


@torch.no_grad()
def sample_onestep(model, x, sigmas, extra_args=None, callback=None, disable=None):
    """One-step generation: x0 = model(x, sigmas[0]); sigmas must be [σ, 0]."""
    if len(sigmas) != 2 or float(sigmas[-1]) != 0.0:
        raise OneStepSigmasError(
            f"the one-step sampler makes exactly one model call from σ to 0 and needs two sigmas [σ, 0], got "
            f"{[round(float(s), 4) for s in sigmas]}; use the 'One-Step Sigmas' node (or SDTurboScheduler, steps=1)"
        )
    extra_args = {} if extra_args is None else extra_args
    sigma = sigmas[0] * x.new_ones([x.shape[0]])
    denoised = model(x, sigma, **extra_args)
    if callback is not None:
        callback({"x": x, "i": 0, "sigma": sigmas[0], "sigma_hat": sigmas[0], "denoised": denoised})
    return denoised
