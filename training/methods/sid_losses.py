"""SiD's score-side arithmetic (Zhou et al., ICML 2024; the official SiD-LSG loop): VP diffusion, x0 from an ε or v
output, classifier-free guidance, the fake score's denoising loss and the generator's SiD loss with its w-normaliser.
The SiD-LSG method (training/methods/sid_lsg.py) trains with them; the CPU probes reuse them on exact teachers."""
from __future__ import annotations

import torch

from ..core import OneStepSpec
from ..host_to_device import to_device

W_MIN = 1e-5  # floor of the generator loss's normaliser w (the official clip)


def alpha_bar(spec: OneStepSpec, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """ᾱ_t per item as [B, 1, 1, 1] float32 on like's device."""
    return to_device(spec.schedule.alphas_cumprod()[t.long().cpu()], like.device, torch.float32).view(-1, *([1] * (like.ndim - 1)))


def diffuse(x0: torch.Tensor, eps: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """x_t = sqrt(ᾱ_t)·x0 + sqrt(1−ᾱ_t)·ε (DDPM's add_noise)."""
    return a.sqrt() * x0 + (1 - a).sqrt() * eps


def x0_from_output(prediction: str, out: torch.Tensor, x_t: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """x0 from a network output at x_t: ε: (x_t − sqrt(1−ᾱ)·ε̂)/sqrt(ᾱ); v: sqrt(ᾱ)·x_t − sqrt(1−ᾱ)·v̂."""
    if prediction == "eps":
        return (x_t - (1 - a).sqrt() * out) / a.sqrt()
    return a.sqrt() * x_t - (1 - a).sqrt() * out


def guided(net, x_t: torch.Tensor, t: torch.Tensor, cond: dict, uncond: dict | None, kappa: float | torch.Tensor) -> torch.Tensor:
    """The network's raw output with classifier-free guidance, uncond + κ·(cond − uncond) in float32 (one call on the
    doubled batch); κ = 1 is the conditional call alone, a tensor κ ([B, 1, 1, 1]) guides each item by its own scale.
    cond/uncond: {"context": [B, L, D], optional "pooled", "size"}."""
    if not torch.is_tensor(kappa) and kappa == 1.0:
        return net(x_t, t, **cond).float()
    both = {k: torch.cat([uncond[k], cond[k]]) for k in cond}
    u, c = net(torch.cat([x_t, x_t]), torch.cat([t, t]), **both).float().chunk(2)
    return u + kappa * (c - u)


def reduce_pixels(x: torch.Tensor, reduction: str) -> torch.Tensor:
    """Per item [B]: the sum over C, H, W ("sum", the official) or the mean ("mean")."""
    return x.sum(dim=(1, 2, 3)) if reduction == "sum" else x.mean(dim=(1, 2, 3))


def sid_loss(x_g: torch.Tensor, y_real: torch.Tensor, y_fake: torch.Tensor, alpha: float, reduction: str = "sum") -> torch.Tensor:
    """The SiD generator loss per item [B] (float32): the official integrand summed (or averaged) over C, H, W, divided
    by w = mean_CHW |x_g − y_real| (no gradient, ≥ W_MIN). α = 1 uses the official special form (the same value)."""
    x_g, y_real, y_fake = x_g.float(), y_real.float(), y_fake.float()
    with torch.no_grad():
        w = (x_g - y_real).abs().mean(dim=(1, 2, 3)).clamp_min(W_MIN)
    if alpha == 1.0:
        integrand = (y_real - y_fake) * (y_fake - x_g)
    else:
        integrand = (y_real - y_fake) * ((y_real - x_g) - alpha * (y_real - y_fake))
    return reduce_pixels(integrand, reduction) / w


def finite_items(*xs: torch.Tensor) -> torch.Tensor:
    """[B] bool: the items whose every value in every tensor is finite."""
    ok = torch.ones(xs[0].shape[0], dtype=torch.bool, device=xs[0].device)
    for x in xs:
        ok = ok & torch.isfinite(x).flatten(1).all(dim=1)
    return ok


class FakeScoreLoss:
    """ψ's denoising loss on the generator's detached samples, per item [B]: squared error of ψ's ε at CFG κ1 (v
    teachers: of its velocity, weighted snr/(snr+1) = ᾱ_t), summed (or averaged) over C, H, W."""

    def __init__(self, spec: OneStepSpec, kappa1: float, reduction: str = "sum"):
        self.spec, self.kappa1, self.reduction = spec, kappa1, reduction

    def __call__(self, psi, x_g: torch.Tensor, eps: torch.Tensor, t: torch.Tensor, cond: dict, uncond: dict | None,
                 a: torch.Tensor | None = None) -> torch.Tensor:
        a = alpha_bar(self.spec, t, x_g) if a is None else a  # ᾱ_t given: looked up on the host with the draws
        out = guided(psi, diffuse(x_g, eps, a), to_device(t, x_g.device, torch.float32), cond, uncond, self.kappa1)
        if self.spec.prediction == "eps":
            return reduce_pixels((out - eps).pow(2), self.reduction)
        velocity = a.sqrt() * eps - (1 - a).sqrt() * x_g
        return reduce_pixels(a * (out - velocity).pow(2), self.reduction)


class SidGeneratorLoss:
    """The generator's SiD loss per item [B] with y_fake from ψ at CFG κ2 (= κ3) and y_real from φ at CFG κ4, at x_t of
    x_g (gradients reach x_g directly and through both networks); also returns x_g's finite-item mask."""

    def __init__(self, spec: OneStepSpec, alpha: float, kappa2: float, kappa4: float, reduction: str = "sum",
                 kappa4_t_min: int = 0):
        self.spec, self.alpha, self.kappa2, self.kappa4, self.reduction = spec, alpha, kappa2, kappa4, reduction
        self.kappa4_t_min = kappa4_t_min  # φ unguided at t below it (0: guided at every t)

    def __call__(self, psi, phi, x_g: torch.Tensor, eps: torch.Tensor, t: torch.Tensor, cond: dict, uncond: dict | None,
                 a: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, dict]:
        x_g = x_g.float()
        a = alpha_bar(self.spec, t, x_g) if a is None else a
        x_t, tt = diffuse(x_g, eps, a), to_device(t, x_g.device, torch.float32)
        y_fake = x0_from_output(self.spec.prediction, guided(psi, x_t, tt, cond, uncond, self.kappa2), x_t, a)
        kappa4 = self.kappa4
        if self.kappa4_t_min > 0 and kappa4 != 1.0:  # per item, on the device (no host sync: the step stays capturable)
            kappa4 = torch.where(tt >= self.kappa4_t_min, kappa4, 1.0).view(-1, *([1] * (x_g.ndim - 1)))
        y_real = x0_from_output(self.spec.prediction, guided(phi, x_t, tt, cond, uncond, kappa4), x_t, a)
        ok = finite_items(x_g, y_fake, y_real)
        with torch.no_grad():
            gap = (y_real - y_fake).abs().mean(dim=(1, 2, 3))
        return sid_loss(x_g, y_real, y_fake, self.alpha, self.reduction), ok, {"gap": gap}
