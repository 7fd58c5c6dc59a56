"""Batches for the Diffusion2GAN trainer: a resumable data order, the rank/accumulation split of each global
batch, and the per-micro-batch random source (so N steps ≡ N/2 + resume + N/2, and 2 ranks ≡ accumulation 2).

Global batch s of the run is a fixed function of (seed, s): an epoch-wise permutation of the dataset. It is cut
into world_size × grad_accumulation chunks; chunk j = a·world_size + rank goes to rank `rank` as its a-th
micro-batch. Every random draw of chunk j at step s (augmentations, D noise) comes from a CPU generator seeded
with (seed, s, j), so the draws do not depend on how chunks are spread over processes.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterator

import torch


def derived_seed(*parts: int) -> int:
    """A 63-bit seed from integers (stable across processes and Python runs)."""
    h = hashlib.sha256(":".join(str(int(p)) for p in parts).encode()).digest()
    return int.from_bytes(h[:8], "little") & ((1 << 63) - 1)


def chunk_rng(seed: int, step: int, chunk: int) -> torch.Generator:
    """The random source of chunk `chunk` of global batch `step`."""
    return torch.Generator().manual_seed(derived_seed(seed, step, chunk))


class ResumableBatchSampler(torch.utils.data.Sampler):
    """Index lists of global batches, epoch-wise shuffled from the seed, starting at any step."""

    def __init__(self, length: int, batch_size: int, seed: int, start_step: int = 0, steps: int | None = None):
        if length < batch_size:
            raise ValueError(f"the dataset has {length} items, fewer than one global batch of {batch_size}")
        self.length, self.batch_size, self.seed = length, batch_size, seed
        self.start_step, self.steps = start_step, steps
        self.per_epoch = length // batch_size  # the incomplete last batch of an epoch is dropped
        self._epoch, self._perm = -1, torch.empty(0, dtype=torch.long)

    def batch(self, step: int) -> list[int]:
        """Indices of global batch `step`."""
        epoch, k = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            self._epoch = epoch
            self._perm = torch.randperm(self.length, generator=torch.Generator().manual_seed(derived_seed(self.seed, epoch)))
        return self._perm[k * self.batch_size:(k + 1) * self.batch_size].tolist()

    def __iter__(self) -> Iterator[list[int]]:
        step = self.start_step
        while self.steps is None or step < self.steps:
            yield self.batch(step)
            step += 1

    def __len__(self) -> int:
        return max(0, (self.steps or 0) - self.start_step)


def my_chunks(batch: dict, world_size: int, accumulation: int, rank: int) -> list[tuple[int, dict]]:
    """(chunk index, micro-batch) pairs of this rank: a disjoint 1/world_size of the global batch."""
    n = next(v for v in batch.values() if isinstance(v, torch.Tensor)).shape[0]
    parts = world_size * accumulation
    if n % parts:
        raise ValueError(f"a global batch of {n} does not split into {world_size} ranks × {accumulation} accumulation steps")
    b = n // parts
    out = []
    for a in range(accumulation):
        j = a * world_size + rank
        out.append((j, {k: v[j * b:(j + 1) * b] if isinstance(v, torch.Tensor) else v for k, v in batch.items()}))
    return out
