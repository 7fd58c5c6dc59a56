"""One shard of a teacher-pairs dataset: a safetensors file with the items' noise, teacher latents, seeds and
prompt indices, plus the conditioning of the prompts it uses (`cond.<j>`, `pooled.<j>` for prompt j, and the
negative prompt's `negative.cond`/`negative.pooled`; with SDXL size conditioning also `size.<j>` and `negative.size`,
int64 [1, 6] in manifest.SIZE_KEYS order), so every shard is self-contained."""
from __future__ import annotations

import hashlib
import json
import os

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ..atomic import atomic_write, file_sha256
from .manifest import DatasetError, PairSettings, shard_name

ITEM_KEYS = ("noise", "latent", "seed", "prompt_index")


def settings_hash(settings: PairSettings) -> str:
    return hashlib.sha256(json.dumps(settings.to_json(), sort_keys=True).encode()).hexdigest()


def write_shard(folder: str, k: int, settings: PairSettings, tensors: dict[str, torch.Tensor]) -> dict:
    """Write shard k atomically; returns its manifest entry."""
    items = settings.shard_items(k)
    meta = {"onestep.pairs.shard": str(k), "onestep.pairs.first": str(items.start), "onestep.pairs.count": str(len(items)),
            "onestep.pairs.settings": settings_hash(settings)}
    path = os.path.join(folder, shard_name(k))
    tensors = {name: t.detach().to("cpu").contiguous() for name, t in tensors.items()}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))
    return {"index": k, "file": shard_name(k), "count": len(items), "bytes": os.path.getsize(path), "sha256": file_sha256(path)}


def check_shard(folder: str, k: int, settings: PairSettings, num_prompts: int, deep: bool = True) -> dict:
    """Open shard k and check it against the plan; returns its manifest entry or raises DatasetError.

    deep=False checks header and shapes only; deep=True also reads every tensor (finite values, seeds,
    prompt indices, conditioning present)."""
    name = shard_name(k)
    path = os.path.join(folder, name)
    if not os.path.isfile(path):
        raise DatasetError(f"{name} is missing")
    items = settings.shard_items(k)
    try:
        with safe_open(path, "pt") as f:
            meta = f.metadata() or {}
            keys = set(f.keys())
            if meta.get("onestep.pairs.settings") != settings_hash(settings):
                raise DatasetError(f"{name} was made with other settings than this dataset's manifest")
            if meta.get("onestep.pairs.shard") != str(k) or meta.get("onestep.pairs.count") != str(len(items)):
                raise DatasetError(f"{name} holds shard {meta.get('onestep.pairs.shard')} with {meta.get('onestep.pairs.count')} items, expected shard {k} with {len(items)}")
            missing = [key for key in ITEM_KEYS if key not in keys]
            if missing:
                raise DatasetError(f"{name} lacks tensors {missing}")
            for key in ("noise", "latent"):
                shape = tuple(f.get_slice(key).get_shape())
                if shape != (len(items), *settings.latent_shape):
                    raise DatasetError(f"{name}: {key} has shape {shape}, expected {(len(items), *settings.latent_shape)}")
            if deep:
                _check_values(f, name, items, settings, num_prompts, keys)
    except DatasetError:
        raise
    except Exception as e:  # truncated or foreign file: safetensors/OS errors
        raise DatasetError(f"{name} is unreadable (truncated or not a safetensors file): {str(e).splitlines()[0]}") from None
    entry = {"index": k, "file": name, "count": len(items), "bytes": os.path.getsize(path)}
    if deep:
        entry["sha256"] = file_sha256(path)
    return entry


def _check_values(f, name: str, items: range, settings: PairSettings, num_prompts: int, keys: set[str]) -> None:
    idx = torch.arange(items.start, items.stop)
    if not torch.equal(f.get_tensor("seed"), idx + settings.seed_start):
        raise DatasetError(f"{name}: seeds do not follow the plan (seed_start + item index)")
    prompt_index = f.get_tensor("prompt_index")
    if not torch.equal(prompt_index, idx % num_prompts):
        raise DatasetError(f"{name}: prompt indices do not follow the plan (item index mod number of prompts)")
    for key in ("noise", "latent"):
        if not torch.isfinite(f.get_tensor(key)).all():
            raise DatasetError(f"{name}: {key} contains NaN or infinite values")
    needed = {f"cond.{int(j)}" for j in prompt_index.unique()} | {"negative.cond"}
    if settings.sdxl_size:
        needed |= {f"size.{int(j)}" for j in prompt_index.unique()} | {"negative.size"}
    if needed - keys:
        raise DatasetError(f"{name} lacks conditioning {sorted(needed - keys)[:3]}")
    for key in sorted(k for k in keys if k == "negative.size" or k.startswith("size.")):  # the settings say what they must be
        want = settings.size_of(negative=key == "negative.size")
        if want is None or f.get_tensor(key).flatten().tolist() != list(want):
            raise DatasetError(f"{name}: {key} {f.get_tensor(key).flatten().tolist()} is not the size conditioning of its settings {want}")
