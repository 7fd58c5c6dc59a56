"""k-diffusion's Euler sampler (Karras et al. 2022, Alg. 1 without churn; crowsonkb/k-diffusion `sample_euler`), for
any denoiser D(x, σ) = x0 in the σ space where x = x0 + σ·noise: the ε teacher's (DDIM, proof_scale/sampler.py) and a
flow model's (x ← x + (σ − σ')·v, onestep/flow.py) are this one loop with different denoisers."""
from __future__ import annotations

import torch


@torch.no_grad()
def sample_euler(model, x, sigmas, extra_args=None, callback=None, disable=None):
    """Euler's method on the probability-flow ODE dx/dσ = (x − D(x, σ))/σ, from sigmas[0] to sigmas[-1] (k-diffusion's
    signature; `disable`, its progress-bar switch, is accepted and unused)."""
    extra_args = {} if extra_args is None else extra_args
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        if callback is not None:
            callback({"x": x, "i": i, "sigma": sigmas[i], "sigma_hat": sigmas[i], "denoised": denoised})
        d = (x - denoised) / sigmas[i]
        x = x + d * (sigmas[i + 1] - sigmas[i])
    return x
