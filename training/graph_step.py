"""A training step replayed as one CUDA graph (TrainConfig.cuda_graph): for steps bound by the host, not the GPU.

A small UNet's step is ~15,000 kernel launches (the proof-scale SiD-LSG step: five UNet forwards and four backwards),
and at batch ≤ 256 the GPU waits on Python and the launches most of the time (docs/benchmarks.md, session 40: busy
20 % at batch 64). Captured once, the whole step — every phase's forward, backward, gradient norm and optimiser
step — is replayed by one call. Unlike torch.compile it costs no compile: the capture records one step. With
TrainConfig.compile_blocks (a mode without CUDA graphs of its own) the warm-up steps compile every block variant and
tune its kernels, and the capture records inductor's fused kernels: fewer, faster kernels, still no host in between.

What the capture needs, and how the engine gives it:
- fixed input addresses: each step's micro-batch conditioning and its phases' random draws (Phase.draw: taken on the
  host from the micro-batch's generator, exactly as the eager step takes them) are copied into buffers made at the
  capture; the phases read those;
- no host sync inside: the phases' terms and gradient norms stay on the device (steps.step_captured) and are read
  once after the replay — a non-finite term then stops the run as the eager step does, but after the update (the
  last checkpoint, written before it, is what a resume starts from; checkpoints refuse non-finite weights);
- optimisers whose state and lr live on the device (AdamW capturable=True, lr a device tensor the schedule fills);
- nothing that changes with the step inside the graph: G's EMA (its weight ramps with the update count) is
  updated outside it, and a method whose phases differ from step to step is refused (Method.capturable).
The first WARMUP_STEPS steps of a process run eagerly on a side stream (torch's rule for capture: lazy
initialisations happen there), the next one is captured and replayed. One rank only (no collectives in the graph).
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from .host_to_device import copy_into
from .losses import MicroBatch
from .steps import NonFiniteLossError, step_captured

WARMUP_STEPS = 3  # eager steps of a process before its capture


def cuda_capture(body: Callable[[], dict], device: torch.device) -> Callable[[], dict]:
    """Capture body() as a CUDA graph (nothing runs now); the replay runs it and returns its output tensors."""
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, capture_error_mode="thread_local"):
        out = body()

    def replay() -> dict:
        graph.replay()
        return out

    return replay


def eager_capture(body: Callable[[], dict], device: torch.device) -> Callable[[], dict]:
    """The capture's contract without CUDA (tests on the CPU): nothing runs now, each replay runs body() again on
    the same buffers."""
    return body


class GraphedStep:
    """The engine's step as a captured graph; call it with a step's micro-batches in place of the eager phases."""

    def __init__(self, engine, capture: Callable = cuda_capture):
        self.engine, self.capture = engine, capture
        self.eager_steps = 0
        self.replay: Callable[[], dict] | None = None
        self.signature: tuple | None = None
        self.mbs: list[MicroBatch] = []
        self.drawn: list[list[dict]] = []  # [phase][micro-batch] name → device buffer
        self.lrs: list[torch.Tensor] = []  # the lr tensors the capture read

    def __call__(self, mbs: list[MicroBatch], step: int) -> dict[str, float] | None:
        """Run the step's phases from the captured graph (capturing it first when due); None while still warming up
        (the engine then runs the eager step)."""
        e = self.engine
        phases = e.method.phases(e, e.step)
        signature = tuple((p.network, p.draw is not None) for p in phases) + tuple(self._shapes(mb) for mb in mbs)
        if self.replay is not None and signature != self.signature:
            raise ValueError("the step's phases or batch shapes changed after its CUDA graph was captured; "
                             "cuda_graph needs the same phases and batch at every step")
        if any(p.draw is None for p in phases):
            raise ValueError(f"the {e.method.name} method's phases draw for themselves: cuda_graph cannot replay them")
        if self.replay is None and self.eager_steps < WARMUP_STEPS:
            self.eager_steps += 1  # before any draw: the eager step takes this step's draws itself
            return None
        drawn = [[p.draw(mb) for mb in mbs] for p in phases]  # host tensors, in the eager step's order
        if self.replay is None:
            self._make_buffers(mbs, drawn)
            self.signature = signature
            self._fill(mbs, drawn)
            self.lrs = self._lr_tensors()
            self.replay = self.capture(lambda: self._body(phases), e.device)
        else:
            if any(a is not b for a, b in zip(self._lr_tensors(), self.lrs)):
                raise RuntimeError("an optimiser's lr tensor was replaced after the CUDA-graph capture: the graph would go on "
                                   "reading the old one (the engine fills the lr in place)")
            self._fill(mbs, drawn)
        out = self.replay()
        names = list(out)
        values = torch.stack([out[k].float().reshape(()) for k in names]).tolist() if names else []
        terms = dict(zip(names, values))
        for name, value in terms.items():
            if value != value or value in (float("inf"), float("-inf")):
                raise NonFiniteLossError(f"non-finite loss term or gradient norm {name!r} = {value} at step {step} "
                                         "(CUDA-graph step: this step's update has run; the last checkpoint precedes it)")
        return terms

    def _lr_tensors(self) -> list:
        """Every optimiser group's lr where it is a tensor (a captured step reads it by address)."""
        groups = [g for net in self.engine.networks.values() for g in net.optimizer.param_groups]
        return [g["lr"] for g in groups if isinstance(g["lr"], torch.Tensor)]

    # -- buffers --------------------------------------------------------------------------------------------
    @staticmethod
    def _shapes(mb: MicroBatch) -> tuple:
        return (tuple(mb.context.shape), tuple(sorted((k, tuple(v.shape)) for k, v in mb.extra.items())))

    def _make_buffers(self, mbs: list[MicroBatch], drawn: list[list[dict]]) -> None:
        dev = self.engine.device
        self.mbs = [MicroBatch(z=None, real=None, latent=None, context=torch.empty_like(mb.context),
                               extra={k: torch.empty_like(v) for k, v in mb.extra.items()},
                               seed=None, prompt_index=None, rng=None) for mb in mbs]
        self.drawn = [[{k: torch.empty(v.shape, dtype=v.dtype, device=dev) for k, v in d.items()} for d in per_mb] for per_mb in drawn]

    def _fill(self, mbs: list[MicroBatch], drawn: list[list[dict]]) -> None:
        """This step's conditioning and draws into the buffers (host → device copies queued, no wait)."""
        for buf, mb in zip(self.mbs, mbs):
            buf.context.copy_(mb.context)
            for k, v in mb.extra.items():
                buf.extra[k].copy_(v)
        for bufs, per_mb in zip(self.drawn, drawn):
            for buf, d in zip(bufs, per_mb):
                for k, v in d.items():
                    copy_into(buf[k], v)

    def _body(self, phases) -> dict:
        """Every phase's update and optimiser step on the buffers; the terms as device tensors (later phases' terms
        of the same name win, as in the eager step)."""
        terms: dict[str, torch.Tensor] = {}
        for phase, drawn in zip(phases, self.drawn):
            terms.update(step_captured(self.engine, phase, self.mbs, drawn))
        return terms
