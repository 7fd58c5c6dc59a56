"""The one-step generator file: one .safetensors holding the UNet and the metadata to run it.

Weights are the UNet's state dict in ComfyUI's (ldm) layout with no prefix ("input_blocks.0.0.weight", ...),
exactly what ComfyUI's own diffusion-model loader (UNETLoader) reads, so for a standard base that loader
recognises the file too. The safetensors header metadata (string → string) holds the fields of
`GeneratorMetadata` under "onestep.<field>"; "onestep.format" = "onestep-generator" marks the file.
Writes are atomic (temporary file, then rename), so a crash never leaves half a generator behind.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import MISSING, asdict, dataclass, field, fields

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .atomic import atomic_write
from .bases import BASES, base_from_shape, get_base, inspect_ldm_unet
from .parameterization import OneStepSpec

FORMAT_NAME = "onestep-generator"
FORMAT_VERSION = 1
METHODS = ("diffusion2gan", "sid-lsg", "instaflow", "2-rectified-flow", "dmd2", "other", "teacher")  # "teacher": a multi-step teacher in this format


class GeneratorFileError(ValueError):
    """A file that cannot be used as a one-step generator; the message names the problem."""


@dataclass(frozen=True)
class GeneratorMetadata:
    """Everything besides the weights that running and tracing a generator needs."""

    method: str  # how it was made: diffusion2gan | sid-lsg | instaflow | 2-rectified-flow | dmd2 | other | teacher (multi-step; timestep/input_convention unused)
    base: str  # base architecture: sd15 | sd21 | sdxl | custom
    prediction: str  # network output: eps | v | x0 | flow
    timestep: float  # the UNet time input of the single call (flow: model time, 1000 = noise end)
    input_convention: str  # sigma_z (UNet sees sqrt(1−ᾱ)·z, ComfyUI's Euler step) | raw_z (UNet sees z)
    latent_format: str  # ComfyUI latent format name: sd15 | sdxl | ...
    latent_channels: int  # channels of the latent the generator makes
    guidance: float | None = None  # classifier-free guidance baked in at training (None: unknown/none)
    teacher_hash: str = ""  # sha256 of the teacher's weights file, when known
    training_steps: int = 0  # optimizer steps of the distillation, when known
    source: str = ""  # where it came from: importer and original file name, or the trainer
    unet_config: dict = field(default_factory=dict)  # UNet settings the weights cannot reveal (attention heads), for non-standard widths
    notes: dict = field(default_factory=dict)  # free-form extras (licence, training config, ...)
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise GeneratorFileError(f"unknown method {self.method!r}; known: {', '.join(METHODS)}")
        if self.base not in BASES:
            raise GeneratorFileError(f"unknown base architecture {self.base!r}; known: {', '.join(BASES)}")
        try:
            self.spec()
        except ValueError as e:
            raise GeneratorFileError(f"invalid parameterization: {e}") from None

    def spec(self) -> OneStepSpec:
        """The one-step parameterization this file asks for."""
        return OneStepSpec(self.prediction, self.timestep, self.input_convention)

    def to_header(self) -> dict[str, str]:
        """Safetensors header metadata (all strings)."""
        out = {"onestep.format": FORMAT_NAME}
        for k, v in asdict(self).items():
            out[f"onestep.{k}"] = v if isinstance(v, str) else json.dumps(v)
        return out

    @classmethod
    def from_header(cls, header: dict[str, str] | None, name: str = "file") -> "GeneratorMetadata":
        """Parse and validate header metadata, naming what is wrong."""
        header = header or {}
        fmt = header.get("onestep.format")
        if fmt is None:
            hint = "a ComfyUI checkpoint or plain UNet" if header else "a file without metadata"
            raise GeneratorFileError(
                f"{name} is not a one-step generator: it has no 'onestep.format' metadata (looks like {hint}). "
                "Import released models with the 'Import One-Step Generator' node or `python -m onestep.cli import`."
            )
        if fmt != FORMAT_NAME:
            raise GeneratorFileError(f"{name} has foreign metadata: onestep.format={fmt!r}, expected {FORMAT_NAME!r}")
        values = {}
        for f in fields(cls):
            raw = header.get(f"onestep.{f.name}")
            if raw is None:
                continue
            try:
                values[f.name] = raw if f.type == "str" else json.loads(raw)
            except json.JSONDecodeError:
                raise GeneratorFileError(f"{name}: metadata field onestep.{f.name}={raw!r} is not valid JSON") from None
        version = values.get("format_version", 0)
        if not isinstance(version, int) or version > FORMAT_VERSION or version < 1:
            raise GeneratorFileError(f"{name}: generator format version {version!r} is not supported (this pack reads 1..{FORMAT_VERSION})")
        required = [f.name for f in fields(cls) if f.name not in values and f.default is MISSING and f.default_factory is MISSING]
        if required:
            raise GeneratorFileError(f"{name}: generator metadata lacks {', '.join(required)}")
        for f in fields(cls):
            if f.name in values and not _of_type(values[f.name], f.type):
                raise GeneratorFileError(f"{name}: metadata field onestep.{f.name}={header[f'onestep.{f.name}']!r} is not a {f.type}")
        try:
            return cls(**values)
        except GeneratorFileError as e:
            raise GeneratorFileError(f"{name}: {e}") from None
        except (TypeError, ValueError, OverflowError) as e:  # values of the right type out of every usable range
            raise GeneratorFileError(f"{name}: unusable generator metadata: {e}") from None


def _of_type(value, annotation: str) -> bool:
    """Whether a parsed metadata value has its field's type (annotations are strings: `from __future__ import annotations`)."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return {
        "str": isinstance(value, str), "float": number, "int": isinstance(value, int) and not isinstance(value, bool),
        "float | None": value is None or number, "dict": isinstance(value, dict),
    }.get(annotation, True)


def check_weights(meta: GeneratorMetadata, sd: dict[str, torch.Tensor], name: str = "file") -> None:
    """Refuse weights that do not match what the metadata promises."""
    try:
        shape = inspect_ldm_unet(sd)
    except ValueError as e:
        raise GeneratorFileError(f"{name}: {e}") from None
    if shape.in_channels != meta.latent_channels or shape.out_channels != meta.latent_channels:
        raise GeneratorFileError(
            f"{name}: metadata says {meta.latent_channels} latent channels but the UNet takes {shape.in_channels} "
            f"and returns {shape.out_channels}"
        )
    base = get_base(meta.base)
    if base.context_dim is not None and shape.context_dim != base.context_dim:
        found = base_from_shape(shape)
        raise GeneratorFileError(
            f"{name}: metadata says base {meta.base} (text width {base.context_dim}) but the UNet's "
            f"cross-attention takes width {shape.context_dim} (looks like {found})"
        )
    if base.context_dim is not None and shape.has_adm != base.has_adm:
        raise GeneratorFileError(f"{name}: metadata says base {meta.base} but the UNet {'has' if shape.has_adm else 'lacks'} a pooled-vector input")


def save_generator(path: str | os.PathLike, unet_sd: dict[str, torch.Tensor], meta: GeneratorMetadata) -> None:
    """Validate and write a generator atomically (nothing is left at `path` if anything fails)."""
    check_tensors(unet_sd, os.path.basename(path))
    check_weights(meta, unet_sd, os.path.basename(path))
    tensors = {k: v.detach().contiguous() for k, v in unet_sd.items()}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta.to_header()))


def read_metadata(path: str | os.PathLike) -> GeneratorMetadata:
    """Only the metadata (cheap: reads the header)."""
    name = os.path.basename(path)
    return GeneratorMetadata.from_header(_open(path, lambda f: f.metadata()), name)


def load_generator(path: str | os.PathLike, device: str = "cpu") -> tuple[dict[str, torch.Tensor], GeneratorMetadata]:
    """Weights and validated metadata of a generator file."""
    name = os.path.basename(path)
    meta = read_metadata(path)
    sd = _open(path, lambda f: {k: f.get_tensor(k) for k in f.keys()}, device)
    check_tensors(sd, name)
    check_weights(meta, sd, name)
    return sd, meta


def check_tensors(sd: dict[str, torch.Tensor], name: str = "file") -> None:
    """Refuse weights that are not floating point or not finite (a damaged or hostile file), naming the tensor."""
    for key, value in sd.items():
        if not value.is_floating_point():
            raise GeneratorFileError(f"{name}: weight {key} is {str(value.dtype).removeprefix('torch.')}, not a floating-point tensor")
        if not torch.isfinite(value).all():
            raise GeneratorFileError(f"{name}: weight {key} holds NaN or infinite values")


def _open(path, read, device: str = "cpu"):
    name = os.path.basename(path)
    if not str(path).endswith(".safetensors"):
        raise GeneratorFileError(f"{name}: generators are .safetensors files")
    if not os.path.isfile(path):
        raise GeneratorFileError(f"{name}: no such file")
    try:
        with safe_open(os.fspath(path), framework="pt", device=device) as f:
            return read(f)
    except (SafetensorError, OSError, RuntimeError) as e:
        raise GeneratorFileError(f"{name} is not a readable .safetensors file (truncated or corrupt?): {e}") from None
