"""Node: Load Proof-Scale Model Set → teacher MODEL, one-step student MODEL, CLIP, VAE.

The proof-scale model set (issue 6) lives in a 32×32×1 latent space ("fmnist32"): the Fashion-MNIST image
itself, padded 28→32 and scaled to [−1, 1] (proof_scale/data.py). Its parts, as ComfyUI objects:
  - teacher and student: generator-format files (onestep/format.py); the teacher's method is "teacher"
    (core's plain multi-step ε sampling), the student's a one-step method (onestep_nodes/generator_model.py);
  - text encoder: a small CLIP in ComfyUI's own CLIP machinery (comfy.sd1_clip: SD1 tokenizer, CLIPTextModel
    of any width), from a .safetensors whose metadata names its config ("onestep.format" =
    "onestep-text-encoder"), so core's CLIPTextEncode conditions the UNets as it does SD1.5's;
  - VAE: a real comfy.sd.VAE whose "autoencoder" is the pixel grid itself: decode repeats each latent cell
    as an 8×8 grey block (so ComfyUI's 8 px per latent cell holds: EmptyLatentImage 256² → 32² latent),
    encode takes the 8×8 area mean of the grey level; it has no weights.
"""
from __future__ import annotations

import functools
import json
import logging
import os

import comfy.model_management as mm
import comfy.model_patcher
import comfy.pixel_space_convert
import comfy.sd
import comfy.sd1_clip
import comfy.supported_models_base
import comfy.utils
import folder_paths
import torch
from comfy_api.latest import io
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from onestep.atomic import atomic_write
from onestep.format import FORMAT_NAME as GENERATOR_FORMAT
from onestep.format import GeneratorFileError, read_metadata
from . import model_folder
from .generator_model import (
    FashionMNIST32,
    context_dim,
    is_teacher,
    load_generator_model,
)
from .constants import CATEGORY, check_choices

log = logging.getLogger("onestep")

ENCODER_FORMAT = "onestep-text-encoder"  # "onestep.format" of a text-encoder file
ENCODER_FORMAT_VERSION = 1
TOKENIZERS = ("sd1-clip",)  # tokenizers a text-encoder file may name: ComfyUI's SD1 CLIP tokenizer (BPE, 49408 tokens)
CONFIG_KEYS = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "hidden_act", "max_position_embeddings", "eos_token_id")
# The proof-scale encoder: CLIP-L's tokenizer, vocabulary and 77 positions at 1/12 width, 2 layers.
TINY_CLIP_CONFIG = {
    "hidden_size": 64, "intermediate_size": 256, "num_hidden_layers": 2, "num_attention_heads": 2, "hidden_act": "quick_gelu",
    "max_position_embeddings": 77, "vocab_size": 49408, "projection_dim": 64, "eos_token_id": 49407, "bos_token_id": 49406,
    "pad_token_id": 1, "layer_norm_eps": 1e-5, "model_type": "clip_text_model",
}
PIXEL_VAES = {"fmnist32": FashionMNIST32}  # latent formats whose VAE is the pixel grid (no weights)


class ProofScaleFileError(ValueError):
    """A file that cannot serve as the named part of the proof-scale model set; the message names the problem."""


# ---------------------------------------------------------------- text encoder


def clip_target(config: dict) -> comfy.supported_models_base.ClipTarget:
    """A ComfyUI CLIP target: SD1 tokenizer with this width (textual-inversion embeddings are checked against it),
    SD1ClipModel around a CLIPTextModel built from `config`, last hidden state, unprojected pooled output."""
    width = int(config["hidden_size"])
    tokenizer = functools.partial(
        comfy.sd1_clip.SD1Tokenizer, clip_name="l",
        tokenizer=functools.partial(comfy.sd1_clip.SDTokenizer, embedding_size=width, embedding_key="clip_l", max_length=int(config["max_position_embeddings"])),
    )
    target = comfy.supported_models_base.ClipTarget(tokenizer, comfy.sd1_clip.SD1ClipModel)
    target.params = {"clip_model": comfy.sd1_clip.SDClipModel, "textmodel_json_config": dict(config), "return_projected_pooled": False,
                     "layer": "last", "max_length": int(config["max_position_embeddings"])}
    return target


def check_clip_config(config: dict, name: str = "file") -> None:
    """Refuse a text-encoder config that ComfyUI's CLIPTextModel cannot build."""
    missing = [k for k in CONFIG_KEYS if k not in config]
    if missing:
        raise ProofScaleFileError(f"{name}: text-encoder config lacks {', '.join(missing)}")
    if int(config["hidden_size"]) % int(config["num_attention_heads"]):
        raise ProofScaleFileError(f"{name}: hidden_size {config['hidden_size']} is not a multiple of num_attention_heads {config['num_attention_heads']}")
    if int(config.get("vocab_size", 49408)) != 49408:
        raise ProofScaleFileError(f"{name}: vocab_size {config['vocab_size']} does not fit ComfyUI's SD1 tokenizer (49408 tokens)")


def build_clip(config: dict, sd: dict[str, torch.Tensor] | None = None, name: str = "file", model_options: dict | None = None) -> comfy.sd.CLIP:
    """A comfy.sd.CLIP of this config; loads `sd` (the CLIPTextModel's keys, no prefix) and refuses missing or extra keys.
    model_options as core's CLIP takes them (e.g. {"dtype": torch.float32}; default: core's text-encoder dtype)."""
    check_clip_config(config, name)
    params = comfy.utils.calculate_parameters(sd) if sd else 0
    clip = comfy.sd.CLIP(clip_target(config), embedding_directory=folder_paths.get_folder_paths("embeddings"), parameters=params,
                         model_options=model_options or {})
    if sd is not None:
        missing, unexpected = clip.load_sd(sd)
        if missing or unexpected:
            raise ProofScaleFileError(f"{name}: weights do not match the text-encoder config (missing {sorted(missing)[:4]}, unexpected {sorted(unexpected)[:4]})")
    return clip


def text_model(clip: comfy.sd.CLIP) -> torch.nn.Module:
    """The CLIPTextModel inside a CLIP built by build_clip (its state dict is what an encoder file stores)."""
    return clip.cond_stage_model.clip_l.transformer


def save_text_encoder(path: str, clip: comfy.sd.CLIP, config: dict, dtype: torch.dtype = torch.float16, notes: dict | None = None) -> None:
    """Write the encoder's weights with its config as metadata, atomically."""
    sd = {k: v.detach().to("cpu", dtype).contiguous() for k, v in text_model(clip).state_dict().items()}
    header = {"onestep.format": ENCODER_FORMAT, "onestep.format_version": str(ENCODER_FORMAT_VERSION), "onestep.tokenizer": TOKENIZERS[0],
              "onestep.text_config": json.dumps(config), "onestep.notes": json.dumps(notes or {})}
    atomic_write(path, lambda tmp: save_file(sd, tmp, metadata=header))


def load_text_encoder(path: str, model_options: dict | None = None) -> comfy.sd.CLIP:
    """The CLIP of a text-encoder file (ProofScaleFileError naming the problem otherwise)."""
    name = os.path.basename(path)
    header, sd = _read(path, tensors=True)
    fmt = header.get("onestep.format")
    if fmt == GENERATOR_FORMAT:
        raise ProofScaleFileError(f"{name} is a UNet (generator-format file), not a text encoder: pick it as teacher or student")
    if fmt != ENCODER_FORMAT:
        raise ProofScaleFileError(f"{name} is not a proof-scale text encoder: its 'onestep.format' metadata is {fmt!r}, expected {ENCODER_FORMAT!r}")
    version = header.get("onestep.format_version", "")
    if version != str(ENCODER_FORMAT_VERSION):
        raise ProofScaleFileError(f"{name}: text-encoder format version {version!r} is not supported (this pack reads {ENCODER_FORMAT_VERSION})")
    tokenizer = header.get("onestep.tokenizer")
    if tokenizer not in TOKENIZERS:
        raise ProofScaleFileError(f"{name}: tokenizer {tokenizer!r} is not one this pack has ({', '.join(TOKENIZERS)})")
    try:
        config = json.loads(header.get("onestep.text_config", ""))
    except json.JSONDecodeError:
        raise ProofScaleFileError(f"{name}: metadata onestep.text_config is missing or not valid JSON") from None
    return build_clip(config, sd, name, model_options)


def encode_prompt(clip: comfy.sd.CLIP, text: str) -> torch.Tensor:
    """The conditioning tensor [1, L, D] core's CLIPTextEncode makes for `text`."""
    return clip.encode_from_tokens_scheduled(clip.tokenize(text))[0][0]


def clip_width(clip: comfy.sd.CLIP) -> int | None:
    """Width D of the CLIP's hidden states (the UNet's context_dim it fits)."""
    try:
        return int(text_model(clip).text_model.final_layer_norm.weight.shape[0])
    except AttributeError:
        return None


# ---------------------------------------------------------------- VAE


class PixelGridCodec(comfy.pixel_space_convert.PixelspaceConversionVAE):
    """The "autoencoder" of a pixel-grid latent space: nearest upsampling and area averaging by `factor`."""

    def __init__(self, factor: int = 8):
        super().__init__()  # keeps core's placeholder parameter, so the patcher has a device and dtype to track
        self.factor = factor

    def decode(self, z: torch.Tensor, *_args, **_kwargs) -> torch.Tensor:
        """[B, 1, h, w] in −1..1 → grey RGB [B, 3, h·f, w·f] in −1..1, each cell an f×f block."""
        return torch.nn.functional.interpolate(z, scale_factor=self.factor, mode="nearest").expand(-1, 3, -1, -1)

    def encode(self, x: torch.Tensor, *_args, **_kwargs) -> torch.Tensor:
        """RGB [B, 3, H, W] in −1..1 → [B, 1, H/f, W/f]: grey level (channel mean), f×f area mean."""
        return torch.nn.functional.avg_pool2d(x.mean(dim=1, keepdim=True), self.factor)


class PixelGridVAE(comfy.sd.VAE):
    """A real comfy.sd.VAE (core's decode/encode, tiling, batching and device handling) for a pixel-grid latent
    space: core's pixel-space conversion VAE with the grid's codec, ratios and channel count."""

    def __init__(self, latent_format=FashionMNIST32):
        super().__init__(sd={"pixel_space_vae": torch.tensor(1.0)})  # core's weightless pixel-space VAE: this host's defaults
        if self.first_stage_model is None:
            raise RuntimeError("this ComfyUI has no pixel-space VAE (comfy.pixel_space_convert); update ComfyUI")
        factor = latent_format.spacial_downscale_ratio
        self.first_stage_model = PixelGridCodec(factor).eval()
        self.vae_dtype = torch.float32  # exact copies and means; fp16/bf16 would round the grey levels
        self.working_dtypes = [torch.float32]
        self.downscale_ratio = self.upscale_ratio = factor
        self.latent_channels = latent_format.latent_channels
        self.output_channels = 3
        self.memory_used_decode = lambda shape, dtype: shape[2] * shape[3] * factor * factor * 3 * 2 * mm.dtype_size(dtype)
        self.memory_used_encode = lambda shape, dtype: shape[2] * shape[3] * 3 * 2 * mm.dtype_size(dtype)
        self.patcher = comfy.model_patcher.ModelPatcher(self.first_stage_model, load_device=self.device, offload_device=mm.vae_offload_device())
        self.size = None
        self.model_size()


# ---------------------------------------------------------------- the model set


def load_model_set(teacher_path: str, student_path: str, encoder_path: str):
    """(teacher MODEL, student MODEL, CLIP, VAE) of a proof-scale model set, checked to fit together."""
    teacher_meta = _generator_metadata(teacher_path, "teacher")
    student_meta = _generator_metadata(student_path, "student")
    tname, sname = os.path.basename(teacher_path), os.path.basename(student_path)
    if not is_teacher(teacher_meta):
        raise ProofScaleFileError(f"{tname} is a one-step generator (method {teacher_meta.method!r}), not a teacher: pick it as the student")
    if is_teacher(student_meta):
        raise ProofScaleFileError(f"{sname} is a multi-step teacher (method 'teacher'), not a one-step student: pick it as the teacher")
    if teacher_meta.latent_format != student_meta.latent_format:
        raise ProofScaleFileError(f"teacher {tname} makes {teacher_meta.latent_format!r} latents but student {sname} makes {student_meta.latent_format!r}")
    fmt = PIXEL_VAES.get(teacher_meta.latent_format)
    if fmt is None:
        raise ProofScaleFileError(f"{tname}: latent format {teacher_meta.latent_format!r} is not a proof-scale space (known: {', '.join(PIXEL_VAES)}); "
                                  "load other models with Load One-Step Generator and a core VAE loader")
    teacher, student = load_generator_model(teacher_path), load_generator_model(student_path)
    clip = load_text_encoder(encoder_path)
    width = clip_width(clip)
    for role, model, name in (("teacher", teacher, tname), ("student", student, sname)):
        if context_dim(model) != width:
            raise ProofScaleFileError(f"{role} {name} takes text width {context_dim(model)} but the text encoder {os.path.basename(encoder_path)} makes width {width}")
    log.info("[onestep] proof-scale model set: teacher %s, student %s, text encoder %s (width %s), %s pixel-grid VAE",
             tname, sname, os.path.basename(encoder_path), width, teacher_meta.latent_format)
    return teacher, student, clip, PixelGridVAE(fmt)


def _generator_metadata(path: str, role: str):
    name = os.path.basename(path)
    header, _ = _read(path, tensors=False)
    if header.get("onestep.format") == ENCODER_FORMAT:
        raise ProofScaleFileError(f"{name} is a text encoder, not a UNet: pick it as text_encoder, and a generator-format file as {role}")
    try:
        return read_metadata(path)
    except GeneratorFileError as e:
        raise ProofScaleFileError(f"{role}: {e}") from None


def _read(path: str, tensors: bool) -> tuple[dict[str, str], dict[str, torch.Tensor] | None]:
    name = os.path.basename(path)
    try:
        with safe_open(path, framework="pt", device="cpu") as f:
            return (f.metadata() or {}), ({k: f.get_tensor(k) for k in f.keys()} if tensors else None)  # noqa: SIM118
    except (SafetensorError, OSError, RuntimeError) as e:
        raise ProofScaleFileError(f"{name} is not a readable .safetensors file (truncated or corrupt?): {e}") from None


class OneStepLoadProofScaleModelSet(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        files = model_folder.generator_files()
        return io.Schema(
            node_id="OneStepLoadProofScaleModelSet", display_name="Load Proof-Scale Model Set", category=CATEGORY,
            description=("Loads the proof-scale model set (Fashion-MNIST, 32×32×1 latents): the multi-step teacher, its one-step student, "
                         "their small CLIP text encoder and the pixel-grid VAE (1 latent cell = 8×8 grey pixels; use 256×256 images)."),
            inputs=[
                io.Combo.Input("teacher", options=files, tooltip="The teacher: a generator-format file in models/onestep with method 'teacher'."),
                io.Combo.Input("student", options=files, tooltip="The one-step student: a generator file in models/onestep in the same latent space."),
                io.Combo.Input("text_encoder", options=files, tooltip="The text encoder: an 'onestep-text-encoder' file in models/onestep."),
            ],
            outputs=[
                io.Model.Output(display_name="teacher", tooltip="The multi-step teacher: use it with KSampler (ε-prediction on the SD discrete schedule)."),
                io.Model.Output(display_name="student", tooltip="The one-step student: use it with One-Step Generate."),
                io.Clip.Output(display_name="clip", tooltip=(
                    "The text encoder both models were conditioned with: use it with CLIP Text Encode (prompts are the class names, "
                    "e.g. 'Sneaker').")),
                io.Vae.Output(display_name="vae", tooltip="The pixel-grid VAE: VAE Decode turns a 32×32 latent into a 256×256 grey image, VAE Encode the reverse."),
            ],
        )

    @classmethod
    def validate_inputs(cls, teacher=None, student=None, text_encoder=None) -> bool | str:
        return check_choices(cls, teacher=teacher, student=student, text_encoder=text_encoder)

    @classmethod
    def fingerprint_inputs(cls, teacher=None, student=None, text_encoder=None) -> str:
        return model_folder.file_fingerprint(model_folder.FOLDER, teacher, student, text_encoder)

    @classmethod
    def execute(cls, teacher: str, student: str, text_encoder: str) -> io.NodeOutput:
        full = functools.partial(folder_paths.get_full_path_or_raise, model_folder.FOLDER)
        return io.NodeOutput(*load_model_set(full(teacher), full(student), full(text_encoder)))


NODES = [OneStepLoadProofScaleModelSet]
