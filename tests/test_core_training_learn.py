"""Diffusion2GAN regression: on a learnable synthetic teacher the loss falls and the student's E-LatentLPIPS to
the teacher drops far below its start; the three regression losses are what they claim to be."""
from __future__ import annotations

import torch
from test_core_training_fixtures import PairsDataset, config, tiny_elpips, tiny_unet

from training.losses import MicroBatch, RegressionLoss
from training.trainer import Trainer


def _distance(trainer, elpips, batch):
    with torch.no_grad():
        x0 = trainer.generator(batch["noise"], batch["context"])
        return elpips.evaluate(trainer.info.to_latent(x0), batch["latent"], draws=4, seed=1).mean().item()


def test_regression_learns_the_teacher():
    torch.manual_seed(0)
    elpips, ds = tiny_elpips(), PairsDataset()
    trainer = Trainer(tiny_unet(), config(discriminator={"enabled": False}, optim={"lr_g": 3e-3}), elpips)
    held = {k: torch.stack([ds[i][k] for i in range(8)]) for k in ("noise", "latent", "context")}
    start = _distance(trainer, elpips, held)
    losses = []
    result = trainer.run(ds, 30, on_step=lambda step, logs: losses.append(logs["regression"]))
    assert result.step == 30 and not result.stopped and len(losses) == 30
    assert sum(losses[-5:]) / 5 < 0.4 * sum(losses[:3]) / 3
    assert _distance(trainer, elpips, held) < 0.35 * start
    assert all("gan_g" not in k for k in result.logs)  # no discriminator: regression only


def test_regression_kinds():
    from training.unet_interface import ModelInfo

    elpips, info = tiny_elpips(), ModelInfo(4, 32)
    x = torch.randn(2, 4, 16, 16)
    latent = torch.randn(2, 4, 16, 16)
    mb = lambda seed: MicroBatch(z=x, real=info.to_unet_space(latent), latent=latent, context=torch.zeros(2, 1, 32), rng=torch.Generator().manual_seed(seed))
    mse = RegressionLoss("mse", info)(x, mb(0))
    torch.testing.assert_close(mse, (x - latent * info.latent_scale).pow(2).mean(dim=(1, 2, 3)))
    plain = RegressionLoss("latentlpips", info, elpips)
    assert torch.equal(plain(x, mb(0)), plain(x, mb(1)))  # one draw without augmentation: no randomness
    ens = RegressionLoss("elatentlpips", info, elpips)
    assert not torch.equal(ens(x, mb(0)), ens(x, mb(1)))  # a fresh augmentation per call
    assert torch.equal(ens(x, mb(3)), ens(x, mb(3)))  # ... drawn from the micro-batch's generator
    assert torch.allclose(ens(info.to_unet_space(latent), mb(0)), torch.zeros(2), atol=1e-5)  # d(x, x) = 0
