"""Regression distillation (Kang et al., ECCV 2024, Table 3's loss ablation): G(z, c) fitted to the teacher's ODE
output x of each pair with d(G(z, c), x) — E-LatentLPIPS, LatentLPIPS (one un-augmented draw) or latent MSE
(losses.RegressionLoss; formulas in docs/methods.md). One phase: the generator step."""
from __future__ import annotations

from functools import partial

from ..losses import MicroBatch, RegressionLoss
from ..unet_interface import ModelInfo
from .base import PAIRS, Backward, Method, Phase, Resources


def regression_loss(kind: str, info: ModelInfo, resources: Resources) -> RegressionLoss:
    """The regression loss `kind` (LossConfig.regression) on the resources' E-LatentLPIPS, refused when its weights are
    for another latent channel count than the UNet's."""
    elpips = resources.elpips
    if elpips is not None and elpips.encoder.channels != info.latent_channels:
        raise ValueError(f"E-LatentLPIPS weights are for {elpips.encoder.channels}-channel latents, the UNet makes {info.latent_channels}")
    return RegressionLoss(kind, info, elpips)


def place_elpips(resources: Resources, device) -> None:
    """E-LatentLPIPS (when given) on the training device, frozen."""
    if resources.elpips is not None:
        resources.elpips.to(device).eval().requires_grad_(False)


class Regression(Method):
    """min_G E[d(G(z, c), x)] over teacher pairs."""

    name = "regression"
    file_method = "diffusion2gan"  # the paper's regression-only ablation: its files load and run as Diffusion2GAN's
    data = PAIRS

    @classmethod
    def needs_elpips(cls, config) -> bool:
        return config.loss.regression != "mse"

    def prepare(self, info: ModelInfo) -> None:
        self.regression = regression_loss(self.config.loss.regression, info, self.resources)

    def build(self, engine) -> list:
        place_elpips(self.resources, engine.device)
        return []

    def phases(self, engine, step: int) -> list[Phase]:
        return [Phase("generator", partial(self._generator, engine))]

    def _generator(self, engine, mb: MicroBatch, backward: Backward) -> dict:
        with backward.autocast():
            loss = self.regression(engine.generator(mb.z, mb.context, **mb.extra), mb).mean()
        backward(loss)
        return {"regression": loss, "total": loss}
