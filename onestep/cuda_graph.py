"""CUDA-graph replay of a fixed-shape call, cached per key (torch.cuda.CUDAGraph).

A one-step generator at batch 1 is launch-bound: the GPU idles while Python issues hundreds of kernels.
Capturing the call once per (model weights, shapes) and replaying it removes that overhead. Inputs are
copied into static buffers before each replay; the output buffer is the graph's own, so callers clone it.
"""
from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Callable, Hashable

import torch

log = logging.getLogger("onestep")


class GraphCache:
    """LRU cache of captured graphs; `max_entries` bounds the GPU memory their pools hold."""

    def __init__(self, max_entries: int = 2, warmup: int = 2):
        self.max_entries = max_entries
        self.warmup = warmup
        self._graphs: OrderedDict[Hashable, tuple[torch.cuda.CUDAGraph, dict[str, torch.Tensor], torch.Tensor]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._graphs)

    def clear(self) -> None:
        self._graphs.clear()

    def run(
        self, key: Hashable, fn: Callable[..., torch.Tensor], inputs: dict[str, torch.Tensor], compile_mode: str | None = None
    ) -> torch.Tensor:
        """fn(**inputs) by graph replay (captured on first use of `key`); returns a fresh tensor.

        With `compile_mode` the function is first compiled by torch.compile (inductor fuses the many small
        kernels a graph alone only launches faster); that costs minutes on the first call of each key.
        """
        entry = self._graphs.get(key)
        if entry is None:
            entry = self._capture(torch.compile(fn, mode=compile_mode) if compile_mode else fn, inputs)
            self._graphs[key] = entry
            while len(self._graphs) > self.max_entries:
                self._graphs.popitem(last=False)
        else:
            self._graphs.move_to_end(key)
        graph, static, out = entry
        for name, value in inputs.items():
            static[name].copy_(value)
        graph.replay()
        return out.clone()

    def _capture(self, fn, inputs):
        static = {k: v.clone() for k, v in inputs.items()}
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):  # warm-up on a side stream, as capture requires
            for _ in range(self.warmup):
                fn(**static)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = fn(**static)
        log.info("[onestep] captured a CUDA graph for shapes %s", {k: tuple(v.shape) for k, v in inputs.items()})
        return graph, static, out
