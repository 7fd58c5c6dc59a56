"""Splitting a list of tensors into consecutive chunks of bounded size, so that an update that needs float32
temporaries (an optimiser step, a bf16 EMA) holds them for one chunk at a time instead of for every weight, while
still issuing a handful of multi-tensor kernels per chunk instead of several per tensor."""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")
# 2^25 elements: 128 MB per float32 temporary — small beside an SD1.5 UNet (860 M weights), large enough that
# SD1.5's 686 tensors make ~30 chunks.
CHUNK_ELEMENTS = 1 << 25


def chunked(items: Sequence[T], numel: Callable[[T], int], budget: int = CHUNK_ELEMENTS) -> Iterator[list[T]]:
    """Consecutive runs of `items` whose numel() sum stays within `budget` (an item larger than it comes alone)."""
    chunk: list[T] = []
    size = 0
    for item in items:
        n = numel(item)
        if chunk and size + n > budget:
            yield chunk
            chunk, size = [], 0
        chunk.append(item)
        size += n
    if chunk:
        yield chunk
