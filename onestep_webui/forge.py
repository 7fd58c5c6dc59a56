"""A generator file as Forge's UNet: a UnetPatcher whose predictor is the file's one-step parameterization.

Forge runs SD through a ComfyUI-style backend: `sd_model.forge_objects.unet` is a UnetPatcher around a KModel,
whose `predictor` holds the k-diffusion scalings (noise_scaling, calculate_input, timestep, calculate_denoised).
`OneStepPrediction` answers each of them from `onestep.parameterization.OneStepSpec`, so Forge's sampler and
CFG denoiser make exactly the core's G(z, c) = x0(UNet(c_in·m·z, t), ·) in one call; for img2img the same at the
core's lower start σ (onestep.img2img). A prompt's LoRAs reach the generator through Forge's own patcher (_with_loras).
"""
from __future__ import annotations

import copy
import os

import torch
from backend import memory_management
from backend.modules.k_prediction import Prediction
from backend.patcher.unet import UnetPatcher
from modules.sd_samplers_kdiffusion import KDiffusionSampler

from onestep.format import GeneratorFileError, GeneratorMetadata, load_generator
from onestep.img2img import timestep_at
from onestep.parameterization import OneStepSpec
from onestep.sampling import sample_onestep


class OneStepPrediction(Prediction):
    """Forge predictor for a one-step generator: its call at σ_t of the file (txt2img) or, for img2img, at a lower σ
    (onestep.img2img), with the file's convention; the formulas are the core's (OneStepSpec.*_at)."""

    def __init__(self, spec: OneStepSpec):
        super().__init__(prediction_type="epsilon")  # Forge's own scalings are all overridden below
        ac = spec.schedule.alphas_cumprod()
        self.set_sigmas(((1.0 - ac) / ac) ** 0.5)
        self.spec = spec

    def _sigma(self, sigma) -> float:
        """The call's σ: one for the whole batch, above 0 and at most the file's σ_t (a generator cannot start higher)."""
        s = torch.as_tensor(sigma).flatten()
        value = float(s[0])
        if not (torch.all(s == s[0]) and 0.0 < value <= self.spec.sigma * (1.0 + 1e-4)):
            raise ValueError(f"a one-step generator makes its call at one σ in (0, {self.spec.sigma:.4f}] (its σ_t, lower for "
                             f"img2img), not at {s.tolist()}")
        return value

    def noise_scaling(self, sigma, noise, latent_image, max_denoise=False):
        return self.spec.noise_scaling_at(self._sigma(sigma), noise, latent_image)

    def calculate_input(self, sigma, noise):
        return noise * self.spec.input_scale_at(self._sigma(sigma))

    def timestep(self, sigma):
        return torch.full_like(torch.as_tensor(sigma, dtype=torch.float32), timestep_at(self.spec, self._sigma(sigma)))

    def calculate_denoised(self, sigma, model_output, model_input):
        return self.spec.denoised_at(model_output, model_input, self._sigma(sigma))


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

    def _use_generator(self, p) -> None:
        path = getattr(p, "onestep_generator", None)
        if path is None:
            raise ValueError(f"the sampler {self.config.name!r} runs one-step generator files: pick it through the 'One-step generator' script")
        objects = self.model_wrap.inner_model.forge_objects
        objects.unet = _cached_unet(objects.unet, path)
        self.model_wrap_cfg.model_wrap = None  # rebuilt from the generator's predictor
        self.model_wrap = self.model_wrap_cfg.inner_model

    def sample(self, p, x, conditioning, unconditional_conditioning, steps=None, image_conditioning=None):
        self._use_generator(p)
        return super().sample(p, x, conditioning, unconditional_conditioning, steps, image_conditioning)

    def sample_img2img(self, p, x, noise, conditioning, unconditional_conditioning, steps=None, image_conditioning=None):
        """img2img and the hires-fix pass: Forge re-noises the start latent x to the first sigma (the script's
        [σ(timestep × denoise), 0]) through the predictor, then the one-step sampler makes the call there."""
        self._use_generator(p)
        return super().sample_img2img(p, x, noise, conditioning, unconditional_conditioning, steps, image_conditioning)


_cache: dict = {}


def _cached_unet(base: UnetPatcher, path: str) -> UnetPatcher:
    """The generator for `base`: built once per file and checkpoint UNet, then given the LoRAs Forge put on `base`."""
    key = (path, os.stat(path).st_mtime_ns, id(base.model))
    if _cache.get("key") != key:
        _release()
        _cache["unet"], _cache["key"] = generator_unet(base, path), key
    return _with_loras(base)


def _release() -> None:
    """Drop the cached generator, from Forge's list of loaded models too: Forge frees abandoned models only when it
    needs room on a GPU, so on the CPU each switch of file or checkpoint kept a whole UNet (3.4 GB at SD1.5, float32)."""
    if "unet" in _cache:
        memory_management.unload_model_clones(_cache["unet"])  # this patcher and its LoRA clones (same KModel)
    _cache.clear()


def _with_loras(base: UnetPatcher) -> UnetPatcher:
    """The cached generator carrying `base`'s LoRA patches (a prompt's <lora:name:weight>), applied by Forge's own loader.

    Forge's LoRA extension clones the checkpoint's UnetPatcher and adds the patches to the clone; its memory manager
    merges them into the weights (LoraLoader.refresh, keyed on the patch identities) when it loads a patcher it has not
    loaded yet. The patches address parameters by their names in the KModel, which the generator's KModel shares (same
    architecture), so they apply to its weights as they are; a new clone per LoRA set makes Forge load it (a reused
    patcher counts as loaded and would keep stale weights), and a clone with no patches makes the loader restore the
    generator's own weights.
    """
    loras = tuple(base.lora_patches)  # Forge's identity of a LoRA set: (file, strength, model strength, online)
    if _cache.get("loras") != loras:
        unet = _cache["unet"].clone()
        unet.lora_patches = base.lora_patches.copy()
        _cache["patched"], _cache["loras"] = unet, loras
    return _cache["patched"]
