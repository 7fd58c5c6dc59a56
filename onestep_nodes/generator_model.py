"""A generator file as a ComfyUI MODEL: a ModelPatcher whose model_sampling follows the file's metadata.

The parameterization is mapped onto core's model_sampling classes (EPS, V_PREDICTION, X0, flow), so every
core sampler, LoRA loader and ControlNet works on the MODEL; the file's input convention replaces core's
`max_denoise` guess in `noise_scaling` (core starts σ_max runs from sqrt(σ²+1)·z, other σ from σ·z).
A file with method "teacher" holds a multi-step teacher in the same format: it gets core's plain discrete
model sampling (as core's own loaders build it), with no one-step override. The file's `latent_format` picks
the MODEL's latent space where it is one of the pack's own (LATENT_FORMATS, e.g. the proof-scale "fmnist32").
"""
from __future__ import annotations

import os

import comfy.latent_formats
import comfy.model_detection
import comfy.model_management as mm
import comfy.model_patcher
import comfy.ops
import comfy.supported_models
import comfy.utils
import torch
from comfy.model_sampling import CONST, EPS, V_PREDICTION, X0, ModelSamplingDiscrete, ModelSamplingDiscreteFlow, reshape_sigma

from onestep.format import GeneratorFileError, GeneratorMetadata, load_generator
from onestep.latent_spaces import LATENT_SPACES
from onestep.parameterization import OneStepSpec


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


class TeacherEps(ModelSamplingDiscrete, EPS):
    """Core's plain discrete ε sampling (what core's model_base builds for an EPS model)."""


class TeacherV(ModelSamplingDiscrete, V_PREDICTION):
    """Core's plain discrete v sampling."""


class TeacherX0(ModelSamplingDiscrete, X0):
    """Core's plain discrete x0 sampling."""


TEACHER_METHOD = "teacher"
TEACHER_SAMPLING_CLASSES = {"eps": TeacherEps, "v": TeacherV, "x0": TeacherX0}


class FashionMNIST32(comfy.latent_formats.LatentFormat):
    """The proof-scale latent space: one channel, 32×32, the image itself in [−1, 1] (identity "VAE", ×8 pixels)."""

    scale_factor = LATENT_SPACES["fmnist32"].scale
    latent_channels = LATENT_SPACES["fmnist32"].channels
    latent_dimensions = 2
    spacial_downscale_ratio = 8  # 8 pixels per latent cell, ComfyUI's convention (EmptyLatentImage 256² → 32²)

    def __init__(self):
        self.latent_rgb_factors = [[1.0, 1.0, 1.0]]  # grey previews: core maps −1..1 to 0..1
        self.latent_rgb_factors_bias = None


LATENT_FORMATS = {"fmnist32": FashionMNIST32}  # ComfyUI classes of the pack's own latent spaces; others keep the base's format
MODEL_CONFIGS = {  # base → core's model config class (custom widths reuse the SD1.5 family's)
    "sd15": comfy.supported_models.SD15,
    "sd21": comfy.supported_models.SD20,
    "sdxl": comfy.supported_models.SDXL,
    "custom": comfy.supported_models.SD15,
}


def is_teacher(meta: GeneratorMetadata) -> bool:
    """True for a multi-step teacher stored in the generator format."""
    return meta.method == TEACHER_METHOD


def model_sampling_for(meta: GeneratorMetadata, model_config) -> torch.nn.Module:
    """Core model_sampling object for the file's parameterization: a teacher's plain one, or a generator's carrying its OneStepSpec."""
    if is_teacher(meta):
        return TEACHER_SAMPLING_CLASSES[meta.prediction](model_config)
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
    check_metadata(meta, os.path.basename(path))
    try:
        return _build(sd, meta)
    except (RuntimeError, ValueError, KeyError) as e:
        raise GeneratorFileError(f"{os.path.basename(path)}: the weights do not build a {meta.base} UNet: {str(e).splitlines()[0]}") from None


def check_metadata(meta: GeneratorMetadata, name: str = "file") -> None:
    """Refuse metadata this ComfyUI adapter cannot honour (teacher prediction, latent format vs channels)."""
    if is_teacher(meta) and meta.prediction not in TEACHER_SAMPLING_CLASSES:
        raise GeneratorFileError(f"{name}: a teacher file must predict one of {', '.join(TEACHER_SAMPLING_CLASSES)}, not {meta.prediction!r}")
    fmt = LATENT_FORMATS.get(meta.latent_format)
    if fmt is not None and fmt.latent_channels != meta.latent_channels:
        raise GeneratorFileError(
            f"{name}: latent format {meta.latent_format!r} has {fmt.latent_channels} channel(s) but the metadata says {meta.latent_channels}"
        )


def _build(sd, meta: GeneratorMetadata) -> comfy.model_patcher.ModelPatcher:
    unet_config = comfy.model_detection.detect_unet_config(sd, "")
    config_class = MODEL_CONFIGS[meta.base]
    model_config = config_class(unet_config)
    if meta.unet_config or not config_class.matches(unet_config, sd):
        # Standard bases fix their attention heads by class; other widths take them from the file or SD1.x's layout.
        model_config.unet_config.update(meta.unet_config or DEFAULT_HEADS)
    if meta.latent_format in LATENT_FORMATS:
        model_config.latent_format = LATENT_FORMATS[meta.latent_format]()
    load_device = mm.get_torch_device()
    offload_device = mm.unet_offload_device()
    supported = list(model_config.supported_inference_dtypes)
    unet_dtype = mm.unet_dtype(
        model_params=comfy.utils.calculate_parameters(sd), supported_dtypes=supported, weight_dtype=comfy.utils.weight_dtype(sd)
    )
    model_config.set_inference_dtype(unet_dtype, mm.unet_manual_cast(unet_dtype, load_device, supported))
    model = model_config.get_model(sd, "").to(offload_device)
    if not is_teacher(meta):
        float32_output_conv(model.diffusion_model)
    model.load_model_weights(sd, "")
    patcher = comfy.model_patcher.ModelPatcher(model, load_device=load_device, offload_device=offload_device)
    patcher.add_object_patch("model_sampling", model_sampling_for(meta, model_config))
    return patcher


class Float32OutputConv(comfy.ops.disable_weight_init.Conv2d):
    """Core's convolution (offloading, LoRA weight functions and manual casting keep working: core casts the weights to
    the input's dtype, here float32) computing in float32 on float32 weights."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            return super().forward(x.float())


def float32_output_conv(unet: torch.nn.Module) -> None:
    """Give the UNet's last convolution float32 weights and float32 arithmetic, whatever dtype core runs the rest in
    (fp16/bf16 on GPUs): one step turns ε̂ into x0 = (x − σ·ε̂)/α, which multiplies the rounding of ε̂ by σ/α
    (2.5 at t=625, 14.6 at t=999; onestep/precision.py). Core's x0 conversion after it is float32 already. The
    module keeps its place and parameter names, so LoRA patches and state dicts address it as before. Call it
    before the weights are loaded (they then arrive in float32 unrounded)."""
    out = getattr(unet, "out", None)
    if not isinstance(out, torch.nn.Sequential) or not isinstance(out[-1], torch.nn.Conv2d):
        return
    old = out[-1]
    out[-1] = Float32OutputConv(old.in_channels, old.out_channels, old.kernel_size, old.stride, old.padding, old.dilation, old.groups,
                                old.bias is not None, device=old.weight.device, dtype=torch.float32)


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
