"""CUDA-graph replay of a fixed-shape call, cached per key (torch.cuda.CUDAGraph).

A one-step generator at batch 1 is launch-bound: the GPU idles while Python issues hundreds of kernels.
Capturing the call once per (model weights, shapes) and replaying it removes that overhead. Inputs are
copied into static buffers before each replay; the output buffer is the graph's own, so callers clone it.
With a compile mode and a folder set by the host adapter (`set_compile_cache_folder`), torch.compile's artifacts
persist there (onestep/compile_cache.py), so the compile is paid once per machine rather than once per process.
"""
from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Callable, Hashable

import torch

from .compile_cache import CompileArtifacts, artifacts_for, set_folder

log = logging.getLogger("onestep")


def set_compile_cache_folder(folder: str | None) -> None:
    """Where compile artifacts persist (None: nowhere); the host adapter gives a folder inside its own tree."""
    set_folder(folder)


def closure_modules(fn) -> list[torch.nn.Module]:
    """The nn.Modules a function closes over or is bound to: whose weights its compiled code depends on."""
    found = [getattr(fn, "__self__", None)] + [c.cell_contents for c in (getattr(fn, "__closure__", None) or ()) if _filled(c)]
    return [m for m in found if isinstance(m, torch.nn.Module)]


def _filled(cell) -> bool:
    try:
        cell.cell_contents
    except ValueError:  # an empty cell
        return False
    return True


def compile_artifacts(fn, inputs: dict[str, torch.Tensor], mode: str, modules=None) -> CompileArtifacts | None:
    """The persistent artifacts of compiling `fn` (one object per key and process, so it loads once), or None."""
    device = next(iter(inputs.values())).device
    return artifacts_for(closure_modules(fn) if modules is None else modules, device, mode)


class GraphCache:
    """LRU cache of captured graphs; `max_entries` bounds the GPU memory their pools hold."""

    def __init__(self, max_entries: int = 2, warmup: int = 2):
        self.max_entries = max_entries
        self.warmup = warmup
        self._graphs: OrderedDict[Hashable, tuple[torch.cuda.CUDAGraph, dict[str, torch.Tensor], torch.Tensor]] = OrderedDict()

    def __contains__(self, key: Hashable) -> bool:
        return key in self._graphs

    def __len__(self) -> int:
        return len(self._graphs)

    def clear(self) -> None:
        self._graphs.clear()

    def run(
        self, key: Hashable, fn: Callable[..., torch.Tensor], inputs: dict[str, torch.Tensor], compile_mode: str | None = None,
        modules: list[torch.nn.Module] | None = None,
    ) -> torch.Tensor:
        """fn(**inputs) by graph replay (captured on first use of `key`); returns a fresh tensor.

        With `compile_mode` the function is first compiled by torch.compile (inductor fuses the many small
        kernels a graph alone only launches faster); that costs minutes on the first call of each key, except where
        the persistent artifacts (keyed on `modules`' weights, default: those `fn` closes over) already hold it.
        """
        entry = self._graphs.get(key)
        if entry is None:
            artifacts = compile_artifacts(fn, inputs, compile_mode, modules) if compile_mode else None
            if artifacts is not None:
                artifacts.load()
            entry = self._capture(torch.compile(fn, mode=compile_mode) if compile_mode else fn, inputs)
            if artifacts is not None:
                artifacts.save()
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
