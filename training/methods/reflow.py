"""Reflow and one-step distillation of the straightened flow: InstaFlow (Liu et al., ICLR 2024, Sec. 3; reflow is
"Flow Straight and Fast", ICLR 2023, Alg. 1), in the flow convention of onestep/flow.py (σ = noise fraction,
model time τ = 1000·σ, velocity v = x − z; formulas and defaults in docs/methods.md).

`reflow` (→ a 2-rectified flow, file method "2-rectified-flow"): the teacher's UNet becomes a velocity model v(X_σ, τ | c)
— the same network, trained from the teacher's weights whatever it predicted (ε or v); its time input keeps its
direction (the noise end at 1000) — on the teacher's ODE couplings (z, c, x) of a pairs dataset:
    L = ‖v(X_σ, 1000σ | c̃) − (x − z)‖²,  X_σ = (1 − σ)·x + σ·z,  σ ~ U(t_eps, 1),
    c̃ = the dataset's negative (empty) prompt with probability text_dropout, else c   (CFG on velocities).
`instaflow` (file method "instaflow"): the regression method (regression.py) with the flow generator
G(z, c) = z + v(z, 1000 | c) fitted to pairs of the 2-RF model's own Euler ODE, by latent MSE or E-LatentLPIPS.
`instaflow-gan` (file method "instaflow"): the same with the Diffusion2GAN method's conditional GAN term added
(InstaFlow's optional GAN, issue 17: "measure whether it helps"); D re-noises real and fake in the flow convention
(training/discriminator.diffuse: (1 − s)·x + s·ε at model time 1000·s, s ≤ d_t_max/1000).
"""
from __future__ import annotations

from functools import partial

import torch

from ..core import OneStepSpec, flow
from ..host_to_device import to_device
from ..losses import MicroBatch
from ..unet_interface import ModelInfo
from .base import PAIRS, Backward, Method, Phase
from .diffusion2gan import Diffusion2GAN
from .regression import Regression

FLOW_SPEC = OneStepSpec("flow", flow.FLOW_TIME_SCALE, "sigma_z")  # one call at the noise end: x0 = z + v(z, 1000)


def check_flow_spec(method: str, spec: OneStepSpec) -> None:
    """Refuse a generator spec other than the flow's single call at the noise end (what the files of these methods say)."""
    if spec.prediction != "flow" or spec.timestep != flow.FLOW_TIME_SCALE:
        raise ValueError(f"the {method} method trains a velocity model: its generator must be prediction 'flow' at timestep "
                         f"{flow.FLOW_TIME_SCALE:g} (x0 = z + v), not {spec.prediction!r} at {spec.timestep:g}")


class ReflowLoss:
    """The reflow velocity loss; returns per-micro-batch terms {"velocity_mse", "total"}."""

    def __init__(self, t_eps: float, text_dropout: float, uncond: dict[str, torch.Tensor] | None = None):
        if text_dropout > 0 and uncond is None:
            raise ValueError("text dropout needs the empty prompt's conditioning: train on a pairs dataset (its negative prompt), or set text_dropout 0")
        self.t_eps, self.text_dropout, self.uncond = t_eps, text_dropout, uncond

    def draw_sigma(self, n: int, rng: torch.Generator) -> torch.Tensor:
        """σ ~ U(t_eps, 1) [n] (float32, CPU)."""
        return self.t_eps + (1.0 - self.t_eps) * torch.rand(n, generator=rng)

    def conditioning(self, mb: MicroBatch) -> tuple[torch.Tensor, dict]:
        """(context, extra) with each item's text replaced by the empty prompt's with probability text_dropout."""
        if self.text_dropout == 0:
            return mb.context, mb.extra
        drop = to_device(torch.rand(len(mb.context), generator=mb.rng) < self.text_dropout, mb.context.device)
        null = self.uncond["context"].to(mb.context.device, mb.context.dtype)
        if null.shape != mb.context.shape[1:]:
            raise ValueError(f"the empty prompt's conditioning {tuple(null.shape)} does not fit the prompts' {tuple(mb.context.shape[1:])}")
        context = torch.where(drop.view(-1, 1, 1), null, mb.context)
        extra = dict(mb.extra)
        for key in ("pooled", "size"):  # a dropped item takes the negative's pooled text and SDXL size conditioning too
            if key in extra and key in self.uncond:
                extra[key] = torch.where(drop.view(-1, 1), self.uncond[key].to(extra[key]), extra[key])
        return context, extra

    def __call__(self, unet, mb: MicroBatch) -> dict[str, torch.Tensor]:
        sigma = to_device(self.draw_sigma(len(mb.z), mb.rng), mb.z.device)
        context, extra = self.conditioning(mb)
        v = unet(flow.interpolate(mb.z, mb.real, sigma), flow.model_time(sigma), context, **extra)
        loss = (v.float() - flow.velocity_target(mb.z, mb.real).float()).pow(2).mean()
        return {"velocity_mse": loss, "total": loss}


class Reflow(Method):
    """min_v E‖v(X_σ, 1000σ | c̃) − (x − z)‖² over the teacher's couplings; one phase: the velocity model G."""

    name = "reflow"
    file_method = "2-rectified-flow"
    data = PAIRS
    generator_spec = FLOW_SPEC  # the spec the CLI gives this method when none is asked for

    def prepare(self, info: ModelInfo) -> None:
        check_flow_spec(self.name, self.config.generator.spec)
        r = self.config.reflow
        self.loss = ReflowLoss(r.t_eps, r.text_dropout, self.resources.empty_prompt() if r.text_dropout > 0 else None)

    def build(self, engine) -> list:
        if self.loss.uncond is not None:  # the empty prompt lives on the device: no copy of it in every step
            self.loss.uncond = {k: v if v is None else v.to(engine.device, torch.float32) for k, v in self.loss.uncond.items()}
        return []

    def phases(self, engine, step: int) -> list[Phase]:
        return [Phase("generator", partial(self._velocity, engine))]

    def _velocity(self, engine, mb: MicroBatch, backward: Backward) -> dict:
        with backward.autocast():
            terms = self.loss(engine.unet, mb)
        backward(terms["total"])
        return terms


class OneStepFlow:
    """What both one-step flow methods share (a mixin before their base method): the flow generator spec, checked, and
    the file method `instaflow`."""

    file_method = "instaflow"
    generator_spec = FLOW_SPEC

    def prepare(self, info: ModelInfo) -> None:
        check_flow_spec(self.name, self.config.generator.spec)
        super().prepare(info)


class InstaFlow(OneStepFlow, Regression):
    """One-step distillation of a (2-)rectified flow: min E d(z + v(z, 1000 | c), x) over the flow's own Euler pairs."""

    name = "instaflow"


class InstaFlowGAN(OneStepFlow, Diffusion2GAN):
    """InstaFlow's one-step distillation + the conditional diffusion GAN of Diffusion2GAN (networks G and D); with the
    discriminator switched off it is `instaflow`. D is a copy of the MODEL's encoder (the 2-RF's when the 2-RF is the
    MODEL; else the teacher's), built before G's weights change."""

    name = "instaflow-gan"
