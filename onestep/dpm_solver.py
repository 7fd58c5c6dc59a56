"""DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++", Alg. 2; ComfyUI's `dpmpp_2m`), the deterministic multistep
sampler that reaches a many-step Euler sample's quality in fewer steps at one denoiser call a step, in the σ space
where x = x0 + σ·noise (k-diffusion's signature, as onestep/euler.py).

With λ = −log σ, h_i = λ_{i+1} − λ_i and r_i = h_{i−1}/h_i, a step is
    x_{i+1} = D_i + (σ_{i+1}/σ_i)·(x_i − D_i),   D_i = (1 + 1/(2r_i))·x0_i − (1/(2r_i))·x0_{i−1},
which is Euler's (DDIM's) step with the denoised x0_i replaced by D_i, a linear extrapolation in λ; the first step,
and a last step to σ = 0, are first order (D_i = x0_i)."""
from __future__ import annotations

import math

import torch


def dpmpp_2m_weights(sigmas: torch.Tensor) -> list[tuple[float, float]]:
    """Per step i of `sigmas` ([σ_0, ..., σ_n], decreasing, σ_n may be 0): (a_i, b_i) with D_i = a_i·x0_i + b_i·x0_{i−1}."""
    s = sigmas.double().tolist()
    weights = []
    for i in range(len(s) - 1):
        if i == 0 or s[i + 1] == 0:
            weights.append((1.0, 0.0))
            continue
        r = math.log(s[i - 1] / s[i]) / math.log(s[i] / s[i + 1])
        weights.append((1 + 1 / (2 * r), -1 / (2 * r)))
    return weights


@torch.no_grad()
def sample_dpmpp_2m(model, x, sigmas, extra_args=None, callback=None, disable=None):
    """DPM-Solver++(2M) from sigmas[0] to sigmas[-1] for a denoiser D(x, σ) = x0 (k-diffusion's signature; `disable`,
    its progress-bar switch, is accepted and unused)."""
    extra_args = {} if extra_args is None else extra_args
    s_in = x.new_ones([x.shape[0]])
    previous = None
    for i, (a, b) in enumerate(dpmpp_2m_weights(sigmas)):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        if callback is not None:
            callback({"x": x, "i": i, "sigma": sigmas[i], "sigma_hat": sigmas[i], "denoised": denoised})
        d = denoised if b == 0.0 else a * denoised + b * previous
        x = d + (sigmas[i + 1] / sigmas[i]) * (x - d)
        previous = denoised
    return x
