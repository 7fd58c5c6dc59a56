"""A generator file as a ComfyUI MODEL: a ModelPatcher whose model_sampling follows the file's metadata.

The parameterization is mapped onto core's model_sampling classes (EPS, V_PREDICTION, X0, flow), so every
core sampler, LoRA loader and ControlNet works on the MODEL; the file's input convention replaces core's
`max_denoise` guess in `noise_scaling` (core starts σ_max runs from sqrt(σ²+1)·z, other σ from σ·z).
"""
from __future__ import annotations

import os

import comfy.model_detection
import comfy.model_management as mm
import comfy.model_patcher
import comfy.supported_models
import comfy.utils
import torch
from comfy.model_sampling import CONST, EPS, V_PREDICTION, X0, ModelSamplingDiscrete, ModelSamplingDiscreteFlow, reshape_sigma

from ..onestep.format import GeneratorFileError, GeneratorMetadata, load_generator
from ..onestep.parameterization import OneStepSpec


class _GeneratorNoise:
    """noise_scaling by the generator's input convention (see onestep.parameterization)."""

    onestep_spec: OneStepSpec

    def noise_scaling(self, sigma, noise, latent_image, max_denoise=False):
        sigma = reshape_sigma(sigma, noise.ndim)
        if self.onestep_spec.input_convention == "raw_z":
            return latent_image + noise * torch.sqrt(1.0 + sigma**2)
        return latent_image + noise * sigma


class _FlowVelocity(CONST):
    """Rectified-flow velocity v = data − noise (InstaFlow): x0 = x + σ·v (core's CONST uses noise − data)."""

    def calculate_denoised(self, sigma, model_output, model_input):
        sigma = reshape_sigma(sigma, model_output.ndim)
        return model_input + model_output * sigma


class OneStepEps(_GeneratorNoise, ModelSamplingDiscrete, EPS):
    pass


class OneStepV(_GeneratorNoise, ModelSamplingDiscrete, V_PREDICTION):
    pass


class OneStepX0(_GeneratorNoise, ModelSamplingDiscrete, X0):
    pass


class OneStepFlow(ModelSamplingDiscreteFlow, _FlowVelocity):
    pass


SAMPLING_CLASSES = {"eps": OneStepEps, "v": OneStepV, "x0": OneStepX0, "flow": OneStepFlow}
MODEL_CONFIGS = {  # base → core's model config class (custom widths reuse the SD1.5 family's)
    "sd15": comfy.supported_models.SD15,
    "sd21": comfy.supported_models.SD20,
    "sdxl": comfy.supported_models.SDXL,
    "custom": comfy.supported_models.SD15,
}


def model_sampling_for(meta: GeneratorMetadata, model_config) -> torch.nn.Module:
    """Core model_sampling object for the file's parameterization, carrying its OneStepSpec."""
    ms = SAMPLING_CLASSES[meta.prediction](model_config)
    ms.onestep_spec = meta.spec()
    return ms


def generator_sigma(model_sampling) -> float:
    """The σ of the single call: the file's timestep, or σ_max (t=999) for a plain model, as SD-Turbo runs."""
    spec = getattr(model_sampling, "onestep_spec", None)
    if spec is None:
        return float(model_sampling.sigma_max)
    return float(model_sampling.sigma(torch.tensor(float(spec.timestep))))


DEFAULT_HEADS = {"num_heads": 8, "num_head_channels": -1}  # SD1.x's layout; used for non-standard widths


def load_generator_model(path: str) -> comfy.model_patcher.ModelPatcher:
    """Build the MODEL for a generator file (raises GeneratorFileError with a readable message)."""
    sd, meta = load_generator(path)
    try:
        return _build(sd, meta)
    except (RuntimeError, ValueError, KeyError) as e:
        raise GeneratorFileError(f"{os.path.basename(path)}: the weights do not build a {meta.base} UNet: {str(e).splitlines()[0]}") from None


def _build(sd, meta: GeneratorMetadata) -> comfy.model_patcher.ModelPatcher:
    unet_config = comfy.model_detection.detect_unet_config(sd, "")
    config_class = MODEL_CONFIGS[meta.base]
    model_config = config_class(unet_config)
    if meta.unet_config or not config_class.matches(unet_config, sd):
        # Standard bases fix their attention heads by class; other widths take them from the file or SD1.x's layout.
        model_config.unet_config.update(meta.unet_config or DEFAULT_HEADS)
    load_device = mm.get_torch_device()
    offload_device = mm.unet_offload_device()
    supported = list(model_config.supported_inference_dtypes)
    unet_dtype = mm.unet_dtype(
        model_params=comfy.utils.calculate_parameters(sd), supported_dtypes=supported, weight_dtype=comfy.utils.weight_dtype(sd)
    )
    model_config.set_inference_dtype(unet_dtype, mm.unet_manual_cast(unet_dtype, load_device, supported))
    model = model_config.get_model(sd, "").to(offload_device)
    model.load_model_weights(sd, "")
    patcher = comfy.model_patcher.ModelPatcher(model, load_device=load_device, offload_device=offload_device)
    patcher.add_object_patch("model_sampling", model_sampling_for(meta, model_config))
    return patcher


def context_dim(model) -> int | None:
    """Text-conditioning width the MODEL's UNet takes."""
    return model.model.model_config.unet_config.get("context_dim")


def check_conditioning(model, positive) -> None:
    """Refuse conditioning from a different text encoder than the model's (clear message, no torch error)."""
    want = context_dim(model)
    needs_pooled = model.model.model_config.unet_config.get("adm_in_channels") is not None
    if not positive:
        raise ValueError("the positive conditioning is empty: connect a CLIP Text Encode node")
    for cond, extra in positive:
        width = int(cond.shape[-1])
        if want is not None and width != want:
            raise ValueError(
                f"conditioning width {width} does not match this model's text width {want} "
                f"({_encoder_hint(width)} conditioning into a model that needs {_encoder_hint(want)}); "
                "use the CLIP that belongs to the model's base"
            )
        if needs_pooled and extra.get("pooled_output") is None:
            raise ValueError("this model (SDXL family) needs pooled text conditioning: encode with an SDXL CLIP")


def _encoder_hint(width: int) -> str:
    return {768: "SD1.5 / CLIP-L", 1024: "SD2.x / OpenCLIP-H", 2048: "SDXL"}.get(width, f"width-{width}")
