"""On-disk layout of a teacher-pairs dataset: a folder with `manifest.json` and safetensors shards.

Item i (0 ≤ i < count) is the teacher's output for seed `seed_start + i` and prompt `i mod len(prompts)`;
shard k holds items [k·shard_size, (k+1)·shard_size). The plan depends only on the settings, so any process
(or torchrun rank) can make any shard, and a resumed run knows which shards are missing. A shard exists
only once complete (temp file + rename); the manifest lists the finished shards with their sha256.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from dataclasses import dataclass, field

from ..atomic import atomic_write

FORMAT = "onestep-teacher-pairs"
VERSION = 2  # 2: SDXL size/crop conditioning (PairSettings.sdxl_size); a dataset without it is still written as 1
SIZE_KEYS = ("height", "width", "crop_h", "crop_w", "target_height", "target_width")  # SDXL's order (model_base.SDXL.encode_adm)
MANIFEST = "manifest.json"
SEED_MAX = 2**63 - 1  # the largest seed a shard records (its seeds are an int64 tensor)


def size_notes(sdxl_size: tuple[int, ...]) -> dict:
    """A generator file's note of the SDXL size conditioning it was trained with (PairSettings.sdxl_size's 12 values):
    what to set in CLIP Text Encode SDXL at inference to meet it."""
    n = len(SIZE_KEYS)
    return {"sdxl_size": {"prompts": dict(zip(SIZE_KEYS, sdxl_size[:n])), "negative": dict(zip(SIZE_KEYS, sdxl_size[n:]))}}


class DatasetError(ValueError):
    """A dataset folder that cannot be used or resumed, with a message naming the problem."""


@dataclass(frozen=True)
class PairSettings:
    """Everything that decides a dataset's content; a resumed run must match it exactly."""

    teacher: str  # fingerprint of the teacher's weights and patches (LoRA), see onestep_nodes/pair_collection.py
    latent_format: str  # ComfyUI latent format name (SD15, SDXL, ...): the space the latents live in
    latent_shape: tuple[int, int, int]  # [channels, height, width] of one latent
    sampler: str  # deterministic ODE sampler (k-diffusion name)
    scheduler: str  # ComfyUI scheduler name
    steps: int  # teacher sampling steps
    cfg: float  # classifier-free guidance scale baked into the pairs
    negative: str  # negative prompt (the unconditional branch of CFG)
    prompts_sha256: str  # hash of the prompt list stored in the manifest
    seed_start: int  # seed of item 0; item i uses seed_start + i
    count: int  # number of items
    batch_size: int  # items per teacher call (batching changes float rounding, so it is part of the content)
    shard_size: int  # items per shard, a multiple of batch_size
    controlnet: str = ""  # fingerprint of the ControlNet ("" if none)
    control_strength: float = 0.0  # ControlNet strength
    hints_sha256: str = ""  # hash of the hint images (item i uses hint i mod number of hints)
    text_encoder: str = ""  # fingerprint of the text encoder that made the conditioning
    # SDXL size/crop conditioning (CLIP Text Encode SDXL's inputs), in SIZE_KEYS order: the prompts' 6 values, then the
    # negative's 6. () = the default every teacher call had before: original = target = the image size, no crop.
    sdxl_size: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.count < 1:
            raise DatasetError("the dataset must hold at least one item (count ≥ 1)")
        if self.batch_size < 1 or self.shard_size < self.batch_size or self.shard_size % self.batch_size:
            raise DatasetError(f"shard size {self.shard_size} must be a positive multiple of batch size {self.batch_size}")
        if self.steps < 1:
            raise DatasetError(f"steps must be ≥ 1 (teacher sampling steps), not {self.steps}")
        if not (math.isfinite(self.cfg) and math.isfinite(self.control_strength)):  # NaN made NaN latents after a full batch
            raise DatasetError(f"cfg and control_strength must be finite numbers, not {self.cfg}, {self.control_strength}")
        if len(self.latent_shape) != 3 or min(self.latent_shape) < 1:
            raise DatasetError(f"the latents must have a positive size, not {self.latent_shape} (width and height ≥ 8 pixels)")
        if self.sdxl_size and (len(self.sdxl_size) != 2 * len(SIZE_KEYS) or min(self.sdxl_size) < 0):
            raise DatasetError(f"sdxl_size must be {2 * len(SIZE_KEYS)} sizes ≥ 0 (the prompts' and the negative's {', '.join(SIZE_KEYS)}), "
                               f"not {self.sdxl_size}")
        # Each item's seed is stored in the shards as a signed 64-bit integer (seed ≥ 2^63 raised torch's "Overflow when
        # unpacking long long" after the first batch was sampled)
        if not 0 <= self.seed_start <= SEED_MAX - (self.count - 1):
            raise DatasetError(f"seed must be from 0 to {SEED_MAX - (self.count - 1):,} for count {self.count:,} (pair i uses seed + i, "
                               f"recorded as a signed 64-bit integer, at most 2^63 − 1), not {self.seed_start:,}")

    @property
    def num_shards(self) -> int:
        return math.ceil(self.count / self.shard_size)

    def shard_items(self, k: int) -> range:
        """Item indices of shard k."""
        return range(k * self.shard_size, min((k + 1) * self.shard_size, self.count))

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        if not self.sdxl_size:  # absent when default: older datasets keep their settings hash (shards record it)
            del d["sdxl_size"]
        return d

    @property
    def version(self) -> int:
        """The manifest format version these settings need (older packs refuse a newer one instead of ignoring it)."""
        return 2 if self.sdxl_size else 1

    def size_of(self, negative: bool = False) -> tuple[int, ...] | None:
        """The prompts' (or the negative's) SDXL size conditioning in SIZE_KEYS order, or None for the default."""
        n = len(SIZE_KEYS)
        return (self.sdxl_size[n:] if negative else self.sdxl_size[:n]) if self.sdxl_size else None

    @classmethod
    def from_json(cls, d: dict) -> PairSettings:
        if not isinstance(d, dict):
            raise DatasetError("manifest settings are not an object")
        fields_ = {f.name: f for f in dataclasses.fields(cls)}
        unknown = set(d) - set(fields_)
        if unknown:
            raise DatasetError(f"manifest settings have unknown fields {sorted(unknown)} (made by a newer version?)")
        for name, value in d.items():
            if not _of_type(value, fields_[name].type):
                raise DatasetError(f"manifest setting {name}={value!r} is not a {fields_[name].type}")
        d = dict(d, latent_shape=tuple(d.get("latent_shape", ())), sdxl_size=tuple(d.get("sdxl_size", ())))
        try:
            return cls(**d)
        except TypeError as e:  # a required field missing
            raise DatasetError(f"manifest settings are incomplete: {e}") from None

    def differences(self, other: PairSettings) -> list[str]:
        """Human-readable `field: old → new` for every setting that differs."""
        a, b = dataclasses.asdict(self), dataclasses.asdict(other)
        return [f"{k}: {a[k]!r} → {b[k]!r}" for k in a if a[k] != b[k]]


def _of_type(value, annotation: str) -> bool:
    """Whether a manifest value has its setting's type (annotations are strings: `from __future__ import annotations`)."""
    integer = isinstance(value, int) and not isinstance(value, bool)
    return {
        "str": isinstance(value, str), "int": integer, "float": (integer or isinstance(value, float)) and math.isfinite(value),
        "tuple[int, int, int]": isinstance(value, list) and len(value) == 3 and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value),
        "tuple[int, ...]": isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value),
    }.get(annotation, True)


def _shard_entry(entry, settings: PairSettings) -> dict:
    """A manifest shard entry, checked: its index names a shard of these settings, its file is that shard's own name
    (never a path), its count is that shard's."""
    if not isinstance(entry, dict) or not isinstance(entry.get("index"), int) or isinstance(entry.get("index"), bool):
        raise DatasetError(f"a shard entry is not an object with an integer index: {entry!r}"[:200])
    k = entry["index"]
    if not 0 <= k < settings.num_shards:
        raise DatasetError(f"shard index {k} is outside 0..{settings.num_shards - 1}")
    if entry.get("file") != shard_name(k):
        raise DatasetError(f"shard {k} names the file {entry.get('file')!r}, not {shard_name(k)!r}")
    if entry.get("count") != len(settings.shard_items(k)):
        raise DatasetError(f"shard {k} records {entry.get('count')!r} items, its settings make {len(settings.shard_items(k))}")
    if not isinstance(entry.get("sha256"), str) or not isinstance(entry.get("bytes", 0), int):
        raise DatasetError(f"shard {k} has no usable sha256/bytes record")
    return entry


def shard_name(k: int) -> str:
    return f"shard-{k:06d}.safetensors"


def prompts_hash(prompts: list[str]) -> str:
    return hashlib.sha256(json.dumps(prompts, ensure_ascii=False).encode()).hexdigest()


@dataclass
class Manifest:
    """settings + prompts + the finished shards ({index, file, count, sha256}), as manifest.json."""

    settings: PairSettings
    prompts: list[str]
    shards: dict[int, dict] = field(default_factory=dict)
    info: dict = field(default_factory=dict)  # names of the models and nodes that made it, for people

    @property
    def complete(self) -> bool:
        return len(self.shards) == self.settings.num_shards

    def missing(self) -> list[int]:
        return [k for k in range(self.settings.num_shards) if k not in self.shards]

    def to_json(self) -> dict:
        return {
            "format": FORMAT, "version": self.settings.version, "complete": self.complete, "settings": self.settings.to_json(),
            "prompts": self.prompts, "info": self.info, "shards": [self.shards[k] for k in sorted(self.shards)],
        }

    def save(self, folder: str) -> None:
        text = json.dumps(self.to_json(), indent=1, ensure_ascii=False)
        atomic_write(os.path.join(folder, MANIFEST), lambda tmp: open(tmp, "w", encoding="utf-8").write(text))

    @classmethod
    def load(cls, folder: str) -> Manifest:
        path = os.path.join(folder, MANIFEST)
        name = os.path.basename(os.path.normpath(folder))
        if not os.path.isfile(path):
            raise DatasetError(f"{name!r} is not a teacher-pairs dataset: it has no {MANIFEST}")
        try:
            with open(path, encoding="utf-8") as f:
                d = json.load(f)
        except (OSError, ValueError) as e:
            raise DatasetError(f"{name}/{MANIFEST} cannot be read: {e}") from None
        if not isinstance(d, dict):
            raise DatasetError(f"{name}/{MANIFEST} is not a teacher-pairs manifest (a JSON {type(d).__name__}, not an object)")
        if d.get("format") != FORMAT:
            raise DatasetError(f"{name}/{MANIFEST} is not a teacher-pairs manifest (format {d.get('format')!r})")
        version = d.get("version", 0)
        if not isinstance(version, int) or isinstance(version, bool) or version > VERSION:
            raise DatasetError(f"{name} was written by a newer version of the pack, or the manifest is damaged (format version {version!r})")
        try:
            settings = PairSettings.from_json(d.get("settings"))
            prompts = d.get("prompts")
            if not isinstance(prompts, list) or not all(isinstance(p, str) for p in prompts):
                raise DatasetError("its prompts are not a list of texts")
            entries = d.get("shards", [])
            if not isinstance(entries, list):
                raise DatasetError("its shard list is not a list")
            shards = {e["index"]: e for e in (_shard_entry(e, settings) for e in entries)}
        except DatasetError as e:
            raise DatasetError(f"{name}/{MANIFEST}: {e}") from None
        if prompts_hash(prompts) != settings.prompts_sha256:
            raise DatasetError(f"{name}/{MANIFEST}: the prompt list does not match its recorded hash")
        info = d.get("info", {})
        return cls(settings, prompts, shards, info if isinstance(info, dict) else {})
