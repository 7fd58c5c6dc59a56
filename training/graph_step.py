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
  updated outside it; phases that differ between steps say so in Phase.variant (SiD-LSG's live GAN: D's lazy-R1 steps,
  the lead while G is held), and each list of phases gets its own capture (one memory pool each); a method whose
  phases draw for themselves is refused (Method.capturable).
The first WARMUP_STEPS steps of a process — and of each new list of phases — run eagerly on a side stream (torch's
rule for capture: lazy initialisations, such as an optimiser's state, happen there), the next one is captured and
replayed. One rank only (no collectives in the graph).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

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


@dataclass
class _Capture:
    """One captured step: its replay and the buffers it reads (the micro-batches' conditioning, each phase's draws)."""

    replay: Callable[[], dict]
    mbs: list[MicroBatch]
    drawn: list[list[dict]]  # [phase][micro-batch] name → device buffer
    lrs: list[torch.Tensor]  # the lr tensors the capture read


class GraphedStep:
    """The engine's step as a captured graph; call it with a step's micro-batches in place of the eager phases. A method
    whose phases differ between steps (Phase.variant: D's lazy-R1 steps, a lead before G trains) gets one capture per
    list of phases, each after its own warm-up steps (an optimiser's state is made at its network's first step)."""

    def __init__(self, engine, capture: Callable = cuda_capture):
        self.engine, self.capture = engine, capture
        self.eager_steps = 0  # in all
        self.warm: dict[tuple, int] = {}  # eager steps per list of phases
        self.captures: dict[tuple, _Capture] = {}
        self.shapes: tuple | None = None  # the micro-batches' shapes every capture holds
        self.replay: Callable[[], dict] | None = None  # the last step's

    def __call__(self, mbs: list[MicroBatch], step: int) -> dict[str, float] | None:
        """Run the step's phases from the captured graph (capturing it first when due); None while still warming up
        (the engine then runs the eager step)."""
        e = self.engine
        phases = e.method.phases(e, e.step)
        if any(p.draw is None for p in phases):
            raise ValueError(f"the {e.method.name} method's phases draw for themselves: cuda_graph cannot replay them")
        shapes = tuple(self._shapes(mb) for mb in mbs)
        if self.shapes is not None and shapes != self.shapes:
            raise ValueError("the step's batch shapes changed after its CUDA graph was captured; "
                             "cuda_graph needs the same batch at every step")
        signature = tuple((p.network, p.variant) for p in phases)
        graph = self.captures.get(signature)
        if graph is None and self.warm.get(signature, 0) < WARMUP_STEPS:
            self.warm[signature] = self.warm.get(signature, 0) + 1  # before any draw: the eager step takes them itself
            self.eager_steps += 1
            return None
        drawn = [[p.draw(mb) for mb in mbs] for p in phases]  # host tensors, in the eager step's order
        if graph is None:
            self.shapes = shapes
            buffers_mbs, buffers = self._make_buffers(mbs, drawn)
            self._fill(buffers_mbs, buffers, mbs, drawn)
            lrs = self._lr_tensors()
            replay = self.capture(lambda: self._body(phases, buffers_mbs, buffers), e.device)
            graph = self.captures[signature] = _Capture(replay, buffers_mbs, buffers, lrs)
        else:
            if any(a is not b for a, b in zip(self._lr_tensors(), graph.lrs)):
                raise RuntimeError("an optimiser's lr tensor was replaced after the CUDA-graph capture: the graph would go on "
                                   "reading the old one (the engine fills the lr in place)")
            self._fill(graph.mbs, graph.drawn, mbs, drawn)
        self.replay = graph.replay
        out = graph.replay()
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

    def _make_buffers(self, mbs: list[MicroBatch], drawn: list[list[dict]]) -> tuple[list[MicroBatch], list[list[dict]]]:
        dev = self.engine.device
        buf_mbs = [MicroBatch(z=None, real=None, latent=None, context=torch.empty_like(mb.context),
                              extra={k: torch.empty_like(v) for k, v in mb.extra.items()},
                              seed=None, prompt_index=None, rng=None) for mb in mbs]
        bufs = [[{k: torch.empty(v.shape, dtype=v.dtype, device=dev) for k, v in d.items()} for d in per_mb] for per_mb in drawn]
        return buf_mbs, bufs

    @staticmethod
    def _fill(buf_mbs: list[MicroBatch], bufs: list[list[dict]], mbs: list[MicroBatch], drawn: list[list[dict]]) -> None:
        """This step's conditioning and draws into a capture's buffers (host → device copies queued, no wait)."""
        for buf, mb in zip(buf_mbs, mbs):
            buf.context.copy_(mb.context)
            for k, v in mb.extra.items():
                buf.extra[k].copy_(v)
        for per_phase, per_mb in zip(bufs, drawn):
            for buf, d in zip(per_phase, per_mb):
                if d.keys() != buf.keys() or any(buf[k].shape != v.shape for k, v in d.items()):
                    raise ValueError("a phase's draws changed their names or shapes under the same Phase.variant; a "
                                     "CUDA-graph step replays what its capture drew: "
                                     f"{sorted(buf)} vs {sorted(d)}")
                for k, v in d.items():
                    copy_into(buf[k], v)

    def _body(self, phases, mbs: list[MicroBatch], drawn: list[list[dict]]) -> dict:
        """Every phase's update and optimiser step on a capture's buffers; the terms as device tensors (later phases'
        terms of the same name win, as in the eager step)."""
        terms: dict[str, torch.Tensor] = {}
        for phase, per_phase in zip(phases, drawn):
            terms.update(step_captured(self.engine, phase, mbs, per_phase))
        return terms
