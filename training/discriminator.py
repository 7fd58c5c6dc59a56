"""The conditional diffusion discriminator of Diffusion2GAN (Kang et al., ECCV 2024, Sec. 4.2, Fig. 4).

D(x_t, t, z, c): a copy of the teacher UNet's encoder (input conv, down blocks, middle block) — or of the whole
UNet, readout "decoder" — reads the latent re-noised to timestep t; the text c enters through the UNet's own
cross-attention; the noise z that G started from enters through a zero-initialised 3×3 conv whose output is added
to the input conv's output (so at initialisation D is exactly the teacher's network); readout heads on several
feature scales (multi-scale: the encoder's levels, or the decoder's as in the paper) — or one head — give patch
logits. Which t, and why: see training/config.py.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import nn

from .core import OneStepSpec
from .host_to_device import to_device
from .unet_interface import TrainableUNet


@runtime_checkable
class UNetEncoder(TrainableUNet, Protocol):
    """What D needs from the teacher UNet beyond the engine's TrainableUNet: its *encoder* (input conv, down blocks,
    middle block) run with text c through its own cross-attention. The adapters (training/diffusers_unet.py,
    onestep_nodes/comfy_unet.py) implement it; other methods never call it."""

    def encoder_features(
        self, x_in: torch.Tensor, t: torch.Tensor, context: torch.Tensor, input_residual: torch.Tensor | None = None, **extra
    ) -> list[torch.Tensor]:
        """Feature maps after each down level and after the middle block (coarsest last); `input_residual` is
        added to the input conv's output ([B, input_features, H, W])."""

    def decoder_features(
        self, x_in: torch.Tensor, t: torch.Tensor, context: torch.Tensor, input_residual: torch.Tensor | None = None, **extra
    ) -> list[torch.Tensor]:
        """Feature maps after each decoder level (coarsest first) of the whole UNet run with the skips (readout
        "decoder"; on a full copy or a decoder_copy)."""

    def decoder_copy(self, share_weights: bool = False) -> UNetEncoder:
        """A deep copy of the whole UNet but its output layers (what decoder_features runs); share_weights as below."""

    def encoder_copy(self, share_weights: bool = False) -> UNetEncoder:
        """A deep copy holding only the encoder (time embedding, input conv, down blocks, middle block); with
        share_weights its modules hold this UNet's own parameter and buffer tensors (unet_interface.copy_module)."""

    @property
    def input_features(self) -> int:
        """Channels of the input conv's output (where the z-conv adds in)."""

    @property
    def feature_channels(self) -> list[int]:
        """Channels of each map encoder_features returns, in order."""

    @property
    def decoder_channels(self) -> list[int]:
        """Channels of each map decoder_features returns, in order."""


def _groups(c: int) -> int:
    g = 32
    while c % g:
        g //= 2
    return g


def minibatch_std(x: torch.Tensor, group: int) -> torch.Tensor:
    """[B, 1, H, W]: per position, the standard deviation of x's features over each item's group of `group`
    consecutive items (the largest divisor of B not above `group`), averaged over channels (ProGAN's minibatch
    standard deviation, per position). Consecutive groups stay inside each kind of a batch D scores at once
    (reals, fakes, mixed fakes: B items each) when `group` divides B. A group of one reads the floor, 1e-4."""
    b, c, h, w = x.shape
    g = max(d for d in range(1, min(group, b) + 1) if b % d == 0)
    y = x.float().reshape(b // g, g, c, h, w)
    std = (y.var(dim=1, unbiased=False) + 1e-8).sqrt().mean(dim=1, keepdim=True)  # [B/g, 1, H, W]
    return std.repeat_interleave(g, dim=0).to(x.dtype)


class ReadoutHead(nn.Module):
    """GroupNorm → SiLU → 3×3 conv → SiLU → 1×1 conv to one logit per position; with mbstd_group > 0 the 3×3 conv
    also reads minibatch_std of the head's input, so D can score how varied a group of samples is (a G that
    averages over its pairs' modes makes samples less varied than the teacher's; one sample at a time cannot show it)."""

    def __init__(self, channels: int, hidden: int, mbstd_group: int = 0):
        super().__init__()
        self.mbstd_group = mbstd_group
        self.net = nn.Sequential(  # one Sequential, so checkpoints keep their keys (heads.i.net.k)
            nn.GroupNorm(_groups(channels), channels), nn.SiLU(), nn.Conv2d(channels + (mbstd_group > 0), hidden, 3, padding=1),
            nn.SiLU(), nn.Conv2d(hidden, 1, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mbstd_group == 0:
            return self.net(x)
        return self.net[2:](torch.cat([self.net[:2](x), minibatch_std(x, self.mbstd_group)], dim=1))


class ConditionalDiffusionDiscriminator(nn.Module):
    """Patch logits of D(x_t, t, z, c) at one or several scales, read from the encoder's levels or (readout "decoder";
    `encoder` is then the UNet's decoder_copy, the attribute keeping its name for the checkpoints' keys) from the
    decoder's."""

    def __init__(self, encoder: UNetEncoder, z_conditioning: bool = True, multiscale: bool = True, head_channels: int = 64,
                 generator: torch.Generator | None = None, readout: str = "encoder", mbstd_group: int = 0):
        super().__init__()
        self.encoder, self.readout = encoder, readout
        channels = list(encoder.decoder_channels if readout == "decoder" else encoder.feature_channels)
        self.levels = list(range(len(channels))) if multiscale else [len(channels) - 1]
        self.heads = nn.ModuleList(ReadoutHead(channels[i], head_channels, mbstd_group) for i in self.levels)
        c = encoder.info.latent_channels
        self.z_conv = nn.Conv2d(c, encoder.input_features, 3, padding=1) if z_conditioning else None
        if generator is not None:  # seeded initialisation of the new layers, independent of the global RNG
            with torch.no_grad():  # torch's default conv init, U(±1/√fan_in) for weights and biases; norms stay 1, 0
                for conv in (m for m in self.heads.modules() if isinstance(m, nn.Conv2d)):
                    bound = 1.0 / conv.weight[0].numel() ** 0.5
                    for p in (conv.weight, conv.bias):
                        p.copy_((torch.rand(p.shape, generator=generator) * 2 - 1) * bound)
        if self.z_conv is not None:
            nn.init.zeros_(self.z_conv.weight)
            nn.init.zeros_(self.z_conv.bias)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, z: torch.Tensor, context: torch.Tensor, **extra) -> list[torch.Tensor]:
        """Logit maps [B, 1, h_l, w_l], one per readout level."""
        residual = self.z_conv(z.to(x_t.dtype)) if self.z_conv is not None else None
        features = self.encoder.decoder_features if self.readout == "decoder" else self.encoder.encoder_features
        feats = features(x_t, t, context, input_residual=residual, **extra)
        return [head(feats[i]) for head, i in zip(self.heads, self.levels)]


def sample_d_timesteps(n: int, t_min: int, t_max: int, generator: torch.Generator) -> torch.Tensor:
    """t ~ U{t_min..t_max} per item (CPU, float)."""
    return torch.randint(t_min, t_max + 1, (n,), generator=generator).float()


def renoise_draws(spec: OneStepSpec, n: int, shape: tuple[int, ...], t_range: tuple[int, int],
                  generator: torch.Generator) -> dict[str, torch.Tensor]:
    """What D's re-noising of n samples of `shape` draws: t ~ U{t_range}, then ε, in this order (host tensors), and
    for a VP spec ᾱ_t read from the schedule here — so the pass that uses them needs no device sync (a CUDA graph can
    replay it: training/graph_step.py)."""
    t = sample_d_timesteps(n, *t_range, generator=generator)
    out = {"t": t, "eps": torch.randn(shape, generator=generator)}
    if spec.prediction != "flow":
        out["a"] = spec.schedule.alphas_cumprod()[t.long()]
    return out


def diffuse(spec: OneStepSpec, x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor, a: torch.Tensor | None = None) -> torch.Tensor:
    """x_t as the teacher UNet sees it at timestep t: sqrt(ᾱ_t)·x0 + sqrt(1−ᾱ_t)·ε (flow: (1−s)·x0 + s·ε, s=t/1000).
    `a`: ᾱ_t as renoise_draws read it (else read here from t, which then comes back to the host)."""
    view = (-1,) + (1,) * (x0.ndim - 1)
    if spec.prediction == "flow":
        s = to_device(t / 1000.0, x0.device, x0.dtype).view(view)
        return (1 - s) * x0 + s * eps
    if a is None:
        a = spec.schedule.alphas_cumprod()[t.long().cpu()]
    a = to_device(a, x0.device, torch.float32).view(view)
    return (a.sqrt() * x0 + (1 - a).sqrt() * eps).to(x0.dtype)
