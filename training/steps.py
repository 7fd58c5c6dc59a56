"""One phase of a training step (training/methods/base.py): one network's optimiser step, as a plain function.

The phase's update runs on each of this rank's micro-batches (forward, backward of its loss / the micro-batch
count); then the loss terms and gradients are averaged over ranks, a non-finite term or gradient norm raises before
any weight changes, the gradients are clipped and the optimiser steps. The other networks' trained weights are
frozen meanwhile, so no gradient is computed for them (Diffusion2GAN's G step through D leaves D's alone).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .distributed import DistInfo, average_gradients, average_terms
from .host_to_device import dict_to_device
from .losses import MicroBatch
from .methods.base import Backward, Phase


class NonFiniteLossError(FloatingPointError):
    """A loss term or gradient norm became NaN/inf; the message names the step and the term."""


def trained_parameters(optimizer) -> list[nn.Parameter]:
    """The parameters an optimiser updates (requires_grad may be off while another network's phase runs)."""
    return [p for g in optimizer.param_groups for p in g["params"]]


def _finish(opt, terms: dict[str, float], step: int, who: str, key: str, grad_clip: float, dist: DistInfo, device: torch.device) -> dict[str, float]:
    """Average over ranks, check finiteness, average gradients, clip, step."""
    terms = average_terms(terms, dist, device)
    for name, value in terms.items():
        if not math.isfinite(value):
            raise NonFiniteLossError(f"non-finite {who} loss term {name!r} = {value} at step {step}")
    params = [p for p in trained_parameters(opt) if p.requires_grad]
    average_gradients(params, dist)
    norm = torch.nn.utils.clip_grad_norm_(params, grad_clip if grad_clip > 0 else float("inf"))
    if not math.isfinite(float(norm)):
        raise NonFiniteLossError(f"non-finite {who} gradient norm ({float(norm)}) at step {step}")
    terms[f"grad_norm_{key}"] = float(norm)
    opt.step()
    opt.zero_grad(set_to_none=True)  # free the gradients now: one network's are not held through another's phase
    return terms


def draw_on_device(phase: Phase, mb: MicroBatch, device: torch.device) -> dict | None:
    """The phase's draws for a micro-batch, moved to the device (None for a phase that draws for itself)."""
    return None if phase.draw is None else dict_to_device(phase.draw(mb), device)


def accumulate(engine, phase: Phase, batches: list[MicroBatch], drawn: list[dict] | None = None) -> dict[str, torch.Tensor]:
    """The phase's forward and backward passes over the micro-batches (gradients summed in the network's .grad), its
    terms averaged over them as device tensors — no host sync, so a CUDA graph can capture it. `drawn`: each
    micro-batch's draws already on the device (a captured step's buffers); else taken here."""
    net = engine.networks[phase.network]
    frozen = [p for other in engine.networks.values() if other is not net for p in trained_parameters(other.optimizer)]
    for p in frozen:
        p.requires_grad_(False)
    net.optimizer.zero_grad(set_to_none=True)
    # a CUDA-graph run autocasts without the cast cache (not made for capture) in its warm-up steps too: torch.compile
    # guards on the autocast state, and a block variant first compiled inside the capture breaks it
    backward = Backward(len(batches), engine.config.bf16, engine.device, cast_cache=engine.graphed is None)
    sums: dict[str, torch.Tensor] = {}
    try:
        for j, mb in enumerate(batches):
            d = drawn[j] if drawn is not None else draw_on_device(phase, mb, engine.device)
            terms = phase.update(mb, backward) if d is None else phase.update(mb, backward, d)
            for k, v in terms.items():
                name = f"{net.key}_total" if k == "total" else k
                v = v.detach().float() if isinstance(v, torch.Tensor) else torch.tensor(float(v))
                sums[name] = sums.get(name, 0.0) + v / len(batches)
    finally:
        for p in frozen:
            p.requires_grad_(True)
    return sums


def step_captured(engine, phase: Phase, batches: list[MicroBatch], drawn: list[dict]) -> dict[str, torch.Tensor]:
    """One optimiser step of the phase's network with no host sync (training/graph_step.py captures it): the terms and
    gradient norm stay on the device, where the caller checks them after the replay (one rank: no averaging)."""
    net = engine.networks[phase.network]
    terms = accumulate(engine, phase, batches, drawn)
    params = [p for p in trained_parameters(net.optimizer) if p.requires_grad]
    grad_clip = engine.config.optim.grad_clip
    terms[f"grad_norm_{net.key}"] = torch.nn.utils.clip_grad_norm_(params, grad_clip if grad_clip > 0 else float("inf"), foreach=True)
    net.optimizer.step()
    net.optimizer.zero_grad(set_to_none=True)
    return terms


def run_phase(engine, phase: Phase, batches: list[MicroBatch], step: int) -> dict[str, float]:
    """One optimiser step of the phase's network over this rank's micro-batches (step: 1-based, for messages);
    the averaged terms, "total" renamed "<key>_total"."""
    net = engine.networks[phase.network]
    sums = {k: float(v) for k, v in accumulate(engine, phase, batches).items()}
    return _finish(net.optimizer, sums, step, phase.network, net.key, engine.config.optim.grad_clip, engine.dist, engine.device)
