"""The resumable collection loop: make the missing shards of a dataset with a teacher, batch by batch.

The teacher is anything with the `Teacher` interface (the ComfyUI adapter in onestep_nodes/pair_collection.py runs
core's sampling machinery). Under torchrun, rank r makes the missing shards k with k mod world = r, so ranks
take disjoint seeds and the files are the same as one process would write.
"""
from __future__ import annotations

import glob
import logging
import math
import os
import shutil
import time
from collections.abc import Callable
from typing import Protocol

import torch

from ..atomic import TEMP_PREFIX, remove_temporary
from .manifest import DatasetError, Manifest, PairSettings, prompts_hash, shard_name
from .shards import check_shard, write_shard

log = logging.getLogger("onestep")


class Teacher(Protocol):
    """What the loop needs from a teacher model + text encoder (+ ControlNet)."""

    def noise(self, seed: int) -> torch.Tensor:
        """[1, C, h, w] starting noise for a seed, exactly as core KSampler makes it."""

    def conditioning(self, prompt_index: int) -> dict[str, torch.Tensor]:
        """{'cond': [1, L, D], optional 'pooled': [1, P], optional 'size': [1, 6] (SDXL size/crop conditioning in
        manifest.SIZE_KEYS order, where the settings have it)} for a prompt of the list (the negative: index -1)."""

    def sample(self, noise: torch.Tensor, prompt_indices: list[int], hint_indices: list[int] | None) -> torch.Tensor:
        """Teacher latents [B, C, h, w] (LATENT units) for a batch of noises and prompts."""

    # Optional: encode(prompt_indices) — the loop hands each shard's prompts over at once before its first batch, so a
    # teacher that can encode many prompts in one text-encoder call does so once per shard instead of once per batch.


Progress = Callable[[int, int, torch.Tensor], None]  # (items done, items total, latest latents); may raise to cancel


GIB = 2**30


def item_bytes(settings: PairSettings) -> int:
    """Bytes of one pair in a shard: its noise and latent (float32) and its seed and prompt index (int64). Each shard
    also holds the conditioning of its prompts, so a dataset takes more than count × this."""
    return 2 * 4 * math.prod(settings.latent_shape) + 2 * 8


def shard_memory(settings: PairSettings) -> int:
    """Memory a shard takes while it is made: its pairs are kept until the shard is written, then concatenated and
    serialised (about three copies)."""
    return 3 * min(settings.shard_size, settings.count) * item_bytes(settings)


def check_shard_memory(settings: PairSettings, ram_bytes: int) -> None:
    """Refuse a shard size whose shard would not fit in the machine's memory (`ram_bytes`), before anything is sampled."""
    need = shard_memory(settings)
    if need > ram_bytes:
        c, h, w = settings.latent_shape
        raise DatasetError(
            f"shard_size {settings.shard_size:,} is too large for {c}×{h}×{w} latents: a shard is kept in memory until it is "
            f"written, about {need / GIB:,.1f} GiB, more than the {ram_bytes / GIB:,.1f} GiB of this machine; lower shard_size")


def check_disk(folder: str, settings: PairSettings, done_items: int = 0) -> None:
    """Refuse a collection whose remaining pairs would not fit on the disk that holds `folder` (a lower bound: their
    noise and latents, without the conditioning), before anything is written."""
    need = (settings.count - done_items) * item_bytes(settings)
    where = os.path.abspath(folder)
    while not os.path.isdir(where) and os.path.dirname(where) != where:
        where = os.path.dirname(where)
    free = shutil.disk_usage(where).free
    if need > free:
        c, h, w = settings.latent_shape
        raise DatasetError(
            f"count {settings.count:,} pairs of {c}×{h}×{w} latents need at least {need / GIB:,.1f} GiB on disk for the "
            f"{settings.count - done_items:,} still to collect, more than the {free / GIB:,.1f} GiB free where "
            f"{os.path.basename(os.path.normpath(folder))!r} is; lower count or free some space")


def open_dataset(folder: str, settings: PairSettings, prompts: list[str], info: dict | None = None, create: bool = True) -> Manifest:
    """Load (and reconcile with the files on disk) or start the dataset in `folder`; refuse other settings, and (with
    `create`) a collection whose pairs would not fit on the disk."""
    if prompts_hash(prompts) != settings.prompts_sha256:
        raise DatasetError("settings.prompts_sha256 does not match the prompt list")
    if os.path.isfile(os.path.join(folder, "manifest.json")):
        manifest = Manifest.load(folder)
        diff = manifest.settings.differences(settings)
        if diff:
            raise DatasetError(
                f"dataset {os.path.basename(os.path.normpath(folder))!r} was collected with other settings ({'; '.join(diff[:4])}); "
                "use a new dataset name, or the same settings to resume it"
            )
        before = manifest.to_json()
        reconcile(folder, manifest)
        if create and manifest.to_json() != before:  # shards adopted or forgotten: the manifest on disk says so at once
            manifest.save(folder)
        if create:
            check_disk(folder, settings, sum(int(e["count"]) for e in manifest.shards.values()))
        return manifest
    manifest = Manifest(settings, list(prompts), info=dict(info or {}))
    if create:
        check_disk(folder, settings)
        os.makedirs(folder, exist_ok=True)
        _remove_unfinished(folder)  # a run killed while writing its first manifest left only a temporary file
        manifest.save(folder)
    return manifest


def _remove_unfinished(folder: str) -> None:
    for tmp in glob.glob(os.path.join(folder, TEMP_PREFIX + "*")):
        remove_temporary(tmp)  # our own unfinished writes from a killed run


def reconcile(folder: str, manifest: Manifest) -> None:
    """Match the manifest to the shards on disk: adopt finished shards it missed (killed between rename and
    manifest update), forget listed shards whose file is gone or the wrong size, set aside corrupt files."""
    _remove_unfinished(folder)
    n_prompts = len(manifest.prompts)
    for k in range(manifest.settings.num_shards):
        path = os.path.join(folder, shard_name(k))
        entry = manifest.shards.get(k)
        if entry is not None and os.path.isfile(path) and os.path.getsize(path) == entry.get("bytes"):
            continue
        manifest.shards.pop(k, None)
        if not os.path.isfile(path):
            continue
        try:
            manifest.shards[k] = check_shard(folder, k, manifest.settings, n_prompts, deep=True)
        except DatasetError as e:
            aside = f"{path}.corrupt-{int(time.time())}"
            os.replace(path, aside)
            log.warning("[onestep] %s; moved to %s and made again", e, os.path.basename(aside))


def collect(
    folder: str, manifest: Manifest, teacher: Teacher, rank: int = 0, world: int = 1,
    num_hints: int = 0, progress: Progress | None = None, write_manifest: bool = True,
) -> list[int]:
    """Make this rank's missing shards; returns the shard indices written. Each shard is written atomically
    and (with write_manifest) recorded in the manifest at once, so an interruption loses at most one shard."""
    s = manifest.settings
    # Lazily, and the total by arithmetic: count 10^8 at shard_size 1 plans 10^8 shards (a list of them took 4 GB)
    todo = (k for k in range(rank, s.num_shards, world) if k not in manifest.shards)
    total = _rank_items(s, rank, world) - sum(int(e["count"]) for k, e in manifest.shards.items() if k % world == rank)
    done = 0
    negative = _named(teacher.conditioning(-1), "negative.")
    written = []
    encode = getattr(teacher, "encode", None)
    for k in todo:
        items = s.shard_items(k)
        shard_prompts = sorted({i % len(manifest.prompts) for i in items})
        if encode is not None:
            encode(shard_prompts)
        tensors = {"seed": torch.tensor([s.seed_start + i for i in items]), "prompt_index": torch.tensor([i % len(manifest.prompts) for i in items])}
        if num_hints:
            tensors["hint_index"] = torch.tensor([i % num_hints for i in items])
        noises, latents = [], []
        for start in range(0, len(items), s.batch_size):
            batch = items[start:start + s.batch_size]
            noise = torch.cat([teacher.noise(s.seed_start + i) for i in batch])
            latent = teacher.sample(noise, [i % len(manifest.prompts) for i in batch], [i % num_hints for i in batch] if num_hints else None)
            if not torch.isfinite(latent).all():
                raise DatasetError(f"the teacher produced NaN/inf latents for seeds {s.seed_start + batch.start}..{s.seed_start + batch.stop - 1}; nothing was written for them")
            noises.append(noise.cpu())
            latents.append(latent.float().cpu())
            done += len(batch)
            if progress is not None and batch.stop < len(items):  # the shard's last batch reports after the write
                progress(done, total, latent)
        tensors.update(noise=torch.cat(noises), latent=torch.cat(latents), **negative)
        for j in shard_prompts:
            tensors.update(_named(teacher.conditioning(j), "", f".{j}"))
        try:
            entry = write_shard(folder, k, s, tensors)
        except OSError as e:
            raise DatasetError(
                f"could not write {shard_name(k)} ({e.strerror or e}); the dataset keeps its {len(manifest.shards)} finished shards "
                "and resumes from here when run again"
            ) from None
        manifest.shards[k] = entry
        written.append(k)
        if write_manifest:
            manifest.save(folder)
        log.info("[onestep] teacher pairs: %s written (%d/%d shards)", entry["file"], len(manifest.shards), s.num_shards)
        if progress is not None:  # may raise to cancel: the shard just written is kept
            progress(done, total, latent)
    return written


def _rank_items(s: PairSettings, rank: int, world: int) -> int:
    """Items in the shards k ≡ rank (mod world): full shards, but the last one may be short."""
    shards = len(range(rank, s.num_shards, world))
    last_short = s.num_shards * s.shard_size - s.count
    return shards * s.shard_size - (last_short if (s.num_shards - 1) % world == rank else 0)


def _named(cond: dict[str, torch.Tensor], prefix: str, suffix: str = "") -> dict[str, torch.Tensor]:
    """A prompt's conditioning under its shard keys: cond.<j>, pooled.<j>, size.<j> (the negative: negative.cond, ...);
    pooled only where the model uses it, size only where the settings have SDXL size conditioning."""
    return {f"{prefix}{key}{suffix}": cond[key] for key in ("cond", "pooled", "size") if cond.get(key) is not None}
