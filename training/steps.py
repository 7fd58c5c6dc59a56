"""One Diffusion2GAN optimiser step of G and one of D (Kang et al. 2024, Sec. 4), as plain functions.

G steps first (its forward gives the fakes), then D steps on those fakes, detached. Each step accumulates
gradients over this rank's micro-batches, averages loss terms and gradients over ranks, raises on a non-finite
term or gradient before any weight changes, clips and steps.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from .distributed import DistInfo, average_gradients, average_terms
from .losses import DiscriminatorLoss, GeneratorLoss, MicroBatch


class NonFiniteLossError(FloatingPointError):
    """A loss term or gradient norm became NaN/inf; the message names the step and the term."""


@dataclass
class StepParts:
    """What the step functions act on."""

    generator: nn.Module  # OneStepGenerator around the trainable UNet
    discriminator: nn.Module | None  # ConditionalDiffusionDiscriminator (None: regression only)
    g_loss: GeneratorLoss
    d_loss: DiscriminatorLoss | None
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer | None
    grad_clip: float  # max gradient norm (0: none)
    bf16: bool  # bfloat16 autocast for the forward passes
    dist: DistInfo


def _autocast(parts: StepParts, device: torch.device):
    if not parts.bf16:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def _finish(parts: StepParts, opt: torch.optim.Optimizer, terms: dict[str, float], step: int, who: str, device: torch.device) -> dict[str, float]:
    """Average over ranks, check finiteness, average gradients, clip, step."""
    terms = average_terms(terms, parts.dist, device)
    for name, value in terms.items():
        if not math.isfinite(value):
            raise NonFiniteLossError(f"non-finite {who} loss term {name!r} = {value} at step {step}")
    params = [p for g in opt.param_groups for p in g["params"] if p.requires_grad]
    average_gradients(params, parts.dist)
    norm = torch.nn.utils.clip_grad_norm_(params, parts.grad_clip if parts.grad_clip > 0 else float("inf"))
    if not math.isfinite(float(norm)):
        raise NonFiniteLossError(f"non-finite {who} gradient norm ({float(norm)}) at step {step}")
    terms[f"grad_norm_{who[0]}"] = float(norm)
    opt.step()
    opt.zero_grad(set_to_none=True)  # free the gradients now: G's are not held through D's step, nor D's through G's
    return terms


def generator_step(parts: StepParts, batches: list[MicroBatch], step: int, use_gan: bool) -> tuple[dict[str, float], list[torch.Tensor]]:
    """One G update on this rank's micro-batches; (averaged terms, detached fakes per micro-batch)."""
    d = parts.discriminator if use_gan else None
    d_params = [p for g in parts.opt_d.param_groups for p in g["params"]] if d is not None else []
    for p in d_params:  # only D's trained weights: a LoRA backbone's frozen ones are G's own
        p.requires_grad_(False)
    parts.opt_g.zero_grad(set_to_none=True)
    sums: dict[str, float] = {}
    fakes = []
    device = batches[0].z.device
    try:
        for mb in batches:
            with _autocast(parts, device):
                terms, fake = parts.g_loss(parts.generator, d, mb)
            (terms.pop("objective", terms["total"]) / len(batches)).backward()
            fakes.append(fake)
            for k, v in terms.items():
                key = "g_total" if k == "total" else k
                sums[key] = sums.get(key, 0.0) + float(v.detach()) / len(batches)
    finally:
        for p in d_params:
            p.requires_grad_(True)
    return _finish(parts, parts.opt_g, sums, step, "generator", device), fakes


def discriminator_step(parts: StepParts, batches: list[MicroBatch], fakes: list[torch.Tensor], step: int, apply_r1: bool) -> dict[str, float]:
    """One D update: real vs fake vs mix-and-match, with R1 when apply_r1."""
    parts.opt_d.zero_grad(set_to_none=True)
    sums: dict[str, float] = {}
    device = batches[0].z.device
    # R1 gets its own backward: only it differentiates D twice, so only it runs under the plain (math) attention
    # kernel (the fused ones have no double backward; gradient checkpointing recomputes the forward inside the
    # backward, so the context covers both). The adversarial terms keep the fused kernels on R1 steps too; under
    # the math kernel a 4×B-item D pass stores full attention matrices, which set the R1 steps' memory peak.
    loss = parts.d_loss
    use_r1 = apply_r1 and loss.r1_gamma > 0
    for mb, fake in zip(batches, fakes):
        with _autocast(parts, device):
            terms, r1_input = loss.adversarial(parts.discriminator, fake, mb)
        (terms["total"] / len(batches)).backward()
        if use_r1:
            kernel = sdpa_kernel(SDPBackend.MATH) if loss.r1_mode == "exact" else contextlib.nullcontext()
            with kernel:
                with _autocast(parts, device):
                    r1 = loss.penalty(parts.discriminator, r1_input, mb)
                (r1 / len(batches)).backward()
            terms["r1"] = r1
            terms["total"] = terms["total"].detach() + r1.detach()
        for k, v in terms.items():
            key = "d_total" if k == "total" else k
            sums[key] = sums.get(key, 0.0) + float(v.detach()) / len(batches)
    return _finish(parts, parts.opt_d, sums, step, "discriminator", device)
