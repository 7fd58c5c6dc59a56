"""Diffusion2GAN (Kang et al., ECCV 2024, Eq. 5 and Sec. 4.2): regression of the teacher's pairs, then a conditional
diffusion GAN whose discriminator D is a copy of the teacher UNet's encoder (training/discriminator.py).

Each step after the regression-only warm-up has two phases: G on L_G = d(G(z,c), x) + λ·softplus(−D(x̂_t, t, z, c))
(losses.GeneratorLoss; λ fixed or adaptive), then D on the detached fakes of that step (losses.DiscriminatorLoss:
real vs fake, mix-and-match fakes, lazy single-sample R1 in its own backward). "Real" is the teacher's output of the
pair (the paper), or a real image of the same prompt (DiscriminatorConfig.real_images; training/real_images.py). D's
updates may start d_lead_steps before G's GAN term (LossConfig), so G first listens to a D that already discriminates;
with hold_generator G stands still until then (generator_start), so a GAN-trained student D leads against keeps its gain.
With the discriminator switched off (DiscriminatorConfig.enabled) it is the regression method.
"""
from __future__ import annotations

import contextlib
from functools import partial

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from .. import lora
from ..data import derived_seed
from ..discriminator import ConditionalDiffusionDiscriminator
from ..discriminator_watch import DiscriminatorWatch
from ..losses import DiscriminatorLoss, GeneratorLoss, MicroBatch
from ..real_images import RealImages
from ..unet_interface import ModelInfo, store_frozen
from .base import Backward, ExtraNetwork, Phase
from .regression import Regression


def build_discriminator(unet, config) -> ConditionalDiffusionDiscriminator:
    """D from the teacher's encoder, or its whole UNet for decoder readouts (call before G's weights change). A LoRA
    backbone with a LoRA generator shares G's frozen weights: G's own LoRA is added afterwards and freezes the same
    tensors."""
    c, dc = config, config.discriminator
    d_init = torch.Generator().manual_seed(derived_seed(c.seed, -1))
    copy = unet.decoder_copy if dc.readout == "decoder" else unet.encoder_copy
    d_on = partial(ConditionalDiffusionDiscriminator, z_conditioning=dc.z_conditioning, multiscale=dc.multiscale,
                   head_channels=dc.head_channels, generator=d_init, readout=dc.readout, mbstd_group=dc.mbstd_group)
    if dc.backbone == "full":
        return d_on(copy()).requires_grad_(True)
    encoder = copy(share_weights=c.generator.lora_rank > 0)
    lora.add_lora(encoder, encoder.lora_targets(), dc.lora_rank, 0.0, torch.Generator().manual_seed(derived_seed(c.seed, -5)))
    d = d_on(encoder)
    store_frozen(d, getattr(torch, c.generator.frozen_dtype))
    return d


class Diffusion2GAN(Regression):
    """Regression + conditional diffusion GAN; networks: G and D."""

    name = "diffusion2gan"
    file_method = "diffusion2gan"
    # D's Adam β2 0.99 (G keeps 0.999): with 0.999 the second moments of D's large early gradients kept its steps ~100×
    # too small once G caught up, and D went flat for good (proof-scale run 10); with 0.99 it stayed alive through
    # all 1,330 GAN steps of run 12. β1 stays 0.9: StyleGAN2's β1 = 0 kept this D from learning at all (runs 11, 12).
    optim_defaults = {"betas_d": (0.9, 0.99)}

    def prepare(self, info: ModelInfo) -> None:
        super().prepare(info)
        c, dc = self.config, self.config.discriminator
        t_range = (dc.d_t_min, dc.d_t_max)
        if dc.enabled and dc.real_images and c.loss.gan_loss != "standard":
            raise ValueError(f"a discriminator on real images needs gan_loss 'standard': {c.loss.gan_loss!r} scores each fake against its own teacher pair")
        self.g_loss = GeneratorLoss(self.regression, c.generator.spec, c.loss.gan_weight, t_range, c.loss.gan_balance, c.loss.gan_scale_max,
                                    c.loss.gan_loss)
        self.d_loss = DiscriminatorLoss(c.generator.spec, t_range, dc.mix_and_match, dc.z_conditioning, dc.r1_gamma, dc.r1_every,
                                        dc.r1_mode, dc.r1_sigma, c.loss.gan_loss) if dc.enabled else None
        self.discriminator: ConditionalDiffusionDiscriminator | None = None
        self.watch: DiscriminatorWatch | None = None
        self.real_images: RealImages | None = None  # D's real side when set (DiscriminatorConfig.real_images), else the pairs

    def build(self, engine) -> list[ExtraNetwork]:
        super().build(engine)
        c, dc, o = self.config, self.config.discriminator, self.config.optim
        if not dc.enabled:
            return []
        self.discriminator = build_discriminator(engine.unet, c)
        if dc.real_images:
            self.real_images = RealImages.load(dc.real_images, engine.info, engine.device)
        self.watch = DiscriminatorWatch(o.lr_d)
        if c.generator.gradient_checkpointing:
            self.discriminator.encoder.set_gradient_checkpointing(True)
        return [ExtraNetwork("discriminator", "d", self.discriminator, o.lr_d, o.optimizer_d or o.optimizer, dc.storage_dtype, derived_seed(c.seed, -4))]

    def notice(self, step: int, logs: dict) -> str | None:
        return self.watch(step, logs) if self.watch is not None else None

    def generator_start(self) -> int:
        loss = self.config.loss
        return loss.warmup_steps if loss.hold_generator and self.config.discriminator.enabled else 0

    def phases(self, engine, step: int) -> list[Phase]:
        loss = self.config.loss
        use_gan = self.discriminator is not None and step >= loss.warmup_steps
        train_d = self.discriminator is not None and step >= loss.warmup_steps - loss.d_lead_steps
        ramp = min(1.0, (step - loss.warmup_steps + 1) / loss.gan_ramp_steps) if use_gan and loss.gan_ramp_steps else 1.0
        phases = [Phase("generator", partial(self._generator_gan, engine, use_gan, ramp))]
        if train_d:
            phases.append(Phase("discriminator", partial(self._discriminator, step % self.config.discriminator.r1_every == 0)))
        return phases

    def _generator_gan(self, engine, use_gan: bool, ramp: float, mb: MicroBatch, backward: Backward) -> dict:
        with backward.autocast():
            terms, fake = self.g_loss(engine.generator, self.discriminator if use_gan else None, mb, ramp)
        backward(terms.pop("objective", terms["total"]))
        mb.outputs["fake"] = fake  # D's step of this training step reads it
        return terms

    def _discriminator(self, apply_r1: bool, mb: MicroBatch, backward: Backward) -> dict:
        real = self.real_images.draw(mb.prompt_index, mb.rng) if self.real_images is not None else None
        return discriminator_update(self.d_loss, self.discriminator, mb.outputs["fake"], mb, backward, apply_r1, real)


def discriminator_update(loss: DiscriminatorLoss, d: ConditionalDiffusionDiscriminator, fake: torch.Tensor, mb: MicroBatch,
                         backward: Backward, apply_r1: bool, real: torch.Tensor | None = None, drawn: dict | None = None) -> dict:
    """D's phase on one micro-batch: the adversarial terms (real: mb.real unless given), then on R1 steps the penalty.
    R1 gets its own backward: only it differentiates D twice, so only it runs under the plain (math) attention kernel
    (the fused ones have no double backward; gradient checkpointing recomputes the forward inside the backward, so the
    context covers both). The adversarial terms keep the fused kernels on R1 steps too; under the math kernel a
    4×B-item D pass stores full attention matrices, which set the R1 steps' memory peak. `drawn`: loss.draws()'s
    tensors for this micro-batch (else each pass draws from mb.rng)."""
    with backward.autocast():
        terms, r1_input = loss.adversarial(d, fake, mb, real, drawn)
    backward(terms["total"])
    if apply_r1 and loss.r1_gamma > 0:
        with sdpa_kernel(SDPBackend.MATH) if loss.r1_mode == "exact" else contextlib.nullcontext():
            with backward.autocast():
                r1 = loss.penalty(d, r1_input, mb, drawn)
            backward(r1)
        terms["r1"] = r1
        terms["total"] = terms["total"].detach() + r1.detach()
    return terms
