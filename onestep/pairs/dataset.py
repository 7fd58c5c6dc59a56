"""A PyTorch Dataset over the finished shards of a teacher-pairs dataset.

Shards are memory-mapped through safetensors and opened lazily in each process, so DataLoader workers
(fork or spawn) each read their own mappings. Items are dicts: noise, latent ([C,h,w]), context ([L,D]),
optional pooled ([P]), optional size ([6] int64: SDXL size/crop conditioning, manifest.SIZE_KEYS order; absent in
datasets collected without it, whose teacher calls had the default), seed, prompt_index (and hint_index with
ControlNet datasets)."""
from __future__ import annotations

import bisect
import logging
import math
import os

import torch
from safetensors import safe_open

from .manifest import DatasetError, Manifest

log = logging.getLogger("onestep")


class PairDataset(torch.utils.data.Dataset):
    """Items of the shards listed in the manifest (a partially collected dataset gives its finished shards)."""

    def __init__(self, folder: str):
        self.folder = folder
        self.manifest = Manifest.load(folder)
        self.shards = [self.manifest.shards[k] for k in sorted(self.manifest.shards)]
        if not self.shards:
            raise DatasetError(f"dataset {os.path.basename(os.path.normpath(folder))!r} has no finished shards yet")
        if not self.manifest.complete:
            log.warning("[onestep] dataset %s is incomplete: using its %d of %d shards", folder, len(self.shards), self.manifest.settings.num_shards)
        self._ends = []
        total = 0
        for entry in self.shards:
            total += int(entry["count"])
            self._ends.append(total)
        self._handles: dict[int, object] = {}
        self._pid = None

    def __len__(self) -> int:
        return self._ends[-1]

    @property
    def settings(self):
        return self.manifest.settings

    def _open(self, i: int):
        if self._pid != os.getpid():  # a new worker process: never share file handles across a fork
            self._handles, self._pid = {}, os.getpid()
        if i not in self._handles:
            self._handles[i] = safe_open(os.path.join(self.folder, self.shards[i]["file"]), "pt")
        return self._handles[i]

    def __getstate__(self):
        return {**self.__dict__, "_handles": {}, "_pid": None}

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(index)
        s = bisect.bisect_right(self._ends, index)
        row = index - (self._ends[s - 1] if s else 0)
        try:
            return self._item(s, row)
        except Exception as e:  # safetensors' and the OS's errors, values that are no index: a damaged shard
            raise DatasetError(f"{self.shards[s]['file']} of dataset {os.path.basename(os.path.normpath(self.folder))!r} is unreadable "
                               f"(truncated or damaged?): {(str(e).splitlines() or [type(e).__name__])[0]}") from None

    def _item(self, s: int, row: int) -> dict[str, torch.Tensor]:
        f = self._open(s)
        item = {key: f.get_slice(key)[row] for key in ("noise", "latent", "seed", "prompt_index")}
        if "hint_index" in f.keys():
            item["hint_index"] = f.get_slice("hint_index")[row]
        j = int(item["prompt_index"])
        item["context"] = f.get_tensor(f"cond.{j}")[0]
        for key in ("pooled", "size"):
            if f"{key}.{j}" in f.keys():
                item[key] = f.get_tensor(f"{key}.{j}")[0]
        return item

    def negative(self) -> dict[str, torch.Tensor]:
        """The negative prompt's conditioning {'context': [L,D], optional 'pooled': [P], optional 'size': [6]}."""
        f = self._open(0)
        out = {"context": f.get_tensor("negative.cond")[0]}
        for key in ("pooled", "size"):
            if f"negative.{key}" in f.keys():
                out[key] = f.get_tensor(f"negative.{key}")[0]
        return out

    def context_dim(self) -> int:
        """Width of the stored text conditioning."""
        return int(self[0]["context"].shape[-1])


def repeat_to_common_length(contexts: list[torch.Tensor]) -> torch.Tensor:
    """Stack [L_i, D] contexts by repeating each to the lcm of the lengths, as ComfyUI batches conditioning
    (repeating every key/value token k times leaves cross-attention unchanged)."""
    n = math.lcm(*(c.shape[0] for c in contexts))
    return torch.stack([c.repeat(n // c.shape[0], 1) for c in contexts])


def collate_pairs(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Batch items: stacked tensors, contexts of different lengths repeated to a common one."""
    out = {key: torch.stack([it[key] for it in items]) for key in items[0] if key != "context"}
    out["context"] = repeat_to_common_length([it["context"] for it in items])
    return out
