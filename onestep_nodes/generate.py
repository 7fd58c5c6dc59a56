"""Node: One-Step Generate → LATENT, one UNet call per image through core's sampling machinery.

It runs core's CFGGuider at CFG 1 (positive only: the guidance is baked into the generator) with the
one-step KSAMPLER, so ControlNet/T2I conditioning, LoRA patches and model wrappers all apply, and the
result equals core SamplerCustom with sigmas [σ_t, 0] and the same seed.
"""
from __future__ import annotations

import math

import comfy.model_management
import comfy.sample
import comfy.samplers
import comfy.utils
import latent_preview
import torch
from comfy_api.latest import io

from onestep.img2img import start_sigma
from onestep.ranges import check_declared
from onestep.sampling import sample_onestep
from .fast_path import FAST_MODES, OFF, fast_denoise, ineligible_reason
from .generator_model import check_conditioning, generator_sigma
from .constants import CATEGORY, check_choices
from .inputs import seed_input
from .memory_budget import check_model_call


def onestep_sigmas(model, denoise: float = 1.0) -> torch.Tensor:
    """[σ, 0] for the MODEL's single call; denoise < 1 starts lower (img2img), at timestep × denoise: the core's rule
    (onestep.img2img, shared with the A1111/Forge adapter) for a generator file, core's model_sampling for a plain MODEL."""
    ms = model.get_model_object("model_sampling")
    spec = getattr(ms, "onestep_spec", None)
    if spec is not None:
        return torch.tensor([start_sigma(spec, denoise), 0.0])
    sigma = generator_sigma(ms)
    if denoise < 1.0:
        sigma = float(ms.sigma(ms.timestep(torch.tensor(sigma)) * denoise))
    return torch.tensor([sigma, 0.0])


def onestep_generate(
    model, positive, seed: int, latent_image: torch.Tensor, noise_mask=None, denoise: float = 1.0, fast: str = "cuda graph"
) -> torch.Tensor:
    """Latents from one model call per image, as SamplerCustom(sigmas=[σ, 0]) would make them."""
    check_conditioning(model, positive)
    latent_image = comfy.sample.fix_empty_latent_channels(model, latent_image)
    channels = model.get_model_object("latent_format").latent_channels
    if latent_image.shape[1] != channels:
        raise ValueError(f"the input latent has {latent_image.shape[1]} channels but this model makes {channels}-channel latents")
    noise = comfy.sample.prepare_noise(latent_image, seed)
    sigmas = onestep_sigmas(model, denoise)
    if fast != OFF:
        out = _fast(model, positive, sigmas, noise, latent_image, noise_mask, fast)
        if out is not None:
            return out
    guider = comfy.samplers.CFGGuider(model)
    guider.inner_set_conds({"positive": positive})
    guider.set_cfg(1.0)
    callback = latent_preview.prepare_callback(model, 1)
    samples = guider.sample(
        noise, latent_image, comfy.samplers.KSAMPLER(sample_onestep), sigmas,
        denoise_mask=noise_mask, callback=callback, disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED, seed=seed,
    )
    return samples.to(comfy.model_management.intermediate_device())


def _fast(model, positive, sigmas, noise, latent_image, noise_mask, mode):
    """The CUDA-graph path (fast_path.py) with core's input and output steps around it, or None."""
    if ineligible_reason(model, positive, noise_mask) is not None:
        return None
    return one_call_latents(model, sigmas, noise, latent_image, lambda x, sigma: fast_denoise(model, positive, sigma, x, noise_mask, mode))


def one_call_latents(model, sigmas, noise, latent_image, denoise) -> torch.Tensor | None:
    """Core's steps around the single call denoise(x, σ) → x0 (None: not possible): latent in, noise scaling, latent out."""
    base = model.model
    latent_in = base.process_latent_in(latent_image) if torch.count_nonzero(latent_image) > 0 else latent_image
    # the noise scaling on the model's device, as core's sampling does it (one copy each, and no CPU thread pool woken
    # while the GPU waits)
    noise, latent_in = noise.to(model.load_device), latent_in.to(model.load_device)
    ms = model.get_model_object("model_sampling")
    # core's KSAMPLER flags a start at σ_max (sqrt(1+σ²)·z for plain models); generator files decide for themselves
    max_denoise = math.isclose(float(ms.sigma_max), float(sigmas[0]), rel_tol=1e-05) or float(sigmas[0]) > float(ms.sigma_max)
    x = ms.noise_scaling(sigmas[0], noise, latent_in, max_denoise)
    denoised = denoise(x, float(sigmas[0]))
    if denoised is None:
        return None
    comfy.utils.ProgressBar(1).update_absolute(1, 1)  # also raises if the user cancelled
    out = base.process_latent_out(ms.inverse_noise_scaling(sigmas[-1], denoised).float())
    return out.to(comfy.model_management.intermediate_device())


class OneStepGenerate(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="OneStepGenerate", display_name="One-Step Generate", category=CATEGORY,
            description="Makes latents with a one-step generator: one UNet call per image, no CFG (the guidance is baked in).",
            inputs=[
                io.Model.Input("model", tooltip="A one-step generator (Load One-Step Generator), with LoRAs if you like."),
                io.Conditioning.Input("positive", tooltip="Text (and ControlNet) conditioning."),
                seed_input("Seed of the noise z.", control_after_generate=True),
                io.Int.Input("width", default=512, min=16, max=16384, step=8, tooltip="Image width in pixels."),
                io.Int.Input("height", default=512, min=16, max=16384, step=8, tooltip="Image height in pixels."),
                io.Int.Input("batch_size", default=1, min=1, max=4096, tooltip="Images per run."),
                io.Latent.Input("latent_image", optional=True, tooltip="Optional start latent (img2img); replaces width/height/batch."),
                io.Float.Input("denoise", default=1.0, min=0.01, max=1.0, step=0.01, optional=True,
                               tooltip="With a start latent: how much to re-noise it (1 = ignore it)."),
                io.Combo.Input("fast", options=[*FAST_MODES, OFF], default="cuda graph", optional=True, tooltip=(
                    "GPU fast path: replay the UNet call from a CUDA graph (optionally compiled first) when nothing per-call "
                    "(ControlNet, wrappers) needs core's path; falls back automatically.")),
            ],
            outputs=[io.Latent.Output(tooltip="The generated latents; decode them with VAE Decode.")],
        )

    @classmethod
    def validate_inputs(cls, fast=None) -> bool | str:
        return check_choices(cls, fast=fast)

    @classmethod
    def execute(cls, model, positive, seed: int, width: int, height: int, batch_size: int, latent_image=None, denoise: float = 1.0,
                fast: str = "cuda graph") -> io.NodeOutput:
        check_declared(cls.INPUT_TYPES(), locals())  # ranges again: a linked value skips ComfyUI's, NaN passes it
        if latent_image is None:
            fmt = model.get_model_object("latent_format")
            factor = getattr(fmt, "spacial_downscale_ratio", 8)
            shape = [batch_size, fmt.latent_channels, height // factor, width // factor]
            check_model_call(model, shape, f"width {width} × height {height} at batch_size {batch_size}", "the one-step call",
                             "lower width, height or batch_size")
            samples = torch.zeros(shape, device=comfy.model_management.intermediate_device())
            mask = None
        else:
            samples, mask = latent_image["samples"], latent_image.get("noise_mask")
            check_model_call(model, list(samples.shape), f"the latent_image of shape {list(samples.shape)}", "the one-step call",
                             "use a smaller latent_image")
        out = onestep_generate(model, positive, seed, samples, mask, denoise if latent_image is not None else 1.0, fast)
        return io.NodeOutput({"samples": out})


NODES = [OneStepGenerate]
