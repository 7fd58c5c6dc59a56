"""Diffusion2GAN losses (Kang et al., ECCV 2024, Eq. 5 and Sec. 4.2) as small callables returning named terms.

Generator:      L_G = d(G(z,c), x) + λ_GAN · E_t,ε[softplus(−D(x̂_t, t, z, c))],  x̂ = G(z,c), x̂_t = diffuse(x̂, t, ε)
Discriminator:  L_D = softplus(−D(x_t, t, z, c)) + softplus(D(x̂_t, t, z, c))
                      + ½[softplus(D(x_t, t, z', c)) + softplus(D(x_t, t, z, c'))]   (mix-and-match fakes)
                      + [every k steps] k · γ/2 · ‖∇_{x_t} D(x_t, t, z, c)‖²            (lazy single-sample R1)
d is E-LatentLPIPS (one random augmentation per call), LatentLPIPS (no augmentation) or latent MSE; z' and c'
come from another item of the batch (pairs that happen to share the seed / prompt are not counted as fakes).
Logits are patch maps at one or several scales; each term averages over positions, then over scales.

With gan_loss "relativistic" (paired RpGAN; LossConfig.gan_loss) every fake is scored against its own real pair — the
same z, c, t and ε — position by position: D: softplus(D(x̂_t) − D(x_t)), mix-and-match softplus(D(x_t, z') − D(x_t)),
G: softplus(D(x_t) − D(x̂_t)) (D(x_t) a constant for G).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from .core import ELatentLPIPS, OneStepSpec
from .discriminator import diffuse, renoise_draws
from .host_to_device import to_device
from .unet_interface import ModelInfo


@dataclass
class MicroBatch:
    """One micro-batch on this rank, with the random source of its draws. A pairs method gets all fields; a
    prompts-only method gets the conditioning (z None unless the data holds noise, real/latent None)."""

    z: torch.Tensor | None  # the generator's noise [B, C, H, W] (the teacher's, for pairs)
    real: torch.Tensor | None  # the teacher's output in the UNet's x0 space (pairs only)
    latent: torch.Tensor | None  # the teacher's output in VAE units, as stored (pairs only)
    context: torch.Tensor  # cross-attention conditioning [B, L, D]
    extra: dict = field(default_factory=dict)  # further UNet inputs (pooled)
    seed: torch.Tensor | None = None  # per-item seeds (mix-and-match validity)
    prompt_index: torch.Tensor | None = None  # per-item prompt ids (mix-and-match validity)
    rng: torch.Generator | None = None  # CPU generator for every random draw of this micro-batch
    outputs: dict = field(default_factory=dict)  # what a phase leaves for later phases of the same step (G's fakes for D)


def _ns(logits: list[torch.Tensor], real: bool) -> torch.Tensor:
    """Non-saturating loss per item [B]: softplus(∓logit), averaged over positions and scales."""
    sign = -1.0 if real else 1.0
    return torch.stack([F.softplus(sign * l.float()).mean(dim=(1, 2, 3)) for l in logits]).mean(dim=0)


def _rp(winner: list[torch.Tensor], loser: list[torch.Tensor]) -> torch.Tensor:
    """Paired relativistic loss per item [B] for wanting `winner` above `loser`: softplus(loser − winner) position by
    position, averaged over positions and scales."""
    return torch.stack([F.softplus(lo.float() - w.float()).mean(dim=(1, 2, 3)) for w, lo in zip(winner, loser)]).mean(dim=0)


def item_score(logits: list[torch.Tensor]) -> torch.Tensor:
    """Per-item mean logit over positions and scales [B] (float32)."""
    return torch.stack([l.float().mean(dim=(1, 2, 3)) for l in logits]).mean(dim=0)


def _score(logits: list[torch.Tensor]) -> torch.Tensor:
    """Σ over items of the mean logit per scale (what R1 differentiates)."""
    return sum(l.float().mean(dim=(1, 2, 3)).sum() for l in logits)


class RegressionLoss:
    """d(G(z,c), x): E-LatentLPIPS, LatentLPIPS (one draw, no augmentation) or MSE in the UNet's x0 space."""

    def __init__(self, kind: str, info: ModelInfo, elpips: ELatentLPIPS | None = None):
        if kind != "mse" and elpips is None:
            raise ValueError(f"the {kind} regression loss needs E-LatentLPIPS weights")
        self.kind, self.info = kind, info
        if kind == "latentlpips":
            elpips = ELatentLPIPS(elpips.lpips, elpips.encoder, preset="none", l1=elpips.l1)
        self.metric = elpips

    def __call__(self, x0: torch.Tensor, mb: MicroBatch) -> torch.Tensor:
        """Per-item distances [B] (float32)."""
        if self.kind == "mse":
            return (x0.float() - mb.real.float()).pow(2).mean(dim=(1, 2, 3))
        return self.metric(self.info.to_latent(x0), mb.latent, generator=mb.rng).float()


def generator_gan_loss(discriminator: nn.Module, x0: torch.Tensor, mb: MicroBatch, spec: OneStepSpec, t_range: tuple[int, int],
                       gan_loss: str = "standard", drawn: dict | None = None) -> torch.Tensor:
    """G's GAN term on its samples x0 (the micro-batch's items): D on x0 re-noised to t ~ U{t_range} (t and ε from
    mb.rng, or renoise_draws' `drawn`), non-saturating ("standard") or relativistic against the real pair mb.real under
    the same t and ε."""
    d = drawn if drawn is not None else renoise_draws(spec, x0.shape[0], x0.shape, t_range, mb.rng)
    t, a = d["t"], d.get("a")
    eps = to_device(d["eps"], x0.device, x0.dtype)
    t_dev = to_device(t, x0.device)
    fake = discriminator(diffuse(spec, x0, eps, t, a), t_dev, mb.z, mb.context, **mb.extra)
    if gan_loss == "standard":
        return _ns(fake, real=True).mean()
    with torch.no_grad():  # the real pair under the same t and ε: a constant for G
        real = discriminator(diffuse(spec, mb.real.to(x0.dtype), eps, t, a), t_dev, mb.z, mb.context, **mb.extra)
    return _rp(fake, [r.detach() for r in real]).mean()


class GeneratorLoss:
    """L_G = regression + λ · non-saturating GAN loss (the GAN part only when a discriminator is given).

    balance "fixed": λ = gan_weight. balance "adaptive": the GAN's gradient at G's output x̂ is rescaled to
    gan_weight × the regression's (per micro-batch): ∇_x̂ L = ∇_x̂ d + w·∇_x̂ GAN with w = gan_weight·‖∇_x̂ d‖/‖∇_x̂ GAN‖
    (the output-space form of VQGAN's adaptive weight, Esser et al. 2021), so with gan_weight < 1 the GAN can
    sharpen but never outpull the teacher's pairs, however confident D becomes; w ≤ scale_max, so a D gone flat
    cannot have its noise amplified without bound either; terms["gan_scale"] logs w."""

    def __init__(self, regression: RegressionLoss, spec: OneStepSpec, gan_weight: float, t_range: tuple[int, int], balance: str = "fixed",
                 scale_max: float = float("inf"), gan_loss: str = "standard"):
        self.regression, self.spec, self.gan_weight, self.t_range, self.balance = regression, spec, gan_weight, t_range, balance
        self.scale_max, self.gan_loss = scale_max, gan_loss

    def __call__(self, generator: nn.Module, discriminator: nn.Module | None, mb: MicroBatch, ramp: float = 1.0) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """(terms, fake x0); backward of terms["objective"] (when present, else terms["total"]) gives G's gradient.
        `ramp` ∈ [0, 1] scales gan_weight (LossConfig.gan_ramp_steps)."""
        x0 = generator(mb.z, mb.context, **mb.extra)
        if discriminator is not None and self.balance == "adaptive":
            return self._adaptive(x0, discriminator, mb, ramp), x0.detach()
        terms = {"regression": self.regression(x0, mb).mean()}
        total = terms["regression"]
        if discriminator is not None:
            terms["gan_g"] = self._gan(x0, discriminator, mb)
            total = total + ramp * self.gan_weight * terms["gan_g"]
        terms["total"] = total
        return terms, x0.detach()

    def _gan(self, x0: torch.Tensor, discriminator: nn.Module, mb: MicroBatch) -> torch.Tensor:
        return generator_gan_loss(discriminator, x0, mb, self.spec, self.t_range, self.gan_loss)

    def _adaptive(self, x0: torch.Tensor, discriminator: nn.Module, mb: MicroBatch, ramp: float = 1.0) -> dict[str, torch.Tensor]:
        out = x0.detach().float().requires_grad_(True)
        regression, gan = self.regression(out, mb).mean(), self._gan(out, discriminator, mb)
        (g_reg,) = torch.autograd.grad(regression, out)
        (g_gan,) = torch.autograd.grad(gan, out)
        w = (ramp * self.gan_weight * g_reg.norm() / g_gan.norm().clamp(min=1e-12)).clamp(max=self.scale_max)
        return {"regression": regression.detach(), "gan_g": gan.detach(), "gan_scale": w,
                "total": regression.detach() + w * gan.detach(), "objective": (x0.float() * (g_reg + w * g_gan)).sum()}


def _differs_from_previous(key: torch.Tensor | None, n: int) -> torch.Tensor:
    """1.0 where an item's key differs from the previous item's (a rolled-in wrong pairing that is really wrong), all
    ones without keys (float, on the key's device: the host's)."""
    return (key != key.roll(1, 0)).float() if key is not None else torch.ones(n)


class DiscriminatorLoss:
    """L_D: real vs generated, mix-and-match fakes, lazy single-sample R1."""

    def __init__(self, spec: OneStepSpec, t_range: tuple[int, int], mix_and_match: bool, z_conditioning: bool,
                 r1_gamma: float, r1_every: int, r1_mode: str = "exact", r1_sigma: float = 0.01, gan_loss: str = "standard"):
        self.spec, self.t_range, self.gan_loss = spec, t_range, gan_loss
        self.mix_and_match, self.z_conditioning = mix_and_match, z_conditioning
        self.r1_gamma, self.r1_every = r1_gamma, r1_every
        self.r1_mode, self.r1_sigma = r1_mode, r1_sigma

    def __call__(self, discriminator: nn.Module, fake: torch.Tensor, mb: MicroBatch, apply_r1: bool = False,
                 real: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Named terms; terms["total"] is what backward sees (R1 included when apply_r1)."""
        terms, r1_input = self.adversarial(discriminator, fake, mb, real)
        if apply_r1 and self.r1_gamma > 0:
            terms["r1"] = self.penalty(discriminator, r1_input, mb)
            terms["total"] = terms["total"] + terms["r1"]
        return terms

    def draws(self, n: int, shape: tuple[int, ...], generator: torch.Generator, apply_r1: bool = False,
              seed: torch.Tensor | None = None, prompt_index: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Everything D's phase on n items of `shape` draws or reads on the host, in the order the phase without them
        takes it (renoise_draws' t, ε and ᾱ_t; on an R1 step of r1_mode "approx" its probe noise), and mix-and-match's
        validity per kind (from the items' seeds and prompt ids): host tensors a CUDA-graph step copies into its buffers."""
        out = renoise_draws(self.spec, n, shape, self.t_range, generator)
        if self.mix_and_match and n > 1:
            out["valid_c"] = _differs_from_previous(prompt_index, n)
            if self.z_conditioning:
                out["valid_z"] = _differs_from_previous(seed, n)
        if apply_r1 and self.r1_gamma > 0 and self.r1_mode != "exact":
            out["r1_noise"] = torch.randn((1, *shape[1:]), generator=generator)
        return out

    def adversarial(self, discriminator: nn.Module, fake: torch.Tensor, mb: MicroBatch, real: torch.Tensor | None = None,
                    drawn: dict | None = None) -> tuple[dict[str, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
        """(named terms without R1, (x_t, t) of the single real sample R1 would use). `real`: D's real side in x0 space,
        one per item with the item's prompt (default: the teacher's outputs of the pairs, mb.real). `drawn`: draws()'s
        tensors (else drawn here from mb.rng)."""
        real = mb.real if real is None else real
        b = real.shape[0]
        d = drawn if drawn is not None else renoise_draws(self.spec, b, fake.shape, self.t_range, mb.rng)
        t = d["t"].to(fake.device)
        eps = d["eps"].to(fake.device, fake.dtype)
        real_t, fake_t = diffuse(self.spec, real, eps, t, d.get("a")), diffuse(self.spec, fake, eps, t, d.get("a"))
        xs, zs, cs, extras, kinds = [real_t, fake_t], [mb.z, mb.z], [mb.context, mb.context], [mb.extra, mb.extra], ["real", "fake"]
        if self.mix_and_match and b > 1:
            if self.z_conditioning:  # D cannot tell a wrong z when it does not see z
                xs.append(real_t), zs.append(mb.z.roll(1, 0)), cs.append(mb.context), extras.append(mb.extra), kinds.append("wrong_z")
            xs.append(real_t), zs.append(mb.z), cs.append(mb.context.roll(1, 0)), kinds.append("wrong_c")
            extras.append({k: v.roll(1, 0) for k, v in mb.extra.items()})
        extra = {k: torch.cat([e[k] for e in extras]) for k in mb.extra}
        logits = discriminator(torch.cat(xs), t.repeat(len(xs)), torch.cat(zs), torch.cat(cs), **extra)
        parts = [list(p) for p in zip(*[l.split(b) for l in logits])]  # per kind: list over scales
        relativistic = self.gan_loss == "relativistic"
        if relativistic:
            terms = {"d_pair": _rp(parts[0], parts[1]).mean()}
            total = terms["d_pair"]
        else:
            terms = {"d_real": _ns(parts[0], real=True).mean(), "d_fake": _ns(parts[1], real=False).mean()}
            total = terms["d_real"] + terms["d_fake"]
        with torch.no_grad():  # how well D tells this step's fakes (not yet trained on) from their own real pairs
            gap = item_score(parts[0]) - item_score(parts[1])
            terms["d_rank_acc"], terms["d_gap"] = (gap > 0).float().mean(), gap.mean()
        if len(parts) > 2:
            mixed = []
            for kind, p in zip(kinds[2:], parts[2:]):
                name = "valid_z" if kind == "wrong_z" else "valid_c"
                valid = d[name] if name in d else _differs_from_previous(mb.seed if kind == "wrong_z" else mb.prompt_index, b)
                valid = valid.to(fake.device)
                loss = _rp(parts[0], p) if relativistic else _ns(p, real=False)
                mixed.append((loss * valid).sum() / valid.sum().clamp(min=1.0))
            terms["d_mixed"] = torch.stack(mixed).mean()
            total = total + terms["d_mixed"]
        terms["total"] = total
        return terms, (real_t[:1].detach(), t[:1])

    def penalty(self, discriminator: nn.Module, r1_input: tuple[torch.Tensor, torch.Tensor], mb: MicroBatch,
                drawn: dict | None = None) -> torch.Tensor:
        """The lazy R1 term on the sample `adversarial` set aside, exact or approximated per r1_mode (its probe noise
        from draws() when `drawn` holds it)."""
        if self.r1_mode == "exact":
            return self.r1(discriminator, *r1_input, mb)
        return self.r1_approx(discriminator, *r1_input, mb, (drawn or {}).get("r1_noise"))

    def r1(self, discriminator: nn.Module, x: torch.Tensor, t: torch.Tensor, mb: MicroBatch) -> torch.Tensor:
        """k · γ/2 · ‖∇_x D‖² on one real sample (lazy regularisation, StyleGAN2)."""
        x = x.detach().float().requires_grad_(True)
        extra = {k: v[:1] for k, v in mb.extra.items()}
        with sdpa_kernel(SDPBackend.MATH):  # the fused attention kernels have no double backward
            score = _score(discriminator(x, t, mb.z[:1], mb.context[:1], **extra))
        (grad,) = torch.autograd.grad(score, x, create_graph=True)
        return self.r1_every * self.r1_gamma / 2 * grad.float().pow(2).sum()

    def r1_approx(self, discriminator: nn.Module, x: torch.Tensor, t: torch.Tensor, mb: MicroBatch,
                  noise: torch.Tensor | None = None) -> torch.Tensor:
        """The same penalty with ‖∇_x D‖² ≈ (D(x + σn) − D(x))² / σ², n ~ N(0, I) (E_n[(∇D·n)²] = ‖∇D‖²): an
        approximated R1 as in Seaweed-APT (Lin et al. 2025), needing no double backward, so D keeps its fused
        attention kernels and the R1 step costs two single-sample forwards instead of a full-resolution
        attention graph."""
        x = x.detach().float()
        n = to_device(noise if noise is not None else torch.randn(x.shape, generator=mb.rng), x.device, x.dtype)
        extra = {k: v[:1].repeat(2, *([1] * (v.ndim - 1))) for k, v in mb.extra.items()}
        logits = discriminator(torch.cat([x, x + self.r1_sigma * n]), t.repeat(2), mb.z[:1].repeat(2, 1, 1, 1), mb.context[:1].repeat(2, 1, 1), **extra)
        clean, shifted = zip(*[l.split(1) for l in logits])
        diff = (_score(list(shifted)) - _score(list(clean))) / self.r1_sigma
        return self.r1_every * self.r1_gamma / 2 * diff.float().pow(2)
