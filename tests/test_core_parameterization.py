"""One-step parameterizations against the reference formulas of docs/methods.md (no ComfyUI)."""
import math

import pytest
import torch

from onestep.parameterization import OneStepGenerator, OneStepSpec
from onestep.sampling import OneStepSigmasError, sample_onestep
from onestep.schedule import SD_SCHEDULE


def alpha_bar(t: int) -> float:
    # SD's scaled-linear schedule written out independently of onestep.schedule
    betas = [(math.sqrt(0.00085) + (math.sqrt(0.012) - math.sqrt(0.00085)) * i / 999) ** 2 for i in range(1000)]
    a = 1.0
    for b in betas[: t + 1]:
        a *= 1.0 - b
    return a


class FakeUNet(torch.nn.Module):
    """A deterministic nonlinear 'UNet' that records what it was called with."""

    def forward(self, x, t, context):
        self.seen = (x.clone(), t.clone())
        return torch.tanh(x * 0.3 + t.view(-1, 1, 1, 1) / 1000.0 + context.mean())


@pytest.fixture
def z():
    return torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


CTX = torch.full((2, 77, 768), 0.1, dtype=torch.float64)


def test_schedule_matches_reference():
    for t in (0, 399, 625, 999):
        assert SD_SCHEDULE.alpha_bar(t) == pytest.approx(alpha_bar(t), rel=1e-9)
    assert SD_SCHEDULE.sigma(999) == pytest.approx(14.6146, abs=1e-3)  # ComfyUI's SD1.5 sigma_max
    assert SD_SCHEDULE.sigma(625) == pytest.approx(2.5, abs=0.1)  # SiD-LSG's σ≈2.5


@pytest.mark.parametrize("t", [999, 625, 399])
def test_eps_sigma_z(z, t):
    unet = FakeUNet()
    x0 = OneStepGenerator(unet, OneStepSpec("eps", t, "sigma_z"))(z, CTX)
    a = alpha_bar(t)
    x_in = math.sqrt(1 - a) * z  # SiD-LSG: DDPM add_noise of a zero image
    assert torch.allclose(unet.seen[0], x_in)
    assert torch.all(unet.seen[1] == t)
    ref = (x_in - math.sqrt(1 - a) * unet(x_in, torch.full((2,), float(t), dtype=z.dtype), CTX)) / math.sqrt(a)
    assert torch.allclose(x0, ref, atol=1e-10)


@pytest.mark.parametrize("t", [999, 399])
def test_eps_raw_z_dmd2(z, t):
    unet = FakeUNet()
    x0 = OneStepGenerator(unet, OneStepSpec("eps", t, "raw_z"))(z, CTX)
    a = alpha_bar(t)
    assert torch.allclose(unet.seen[0], z)  # DMD2: noisy_image = noise
    eps = unet(z, torch.full((2,), float(t), dtype=z.dtype), CTX)
    assert torch.allclose(x0, (z - math.sqrt(1 - a) * eps) / math.sqrt(a), atol=1e-10)


def test_conventions_differ_by_the_documented_amount():
    # docs/methods.md: raw z vs sqrt(1-ᾱ)z differ by 0.2% at t=999 and ~20% at t=399
    # (relative to the raw z the UNet sees in DMD2)
    for t, expected in ((999, 0.002), (399, 0.2)):
        ratio = OneStepSpec("eps", t, "sigma_z").noise_multiplier / OneStepSpec("eps", t, "raw_z").noise_multiplier
        assert 1 - ratio == pytest.approx(expected, rel=0.25)


def test_v_and_x0(z):
    unet = FakeUNet()
    a = alpha_bar(999)
    x_in = math.sqrt(1 - a) * z
    out = unet(x_in, torch.full((2,), 999.0, dtype=z.dtype), CTX)
    v = OneStepGenerator(unet, OneStepSpec("v", 999))(z, CTX)
    assert torch.allclose(v, math.sqrt(a) * x_in - math.sqrt(1 - a) * out, atol=1e-10)
    assert torch.allclose(OneStepGenerator(unet, OneStepSpec("x0", 999))(z, CTX), out)


def test_flow_instaflow(z):
    unet = FakeUNet()
    x0 = OneStepGenerator(unet, OneStepSpec("flow", 1000))(z, CTX)
    assert torch.allclose(unet.seen[0], z) and torch.all(unet.seen[1] == 1000)  # z at model time 1000
    assert torch.allclose(x0, z + unet(z, torch.full((2,), 1000.0, dtype=z.dtype), CTX))  # x0 = z + v


def test_k_diffusion_view_matches_the_generator(z):
    # ComfyUI's EPS denoiser at σ on x = m·z: UNet input x/sqrt(σ²+1), x0 = x − σ·ε̂
    unet = FakeUNet()
    for conv in ("sigma_z", "raw_z"):
        spec = OneStepSpec("eps", 399, conv)
        s = spec.sigma
        x = spec.noise_multiplier * z
        x_in = x / math.sqrt(s * s + 1)
        denoised = x - s * unet(x_in, torch.full((2,), 399.0, dtype=z.dtype), CTX)
        assert torch.allclose(denoised, OneStepGenerator(unet, spec)(z, CTX), atol=1e-9)


def test_bad_specs_name_the_problem():
    with pytest.raises(ValueError, match="prediction"):
        OneStepSpec("epsilon", 999)
    with pytest.raises(ValueError, match="timestep 1000"):
        OneStepSpec("eps", 1000)
    with pytest.raises(ValueError, match="input convention"):
        OneStepSpec("eps", 999, "scaled")


def test_sampler_is_one_euler_step():
    calls = []

    def denoiser(x, sigma, **kw):
        calls.append(sigma)
        return torch.tanh(x) * 0.5

    x = torch.randn(3, 4, 8, 8) * 14.6
    sigmas = torch.tensor([14.6, 0.0])
    out = sample_onestep(denoiser, x, sigmas)
    euler = x + (x - denoiser(x, sigmas[0])) / sigmas[0] * (0 - sigmas[0])
    assert len(calls) == 2 and torch.allclose(out, euler, atol=1e-5)
    with pytest.raises(OneStepSigmasError, match="two sigmas"):
        sample_onestep(denoiser, x, torch.tensor([14.6, 3.0, 0.0]))


@pytest.mark.parametrize("prediction,t,convention", [("eps", 999, "raw_z"), ("eps", 625, "sigma_z"), ("v", 625, "sigma_z"),
                                                     ("x0", 500, "raw_z"), ("flow", 1000, "sigma_z")])
def test_denoiser_scalings_compose_to_the_generator(z, prediction, t, convention):
    """What a host's k-diffusion predictor does (A1111/Forge adapter): x = m·z, UNet(c_in·x, t), denoised(out, x)."""
    spec = OneStepSpec(prediction, t, convention)
    unet = lambda x_in, ts, ctx: torch.tanh(x_in) * 0.7 + 0.1  # noqa: E731
    x = z * spec.noise_multiplier
    out = unet(x * spec.input_scale, None, None)
    torch.testing.assert_close(x * spec.input_scale, spec.unet_input(z), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(spec.denoised(out, x), OneStepGenerator(unet, spec)(z), rtol=1e-6, atol=1e-6)


def test_mismatch_names_the_first_differing_field():
    sid = OneStepSpec("eps", 625, "sigma_z")
    assert sid.mismatch(OneStepSpec("eps", 625, "sigma_z")) is None
    assert sid.mismatch(OneStepSpec("v", 625, "sigma_z")) == "prediction"
    assert sid.mismatch(OneStepSpec("eps", 399, "raw_z")) == "input_convention"
    assert sid.mismatch(OneStepSpec("eps", 999, "sigma_z")) == "timestep"
    flow = OneStepSpec("flow", 1000, "sigma_z")
    assert flow.mismatch(OneStepSpec("flow", 1000, "raw_z")) is None  # a flow has no input convention
    assert flow.mismatch(OneStepSpec("flow", 500, "sigma_z")) == "timestep"
