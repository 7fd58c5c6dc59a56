"""A generator file as Forge's UNet: a UnetPatcher whose predictor is the file's one-step parameterization.

Forge runs SD through a ComfyUI-style backend: `sd_model.forge_objects.unet` is a UnetPatcher around a KModel,
whose `predictor` holds the k-diffusion scalings (noise_scaling, calculate_input, timestep, calculate_denoised).
`OneStepPrediction` answers each of them from `onestep.parameterization.OneStepSpec`, so Forge's sampler and
CFG denoiser make exactly the core's G(z, c) = x0(UNet(c_in·m·z, t), ·) in one call.
"""
from __future__ import annotations

import copy
import os

import torch
from backend.modules.k_prediction import Prediction
from backend.patcher.unet import UnetPatcher
from modules.sd_samplers_kdiffusion import KDiffusionSampler

from onestep.format import GeneratorFileError, GeneratorMetadata, load_generator
from onestep.parameterization import OneStepSpec
from onestep.sampling import sample_onestep


class OneStepPrediction(Prediction):
    """Forge predictor for a one-step generator: the call is made at σ_t of the file, with its convention."""

    def __init__(self, spec: OneStepSpec):
        super().__init__(prediction_type="epsilon")  # Forge's own scalings are all overridden below
        ac = spec.schedule.alphas_cumprod()
        self.set_sigmas(((1.0 - ac) / ac) ** 0.5)
        self.spec = spec

    def noise_scaling(self, sigma, noise, latent_image, max_denoise=False):
        if abs(float(torch.as_tensor(sigma).flatten()[0]) - self.spec.sigma) > 1e-4 * self.spec.sigma:
            raise ValueError(f"a one-step generator starts at σ={self.spec.sigma:.4f} only, not {float(torch.as_tensor(sigma).flatten()[0]):.4f}")
        return latent_image + noise * self.spec.noise_multiplier

    def calculate_input(self, sigma, noise):
        return noise * self.spec.input_scale

    def timestep(self, sigma):
        return torch.full_like(torch.as_tensor(sigma, dtype=torch.float32), float(self.spec.timestep))

    def calculate_denoised(self, sigma, model_output, model_input):
        return self.spec.denoised(model_output, model_input)


def check_base(meta: GeneratorMetadata, base_unet, name: str) -> None:
    """Refuse a generator whose UNet does not fit the loaded checkpoint's (text width, latent channels)."""
    config = base_unet.diffusion_model.config
    width, channels = config.get("context_dim"), config.get("in_channels")
    if channels != meta.latent_channels:
        raise GeneratorFileError(f"{name} makes {meta.latent_channels}-channel latents; the loaded checkpoint's UNet takes {channels}")
    if meta.base in ("sd15", "sd21", "sdxl") and {"sd15": 768, "sd21": 1024, "sdxl": 2048}[meta.base] != width:
        raise GeneratorFileError(f"{name} is a {meta.base} generator; load a checkpoint of that family (this one's text width is {width})")


def generator_unet(base: UnetPatcher, path: str) -> UnetPatcher:
    """A UnetPatcher running the generator file at `path` on the loaded checkpoint's UNet architecture."""
    name = os.path.basename(path)
    sd, meta = load_generator(path)
    if meta.method == "teacher":
        raise GeneratorFileError(f"{name} holds a multi-step teacher; pick a one-step generator")
    check_base(meta, base.model, name)
    net = copy.deepcopy(base.model.diffusion_model)  # same architecture, dtypes and devices as the checkpoint's
    missing, unexpected = net.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise GeneratorFileError(f"{name}: the weights do not fit the checkpoint's UNet (missing {missing[:3]}, unexpected {unexpected[:3]})")
    return UnetPatcher.from_model(net, diffusers_scheduler=None, config=base.model.config, k_predictor=OneStepPrediction(meta.spec()))


class OneStepSampler(KDiffusionSampler):
    """Forge's k-diffusion sampler running the pack's one-step sampler on the generator of `p.onestep_generator`.

    The swap happens here, at sampling time: Forge has loaded the checkpoint and rebuilt `forge_objects` for this
    batch (a shallow copy, so the checkpoint's own UNet is back for the next run by itself).
    """

    def __init__(self, sd_model):
        super().__init__(sample_onestep, sd_model)

    def sample(self, p, x, conditioning, unconditional_conditioning, steps=None, image_conditioning=None):
        path = getattr(p, "onestep_generator", None)
        if path is None:
            raise ValueError(f"the sampler {self.config.name!r} runs one-step generator files: pick it through the 'One-step generator' script")
        objects = self.model_wrap.inner_model.forge_objects
        objects.unet = _cached_unet(objects.unet, path)
        self.model_wrap_cfg.model_wrap = None  # rebuilt from the generator's predictor
        self.model_wrap = self.model_wrap_cfg.inner_model
        return super().sample(p, x, conditioning, unconditional_conditioning, steps, image_conditioning)


_cache: dict = {}


def _cached_unet(base: UnetPatcher, path: str) -> UnetPatcher:
    """The last generator built, kept while its file and the checkpoint's UNet stay the same."""
    key = (path, os.stat(path).st_mtime_ns, id(base.model))
    if _cache.get("key") != key:
        _cache.clear()
        _cache["unet"], _cache["key"] = generator_unet(base, path), key
    return _cache["unet"]
