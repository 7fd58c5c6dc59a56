"""onestep.img2img: where a one-step generator's call starts for a denoise < 1, and the denoiser at that σ."""
import math

import pytest
import torch

from onestep.img2img import sigma_at, start_sigma, timestep_at
from onestep.parameterization import OneStepSpec
from onestep.schedule import SD_SCHEDULE

SPECS = {
    "eps_999_sigma_z": OneStepSpec("eps", 999),
    "eps_399_raw_z": OneStepSpec("eps", 399, "raw_z"),
    "v_625": OneStepSpec("v", 625),
    "x0_999": OneStepSpec("x0", 999),
    "flow_1000": OneStepSpec("flow", 1000),
}
DENOISE = [1.0, 0.99, 0.8, 0.6, 0.5, 0.33, 0.2, 0.05, 0.01]


@pytest.mark.parametrize("name", sorted(SPECS))
def test_denoise_one_is_the_files_sigma(name):
    spec = SPECS[name]
    assert start_sigma(spec, 1.0) == pytest.approx(spec.sigma, rel=1e-6)  # float32 table vs float64 schedule
    assert timestep_at(spec, start_sigma(spec, 1.0)) == spec.timestep


@pytest.mark.parametrize("t, d", [(600, 0.5), (800, 0.25), (400, 0.75), (625, 0.8)])
def test_integer_times_land_on_the_schedule(t, d):
    """t·d on an integer: σ of that discrete timestep (sqrt((1 − ᾱ)/ᾱ)), and the UNet gets that timestep."""
    spec = OneStepSpec("eps", t)
    target = round(t * d)
    assert start_sigma(spec, d) == pytest.approx(SD_SCHEDULE.sigma(target), rel=1e-6)
    assert timestep_at(spec, start_sigma(spec, d)) == target


def test_fractional_times_interpolate_log_sigma():
    """625·0.5 = 312.5: σ is the geometric mean of σ_312 and σ_313 (log-linear), the UNet gets the nearer index."""
    spec = OneStepSpec("v", 625)
    sigma = start_sigma(spec, 0.5)
    assert sigma == pytest.approx(math.sqrt(SD_SCHEDULE.sigma(312) * SD_SCHEDULE.sigma(313)), rel=1e-6)
    assert timestep_at(spec, sigma) in (312, 313)
    assert sigma_at(spec, 312.5) == sigma


@pytest.mark.parametrize("name", sorted(SPECS))
def test_lower_denoise_starts_lower(name):
    sigmas = [start_sigma(SPECS[name], d) for d in DENOISE]
    assert all(a > b > 0 for a, b in zip(sigmas, sigmas[1:])), sigmas


def test_flow_time_is_linear():
    spec = OneStepSpec("flow", 1000)
    for d in DENOISE:
        assert start_sigma(spec, d) == pytest.approx(d, rel=1e-6)
        assert timestep_at(spec, start_sigma(spec, d)) == pytest.approx(1000 * d, rel=1e-6)


@pytest.mark.parametrize("bad", [0.0, -0.1, 1.5, float("nan"), float("inf")])
def test_denoise_outside_zero_one_is_refused(bad):
    with pytest.raises(ValueError, match="denoise must be in"):
        start_sigma(SPECS["v_625"], bad)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_denoiser_at_the_files_sigma_is_the_generators(name):
    """At σ_t the any-σ scalings are the spec's own: the same x, UNet input and x0."""
    spec = SPECS[name]
    g = torch.Generator().manual_seed(3)
    z, out = torch.randn(2, 4, 8, 8, generator=g, dtype=torch.float64), torch.randn(2, 4, 8, 8, generator=g, dtype=torch.float64)
    x = spec.noise_scaling_at(spec.sigma, z, torch.zeros_like(z))
    torch.testing.assert_close(x, z * spec.noise_multiplier, rtol=1e-12, atol=1e-12)
    assert spec.input_scale_at(spec.sigma) == pytest.approx(spec.input_scale, rel=1e-12)
    torch.testing.assert_close(spec.denoised_at(out, x, spec.sigma), spec.denoised(out, x), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_a_perfect_prediction_recovers_the_start_latent(name):
    """At a lower σ the sample is the start latent re-noised; the network output that names the true noise (ε, v, x0
    or flow velocity) gives the start latent back exactly, so the σ-dependent formulas are the right ones."""
    spec = SPECS[name]
    g = torch.Generator().manual_seed(4)
    latent, z = torch.randn(1, 4, 8, 8, generator=g, dtype=torch.float64), torch.randn(1, 4, 8, 8, generator=g, dtype=torch.float64)
    sigma = start_sigma(spec, 0.4)
    x = spec.noise_scaling_at(sigma, z, latent)
    eps = (x - latent) / sigma  # the noise the sample holds in k-diffusion's x = x0 + σ·ε (raw_z: a scaled z)
    a = 1.0 / (sigma**2 + 1.0)  # ᾱ at σ; v = sqrt(ᾱ)·ε − sqrt(1 − ᾱ)·x0
    truth = {"eps": eps, "v": math.sqrt(a) * eps - math.sqrt(1 - a) * latent, "x0": latent, "flow": latent - z}[spec.prediction]
    torch.testing.assert_close(spec.denoised_at(truth, x, sigma), latent, rtol=1e-10, atol=1e-10)
