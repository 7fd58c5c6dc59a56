"""SiD-LSG: data-free one-step distillation by Score identity Distillation (Zhou et al., ICML 2024, the generator
loss of Eq. 14/16 with α) with Long-and-Short Guidance (Zhou et al., "Guided Score identity Distillation for
Data-Free One-Step Text-to-Image Generation", ICLR 2025), as the official loop runs it (mingyuanzhou/SiD-LSG).

Networks: the generator G (the engine's: the teacher UNet run once at t_init, GeneratorConfig.spec), the fake score
ψ (a trained copy of the teacher, an ExtraNetwork: checkpointed) and the teacher φ (a frozen copy, rebuilt from the
teacher, never checkpointed). Data: prompts only; the noise is drawn per step from the micro-batch's random source.
Each step has two phases (the first SidConfig.fake_steps times: 1 in the official loop):

  fake score  x_g = sg(G(z, c)), x_t = sqrt(ᾱ_t)·x_g + sqrt(1−ᾱ_t)·ε, t ~ U{t_min..t_max}; ψ's guided output at κ1
              regressed on ε (v teachers: on the velocity, weighted snr/(snr+1) = ᾱ_t); 10 % of the prompts replaced
              by the empty prompt when κ1 ≠ 1 or κ2 ≠ 1 (ψ then needs an unconditional score).
  generator   fresh z, ε, t; y_fake = x0 of ψ at CFG κ2 (= κ3), y_real = x0 of φ at CFG κ4 (ours: 1 at t below
              SidConfig.kappa4_t_min), both at x_t of x_g with gradients through both into x_g;
              w = mean_CHW |x_g − y_real| (no gradient, ≥ 1e-5);
              α = 1:  L = Σ_CHW[(y_real − y_fake)·(y_fake − x_g)] / w
              else:   L = Σ_CHW[(y_real − y_fake)·((y_real − x_g) − α·(y_real − y_fake))] / w
              averaged over the micro-batch. Samples with a non-finite x_g, y_fake or y_real are left out and counted.

Recall anchor (SidConfig.anchor_weight > 0, ours): the run trains on teacher pairs (their prompts condition both
phases; SiD's noise is still drawn fresh) and the generator phase adds G's output gradient of a regression
d(G(z_pair, c), x_teacher) (LossConfig.regression) on the pairs' own noise, rescaled per micro-batch so its norm is
anchor_weight × the SiD gradient's norm at G's output — the teacher's pairs hold G to the modes SiD's mode-seeking
drops (DMD's regression loss, in a form that does not depend on SiD's pixel-sum scale).

Live recall anchor (SidConfig.live_anchor_weight > 0, ours): the same term with the teacher's samples drawn in the
loop instead of collected pairs, so the run stays prompts-only: for the first live_anchor_items prompts of the
micro-batch, fresh noise z_a, x_a* = φ's deterministic sampler (DDIM, live_anchor_steps steps, CFG κ4 unless
live_anchor_cfg sets its own) from x_T = z_a, and the MSE of G(z_a, c) to x_a*, its output gradient rescaled per
micro-batch to live_anchor_weight × the SiD gradient's norm.

Live GAN (SidConfig.live_gan_weight > 0, ours): Diffusion2GAN's conditional diffusion GAN on the live anchor's pairs
— a discriminator D (training/discriminator.py, a copy of the teacher's encoder) learns φ's samples x_a* as real and
G(z_a, c) as fake (re-noised to t ~ U{d_t_min..d_t_max}, conditioned on z_a and c, mix-and-match and lazy R1 as in
Diffusion2GAN) in a third phase after G's, and G's gradient at G(z_a, c) gets D's non-saturating loss rescaled to
live_gan_weight × the SiD gradient's norm. Its real side is the teacher's own samples: the run stays prompts-only.
With live_gan_hold, G and ψ stand still before live_gan_start: each step is φ's samples, G(z_a, c) and D's update only.

Both losses sum over pixels and average over items, as the official code (SidConfig.reduction "mean" averages over
pixels too). docs/methods.md ("SiD-LSG") has the formulas, the defaults and what is a choice of ours (one prompt batch
for both phases, the NaN handling).
"""
from __future__ import annotations

from functools import partial
from typing import Protocol, runtime_checkable

import torch

from onestep.dpm_solver import dpmpp_2m_weights
from onestep.ranges import check_choice
from onestep.schedule import sampler_timesteps

from .. import lora
from ..config import LIVE_ANCHOR_SAMPLERS
from ..core import OneStepSpec, keep_output_float32
from ..data import derived_seed
from ..host_to_device import dict_to_device, to_device
from ..discriminator import ConditionalDiffusionDiscriminator, renoise_draws
from ..losses import DiscriminatorLoss, MicroBatch, generator_gan_loss
from ..unet_interface import ModelInfo, TrainableUNet, store_frozen
from .base import PAIRS, PROMPTS, Backward, ExtraNetwork, Method, Phase
from .diffusion2gan import Diffusion2GAN, build_discriminator, discriminator_update
from .regression import place_elpips, regression_loss
from .sid_losses import FakeScoreLoss, SidGeneratorLoss, alpha_bar, diffuse, finite_items, guided, x0_from_output

PREDICTIONS = ("eps", "v")  # teachers SiD-LSG trains here: ε- and v-prediction on a discrete VP schedule


@runtime_checkable
class CopyableUNet(TrainableUNet, Protocol):
    """What SiD-LSG needs from the teacher UNet beyond the engine's TrainableUNet: whole copies of it, for ψ and φ.
    The adapters (training/diffusers_unet.py, onestep_nodes/comfy_unet.py) implement it."""

    def full_copy(self, share_weights: bool = False) -> CopyableUNet:
        """A deep copy of the UNet; with share_weights its modules hold this UNet's own parameter and buffer tensors
        (unet_interface.copy_module)."""


class TeacherSampler:
    """φ's deterministic sampler from x_T = z in VP space at a fixed CFG. "ddim": DDIM with η = 0 (for an ε teacher
    exactly the Euler sampler in k-diffusion's σ space that ComfyUI and proof_scale/sampler.py run from
    sqrt(σ_max² + 1)·z): x0 = x0(φ^κ(x_t, t)), ε̂ = (x_t − sqrt(ᾱ_t)·x0)/sqrt(1 − ᾱ_t),
    x_next = sqrt(ᾱ_next)·x0 + sqrt(1 − ᾱ_next)·ε̂. "dpmpp_2m": the same step with x0 replaced by DPM-Solver++(2M)'s
    extrapolation D = a·x0 + b·x0_prev (onestep/dpm_solver.py; in VP space the σ-space step scaled by sqrt(ᾱ)), one
    teacher call a step as DDIM's. Timesteps at `spacing` (onestep.schedule.sampler_timesteps: DDIM's linspace, or
    uniform in log σ, where the second-order step gains most). The last step returns x0. Its timesteps and ᾱ are
    device tensors made once, so a call has no host sync (the step stays capturable in a CUDA graph)."""

    def __init__(self, spec: OneStepSpec, steps: int, kappa: float, device: torch.device, sampler: str = "ddim",
                 spacing: str = "linspace"):
        check_choice("the teacher sampler", sampler, LIVE_ANCHOR_SAMPLERS)
        ts = sampler_timesteps(spec.schedule, steps, spacing)
        self.prediction, self.kappa = spec.prediction, kappa
        self.t = ts.to(device, torch.float32)
        self.a = to_device(spec.schedule.alphas_cumprod()[ts], device, torch.float32)
        self.weights = None  # DPM++(2M)'s (a_i, b_i), host floats: constants in a captured graph
        if sampler == "dpmpp_2m":
            self.weights = dpmpp_2m_weights(torch.cat([spec.schedule.sigmas()[ts], torch.zeros(1, dtype=torch.float64)]))

    @torch.no_grad()
    def __call__(self, net, z: torch.Tensor, cond: dict, uncond: dict | None) -> torch.Tensor:
        x, previous = z.float(), None
        for i in range(len(self.t)):
            a = self.a[i]
            x0 = x0_from_output(self.prediction, guided(net, x, self.t[i].expand(len(x)), cond, uncond, self.kappa), x, a)
            if i + 1 < len(self.t):
                d = x0
                if self.weights is not None and self.weights[i][1] != 0.0:
                    d = self.weights[i][0] * x0 + self.weights[i][1] * previous
                x = diffuse(d, (x - a.sqrt() * d) / (1 - a).sqrt(), self.a[i + 1])
            previous = x0
        return x0


def rescaled_anchor(surrogate: torch.Tensor, x_a: torch.Tensor, distance: torch.Tensor, sid_grad: torch.Tensor,
                    weight: float, name: str = "anchor") -> tuple[torch.Tensor, dict]:
    """The surrogate with an anchor's term added: the distance's gradient at G's output x_a rescaled to weight ×
    ‖sid_grad‖ (no gradient through the scale), so the weight means the same whatever SiD's pixel-sum scale; and the
    term's log entries (`name`: the distance, `name`_scale)."""
    (g_a,) = torch.autograd.grad(distance, x_a)
    with torch.no_grad():
        scale = weight * sid_grad.float().norm() / g_a.float().norm().clamp_min(1e-12)
    return surrogate + (x_a * (scale * g_a).to(x_a.dtype)).sum(), {name: distance.detach(), f"{name}_scale": scale}


class SidLSG(Method):
    """SiD with long-and-short guidance; networks: G, the fake score ψ (trained), the teacher φ (frozen)."""

    name = "sid-lsg"
    file_method = "sid-lsg"
    data = PROMPTS
    # the official optimiser of G and ψ (SD1.5, batch 512): Adam β = (0, 0.999), lr 1e-6, no gradient clipping in fp32
    optim_defaults = {"betas": (0.0, 0.999), "lr_g": 1e-6, "lr_d": 1e-6, "grad_clip": 0.0}
    # the recall anchor's regression: MSE measured better than LatentLPIPS from the same start (proof-scale run 27)
    loss_defaults = {"regression": "mse"}

    @classmethod
    def data_for(cls, config) -> str:
        return PAIRS if config.sid.anchor_weight > 0 else PROMPTS  # the recall anchor regresses on teacher pairs

    @classmethod
    def needs_elpips(cls, config) -> bool:
        return config.sid.anchor_weight > 0 and config.loss.regression != "mse"

    def prepare(self, info: ModelInfo) -> None:
        c, s = self.config, self.config.sid
        spec = c.generator.spec
        if spec.prediction not in PREDICTIONS:
            raise ValueError(f"SiD-LSG trains ε- or v-prediction teachers; the generator spec says {spec.prediction!r}")
        if s.t_max >= spec.schedule.steps:
            raise ValueError(f"SiD-LSG's t_max {s.t_max} is beyond the teacher's schedule (timesteps 0..{spec.schedule.steps - 1})")
        if s.live_samples and s.live_anchor_steps > spec.schedule.steps:
            raise ValueError(f"the live anchor's {s.live_anchor_steps} sampler steps are more than the teacher's schedule has "
                             f"timesteps ({spec.schedule.steps})")
        m = info.spatial_multiple
        if s.latent_height % m or s.latent_width % m:
            raise ValueError(f"the noise of {s.latent_height}×{s.latent_width} does not fit the UNet: height and width must be multiples of {m}")
        u = self.resources.empty_prompt()
        if s.uses_unconditional:
            if u is None:
                raise ValueError("SiD-LSG with a guidance scale ≠ 1 needs the empty prompt's conditioning (Resources.unconditional)")
            if u["context"].ndim != 2 or u["context"].shape[-1] != info.context_dim:
                raise ValueError(f"the empty prompt's conditioning has shape {tuple(u['context'].shape)}; the UNet takes [L, {info.context_dim}]")
            if info.pooled_dim is not None and u.get("pooled") is None:
                raise ValueError("the empty prompt's conditioning lacks the pooled embedding this UNet needs")
        self.dropout = s.prompt_dropout if (s.kappa1 != 1.0 or s.kappa2 != 1.0) else 0.0
        self.fake_loss = FakeScoreLoss(spec, s.kappa1, s.reduction)
        self.g_loss = SidGeneratorLoss(spec, s.alpha, s.kappa2, s.kappa4, s.reduction, s.kappa4_t_min)
        self.anchor = regression_loss(c.loss.regression, info, self.resources) if s.anchor_weight > 0 else None
        self.sampler: TeacherSampler | None = None  # the live anchor's teacher sampler (built on the device)
        self.d_loss: DiscriminatorLoss | None = None  # the live GAN's
        self.discriminator: ConditionalDiffusionDiscriminator | None = None
        if s.live_gan_weight > 0:
            dc = c.discriminator
            if dc.real_images:
                raise ValueError("SiD-LSG's live GAN calls the teacher's own samples real; real_images is Diffusion2GAN's setting")
            self.d_loss = DiscriminatorLoss(spec, (dc.d_t_min, dc.d_t_max), dc.mix_and_match, dc.z_conditioning, dc.r1_gamma,
                                            dc.r1_every, dc.r1_mode, dc.r1_sigma)
        self.fake: CopyableUNet | None = None
        self.teacher: CopyableUNet | None = None
        self.uncond: dict | None = None

    def build(self, engine) -> list[ExtraNetwork]:
        c, s, o = self.config, self.config.sid, self.config.optim
        unet = engine.unet
        if not isinstance(unet, CopyableUNet):
            raise TypeError(f"SiD-LSG copies the teacher UNet; {type(unet).__name__} has no full_copy")
        frozen = getattr(torch, c.generator.frozen_dtype)
        extras = []
        if self.d_loss is not None:  # D from the teacher's encoder, before anything else shares or copies its weights
            self.discriminator = build_discriminator(unet, c)
            if c.generator.gradient_checkpointing:
                self.discriminator.encoder.set_gradient_checkpointing(True)
            extras.append(ExtraNetwork("discriminator", "d", self.discriminator, s.live_gan_lr or o.lr_d, o.optimizer_d or o.optimizer,
                                       c.discriminator.storage_dtype, derived_seed(c.seed, -4), Diffusion2GAN.optim_defaults["betas_d"]))
        # φ: the teacher, frozen. A LoRA generator never changes its base, so φ shares it (one copy of the weights).
        self.teacher = unet.full_copy(share_weights=c.generator.lora_rank > 0).requires_grad_(False)
        if s.fake_lora_rank > 0:  # ψ: LoRA factors on φ's frozen weights
            self.fake = self.teacher.full_copy(share_weights=True)
            lora.add_lora(self.fake, self.fake.lora_targets(), s.fake_lora_rank, 0.0, torch.Generator().manual_seed(derived_seed(c.seed, -7)))
        else:  # ψ: a whole trained copy
            self.fake = unet.full_copy().requires_grad_(True)
        store_frozen(self.teacher, frozen)
        store_frozen(self.fake, frozen)
        for net in (self.teacher, self.fake):
            keep_output_float32(net.output_conv)  # x0 from ε̂ multiplies its rounding (onestep/precision.py)
            if c.generator.gradient_checkpointing:
                net.set_gradient_checkpointing(True)
        self.teacher.to(engine.device).eval()
        if self.anchor is not None:
            place_elpips(self.resources, engine.device)
        if s.live_samples:
            self.sampler = TeacherSampler(c.generator.spec, s.live_anchor_steps, s.anchor_cfg, engine.device, s.live_anchor_sampler,
                                          s.live_anchor_spacing)
        u = self.resources.empty_prompt()
        self.uncond = {k: v.to(engine.device, torch.float32) for k, v in u.items() if v is not None} if u is not None else None
        return [ExtraNetwork("fake_score", "fake", self.fake, o.lr_d, o.optimizer_d or o.optimizer, s.fake_dtype, derived_seed(c.seed, -8)),
                *extras]

    def generator_start(self) -> int:
        s = self.config.sid
        return s.live_gan_start if s.live_gan_hold else 0  # G's lr schedule counts from the end of D's lead

    def held_with_generator(self) -> tuple[str, ...]:
        return ("fake_score",) if self.config.sid.live_gan_hold else ()  # ψ's warm-up too: its Adam moments start there

    def phases(self, engine, step: int) -> list[Phase]:
        s = self.config.sid
        r1 = self.discriminator is not None and step % self.config.discriminator.r1_every == 0 and self.d_loss.r1_gamma > 0
        if s.live_gan_hold and step < s.live_gan_start:  # D leads against a G (and ψ) that stand still
            return [Phase("discriminator", partial(self._lead, engine, r1), partial(self._lead_draws, engine, r1),
                          "lead+r1" if r1 else "lead")]
        # SidConfig.fake_steps ψ steps, each on fresh draws (the micro-batch's random source moves on), then G's
        fake = Phase("fake_score", partial(self._fake_score, engine), partial(self._fake_draws, engine))
        gan = self.discriminator is not None and step >= s.live_gan_start  # G listens to D from live_gan_start
        phases = [fake] * s.fake_steps + [Phase("generator", partial(self._generator, engine, gan=gan),
                                                 partial(self._generator_draws, engine, gan=gan), "gan" if gan else "")]
        if self.discriminator is not None:  # on the fakes G's phase made this step (its outputs)
            phases.append(Phase("discriminator", partial(self._discriminator, r1), partial(self._discriminator_draws, engine, r1),
                                "r1" if r1 else ""))
        return phases

    def capturable(self) -> str | None:
        if self.anchor is not None:
            return "SiD-LSG's recall anchor (anchor_weight > 0) is not built for CUDA-graph replay"
        # the live anchor and the live GAN too: their noise, D's re-noising and R1's probe are phase draws, the sampler's
        # constants device tensors; D's lazy-R1 steps and the hold's lead are phase variants, each its own capture
        return None

    def draw_noise(self, engine, n: int, generator: torch.Generator) -> torch.Tensor:
        s = self.config.sid
        return torch.randn((n, engine.info.latent_channels, s.latent_height, s.latent_width), generator=generator)

    def guidance(self) -> float | None:
        return self.config.sid.kappa4  # the teacher's CFG the student learns to match

    def file_notes(self) -> dict:
        s = self.config.sid
        return {"sid_lsg": {"kappa1": s.kappa1, "kappa2": s.kappa2, "kappa3": s.kappa2, "kappa4": s.kappa4, "alpha": s.alpha,
                            "t_init": self.config.generator.spec.timestep, "t_range": [s.t_min, s.t_max],
                            **({"kappa4_t_min": s.kappa4_t_min} if s.kappa4_t_min > 0 else {}),
                            **({"anchor_weight": s.anchor_weight, "anchor_loss": self.config.loss.regression} if s.anchor_weight > 0 else {}),
                            **({"live_anchor_weight": s.live_anchor_weight, "live_anchor_items": s.live_anchor_items,
                                "live_anchor_steps": s.live_anchor_steps,
                                "live_anchor_sampler": s.live_anchor_sampler, "live_anchor_spacing": s.live_anchor_spacing,
                                "live_anchor_cfg": s.anchor_cfg} if s.live_samples else {}),
                            **({"live_gan_weight": s.live_gan_weight, "live_gan_start": s.live_gan_start, "live_gan_hold": s.live_gan_hold}
                               if s.live_gan_weight > 0 else {})}}

    # -- the phases -----------------------------------------------------------------------------------------
    def _conditioning(self, mb: MicroBatch) -> tuple[dict, dict | None]:
        """(cond, uncond) of the micro-batch, uncond expanded to its size (a shorter empty-prompt context repeated to
        the prompts' token count, which attention reads the same)."""
        cond = {"context": mb.context, **mb.extra}
        if self.uncond is None:
            return cond, None
        n, length = mb.context.shape[:2]
        ctx = self.uncond["context"]
        if length % ctx.shape[0]:
            raise ValueError(f"prompts of {length} tokens and an empty prompt of {ctx.shape[0]} cannot share a CFG batch")
        uncond = {"context": ctx.repeat(length // ctx.shape[0], 1).expand(n, -1, -1)}
        if "pooled" in cond:
            uncond["pooled"] = self.uncond["pooled"].expand(n, -1)
        if "size" in cond:  # SDXL size conditioning: the empty prompt's own, else the prompts' (one setting for both)
            uncond["size"] = self.uncond["size"].expand(n, -1) if "size" in self.uncond else cond["size"]
        return cond, uncond

    def _draws(self, engine, n: int, rng: torch.Generator) -> dict[str, torch.Tensor]:
        """z, ε and t ~ U{t_min..t_max}, in this order from the micro-batch's source, and ᾱ_t (host tensors)."""
        s = self.config.sid
        z = self.draw_noise(engine, n, rng)
        eps = torch.randn(z.shape, generator=rng)
        t = torch.randint(s.t_min, s.t_max + 1, (n,), generator=rng)
        return {"z": z, "eps": eps, "t": t, "a": alpha_bar(self.config.generator.spec, t, z)}

    def _fake_draws(self, engine, mb: MicroBatch) -> dict[str, torch.Tensor]:
        """The fake-score phase's draws: the prompt-dropout mask (when ψ learns an unconditional score) first."""
        n = len(mb.context)
        drop = {"drop": torch.rand(n, generator=mb.rng) < self.dropout} if self.dropout > 0 else {}
        return {**drop, **self._draws(engine, n, mb.rng)}

    def _generator_draws(self, engine, mb: MicroBatch, gan: bool = False) -> dict[str, torch.Tensor]:
        """z, ε, t (and ᾱ_t); with the live anchor then its noise z_anchor for the first live_anchor_items items, drawn
        after them (the other draws keep their values); with `gan` then D's re-noising of G(z_anchor) (gan_t, gan_eps,
        gan_a)."""
        n = len(mb.context)
        drawn = self._draws(engine, n, mb.rng)
        s = self.config.sid
        if s.live_samples:
            drawn["z_anchor"] = z_a = self.draw_noise(engine, min(s.live_anchor_items, n), mb.rng)
            if gan and self.discriminator is not None:
                renoise = renoise_draws(self.config.generator.spec, len(z_a), z_a.shape, self.d_loss.t_range, mb.rng)
                drawn.update({f"gan_{k}": v for k, v in renoise.items()})
        return drawn

    def _discriminator_draws(self, engine, apply_r1: bool, mb: MicroBatch) -> dict[str, torch.Tensor]:
        """D's draws on the live pairs of the micro-batch's first live_anchor_items items (DiscriminatorLoss.draws)."""
        s = self.config.sid
        n = min(s.live_anchor_items, len(mb.context))
        index = mb.prompt_index[:n] if mb.prompt_index is not None else None
        return self.d_loss.draws(n, (n, engine.info.latent_channels, s.latent_height, s.latent_width), mb.rng, apply_r1,
                                 prompt_index=index)

    def _lead_draws(self, engine, apply_r1: bool, mb: MicroBatch) -> dict[str, torch.Tensor]:
        """The lead's draws: z_a for the live pairs, then D's on them."""
        z_a = self.draw_noise(engine, min(self.config.sid.live_anchor_items, len(mb.context)), mb.rng)
        return {"z_a": z_a, **self._discriminator_draws(engine, apply_r1, mb)}

    def _fake_score(self, engine, mb: MicroBatch, backward: Backward, drawn: dict | None = None) -> dict:
        """ψ's update; `drawn`: this phase's draws on the device (the engine's), else taken here."""
        drawn = drawn if drawn is not None else dict_to_device(self._fake_draws(engine, mb), engine.device)
        cond, uncond = self._conditioning(mb)
        if "drop" in drawn:  # blanked prompts: G samples and ψ learns them unconditionally
            drop = drawn["drop"]
            cond = {k: torch.where(drop.view(-1, *([1] * (v.ndim - 1))), uncond[k], v) for k, v in cond.items()}
        z, eps, t, a = drawn["z"], drawn["eps"], drawn["t"], drawn["a"]
        with torch.no_grad(), backward.autocast():
            x_g = engine.generator(z, **cond).float()
        finite_x = finite_items(x_g)
        x_g = torch.where(finite_x.view(-1, 1, 1, 1), x_g, 0.0)  # a non-finite sample is left out, and kept out of ψ's pass
        with backward.autocast():
            per_item = self.fake_loss(self.fake, x_g, eps, t, cond, uncond, a)
        ok = finite_x & finite_items(per_item[:, None])
        loss = torch.where(ok, per_item, 0.0).mean()
        backward(loss)  # a NaN inside ψ reaches its gradients: the engine's NaN stop names the phase
        return {"fake_score": loss.detach(), "fake_nan_samples": (~ok).sum().float(), "total": loss.detach()}

    def _generator(self, engine, mb: MicroBatch, backward: Backward, drawn: dict | None = None, gan: bool = True) -> dict:
        """G's update; `drawn` as in _fake_score; `gan`: with the live GAN's term (when there is a D)."""
        drawn = drawn if drawn is not None else dict_to_device(self._generator_draws(engine, mb, gan), engine.device)
        cond, uncond = self._conditioning(mb)
        z, eps, t, a = drawn["z"], drawn["eps"], drawn["t"], drawn["a"]
        with backward.autocast():
            x_g = engine.generator(z, **cond)
            per_item, ok, extra = self.g_loss(self.fake, self.teacher, x_g, eps, t, cond, uncond, a)
        loss = torch.where(ok, per_item, 0.0).mean()
        # ∂L/∂x_g through ψ, φ and directly; a left-out item's row (NaN from ψ or φ) is zeroed before it reaches G
        (grad,) = torch.autograd.grad(loss, x_g)
        grad = torch.where(ok.view(-1, *([1] * (grad.ndim - 1))), grad, 0.0)
        surrogate = (x_g * grad).sum()  # G's gradient is that row-masked ∂L/∂x_g times ∂x_g/∂θ
        terms = {"sid": loss.detach(), "sid_gap": torch.where(ok, extra["gap"], 0.0).mean(), "g_nan_samples": (~ok).sum().float(),
                 "total": loss.detach()}
        if self.anchor is not None:
            surrogate, anchor_terms = self._anchored(engine, mb, backward, surrogate, grad)
            terms.update(anchor_terms)
        elif self.sampler is not None:
            gan_drawn = {k[4:]: v for k, v in drawn.items() if k.startswith("gan_")} if gan else None
            surrogate, anchor_terms = self._live_anchored(engine, mb, cond, uncond, drawn["z_anchor"], backward, surrogate, grad,
                                                          gan_drawn)
            terms.update(anchor_terms)
        backward(surrogate)
        return terms

    def _anchored(self, engine, mb: MicroBatch, backward: Backward, surrogate: torch.Tensor, sid_grad: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """The surrogate with the recall anchor's term added: G on the pairs' noise, the regression on the pairs."""
        if mb.z is None or mb.z.shape[1:] != sid_grad.shape[1:]:
            got = "no noise" if mb.z is None else f"noise of shape {tuple(mb.z.shape[1:])}"
            raise ValueError(f"the recall anchor regresses on teacher pairs with the generator's noise shape {tuple(sid_grad.shape[1:])}; the data has {got}")
        with backward.autocast():
            x_a = engine.generator(mb.z, mb.context, **mb.extra)
            distance = self.anchor(x_a, mb).mean()
        return rescaled_anchor(surrogate, x_a, distance, sid_grad, self.config.sid.anchor_weight)

    def _live_anchored(self, engine, mb: MicroBatch, cond: dict, uncond: dict | None, z_a: torch.Tensor, backward: Backward,
                       surrogate: torch.Tensor, sid_grad: torch.Tensor, gan: dict | None) -> tuple[torch.Tensor, dict]:
        """The surrogate with the live terms added on _live_pairs' samples: the anchor's MSE at its share (or only
        logged), and with the live GAN the pairs kept in mb.outputs for D's phase and (`gan`: D's re-noising draws for
        G(z_a), from _generator_draws) D's term on G(z_a)."""
        s = self.config.sid
        trained = s.live_anchor_weight > 0 or gan is not None  # else G(z_a) is only D's fake: no graph kept for it
        x_a, distance, terms, pairs = self._live_pairs(engine, mb, cond, uncond, z_a, backward, trained)
        if s.live_anchor_weight > 0:
            surrogate, anchor = rescaled_anchor(surrogate, x_a, distance, sid_grad, s.live_anchor_weight)
            terms.update(anchor)
        else:
            terms["anchor"] = distance.detach()  # logged: how far G is from φ's samples, trained on or not
        if pairs is not None:
            if gan is not None:
                with backward.autocast():
                    loss = generator_gan_loss(self.discriminator, x_a, pairs, self.config.generator.spec, self.d_loss.t_range,
                                              drawn=gan)
                surrogate, gan_terms = rescaled_anchor(surrogate, x_a, loss, sid_grad, s.live_gan_weight, name="gan_g")
                terms.update(gan_terms)
            pairs.outputs["fake"] = x_a.detach().float()
            mb.outputs["live_pairs"] = pairs
        return surrogate, terms

    def _live_pairs(self, engine, mb: MicroBatch, cond: dict, uncond: dict | None, z_a: torch.Tensor, backward: Backward,
                    trained: bool) -> tuple[torch.Tensor, torch.Tensor, dict, MicroBatch | None]:
        """φ's samples from z_a for the first len(z_a) prompts (no gradient) and G(z_a) (autograd's graph kept when
        `trained`); returns G(z_a), its MSE to the samples over the items whose sample is finite (a non-finite one — φ's
        NaN, as SiD's own NaN filtering — is left out and counted, without a device sync), the count, and with a D the
        pairs its phase trains on (φ's samples real)."""
        k = len(z_a)
        cond_a = {key: v[:k] for key, v in cond.items()}
        uncond_a = {key: v[:k] for key, v in uncond.items()} if uncond is not None else None
        with backward.autocast():
            target = self.sampler(self.teacher, z_a, cond_a, uncond_a)
            with torch.set_grad_enabled(torch.is_grad_enabled() and trained):
                x_a = engine.generator(z_a, **cond_a)
            ok = finite_items(target)
            rows = ok.view(-1, *([1] * (target.ndim - 1)))
            # a left-out item's target is G's own sample: its error and gradient are 0, not NaN × 0
            target = torch.where(rows, target, x_a.detach().float())
            per_item = (x_a.float() - target).pow(2).flatten(1).mean(1)
            distance = per_item.sum() / ok.sum().clamp_min(1)
        pairs = None
        if self.discriminator is not None:
            pairs = MicroBatch(z=z_a, real=target, latent=None, context=cond_a["context"],
                               extra={key: v for key, v in cond_a.items() if key != "context"},
                               prompt_index=mb.prompt_index[:k] if mb.prompt_index is not None else None, rng=mb.rng)
        return x_a, distance, {"anchor_nan_samples": (~ok).sum().float()}, pairs

    def _lead(self, engine, apply_r1: bool, mb: MicroBatch, backward: Backward, drawn: dict | None = None) -> dict:
        """A step of D's lead (live_gan_hold, before live_gan_start): fresh z_a from the micro-batch's source, the live
        pairs with G held (no graph), and D's update on them; G's distance to φ's samples logged as `anchor`. `drawn`:
        _lead_draws' tensors on the device (else taken here)."""
        drawn = drawn if drawn is not None else dict_to_device(self._lead_draws(engine, apply_r1, mb), engine.device)
        cond, uncond = self._conditioning(mb)
        x_a, distance, terms, pairs = self._live_pairs(engine, mb, cond, uncond, drawn["z_a"], backward, trained=False)
        d_terms = discriminator_update(self.d_loss, self.discriminator, x_a.detach().float(), pairs, backward, apply_r1, drawn=drawn)
        return {**d_terms, **terms, "anchor": distance.detach()}

    def _discriminator(self, apply_r1: bool, mb: MicroBatch, backward: Backward, drawn: dict | None = None) -> dict:
        """D's update on the live pairs G's phase left: φ's samples real, G's fakes (Diffusion2GAN's D phase); `drawn`:
        _discriminator_draws' tensors on the device (else each pass draws from the micro-batch's source)."""
        pairs = mb.outputs["live_pairs"]
        return discriminator_update(self.d_loss, self.discriminator, pairs.outputs["fake"], pairs, backward, apply_r1, drawn=drawn)
