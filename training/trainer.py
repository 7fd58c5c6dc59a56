"""The Diffusion2GAN trainer (Kang et al., ECCV 2024) as callers before the method engine built it: the engine
(engine.py) with the method the config names (by default Diffusion2GAN, methods/diffusion2gan.py) and
E-LatentLPIPS as its one resource. Its discriminator and D optimiser stay reachable by their old names."""
from __future__ import annotations

import torch

from .core import ELatentLPIPS
from .config import TrainConfig
from .engine import STATE_VERSION, Engine, OnStep, RunResult
from .methods import Resources
from .unet_interface import TrainableUNet

__all__ = ["STATE_VERSION", "OnStep", "RunResult", "Trainer"]


class Trainer(Engine):
    """Engine(unet, config, Resources(elpips), device)."""

    def __init__(self, unet: TrainableUNet, config: TrainConfig, elpips: ELatentLPIPS | None = None, device: torch.device | str | None = None):
        super().__init__(unet, config, Resources(elpips=elpips), device)

    @property
    def discriminator(self):
        """Diffusion2GAN's D (None for a regression run)."""
        return getattr(self.method, "discriminator", None)

    @property
    def opt_d(self):
        """D's optimiser (None without D)."""
        net = self.networks.get("discriminator")
        return net.optimizer if net is not None else None

    @property
    def parts(self):
        """The method, which holds the losses (g_loss, d_loss) the step functions of old held as parts."""
        return self.method

    def discriminator_parameters(self) -> list[torch.nn.Parameter]:
        """D's parameters being trained (all, or with a LoRA backbone its LoRA factors, heads and z-conv)."""
        return [p for p in self.discriminator.parameters() if p.requires_grad] if self.discriminator is not None else []
