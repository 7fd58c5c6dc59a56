"""The GAN settings added after proof-scale run 10: the paired relativistic loss (LossConfig.gan_loss "relativistic"),
D's ranking accuracy in the logs, D's own constant learning rate (OptimConfig.lr_d_schedule) and Adam β
(OptimConfig.betas_d), and the ramp of G's GAN weight (LossConfig.gan_ramp_steps)."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from test_core_training_fixtures import PairsDataset, batch_of, config, tiny_unet

from training.discriminator import diffuse, sample_d_timesteps
from training.losses import DiscriminatorLoss, GeneratorLoss, MicroBatch, RegressionLoss
from training.trainer import Trainer


def _mb(trainer, b, seed=0):
    x = trainer.info.to_unet_space(b["latent"])
    return MicroBatch(z=b["noise"], real=x, latent=b["latent"], context=b["context"], extra={}, seed=torch.arange(len(x)),
                      prompt_index=torch.arange(len(x)), rng=torch.Generator().manual_seed(seed))


def _reference_logits(trainer, b, fake, seed, t_range=(0, 499)):
    """D's logits on (real_t, fake_t) drawn as the losses draw them: t first, then ε, from the micro-batch's generator."""
    g, spec, d = torch.Generator().manual_seed(seed), trainer.config.generator.spec, trainer.discriminator
    real = trainer.info.to_unet_space(b["latent"])
    t = sample_d_timesteps(len(real), *t_range, generator=g)
    eps = torch.randn(real.shape, generator=g)
    return d(diffuse(spec, real, eps, t), t, b["noise"], b["context"]), d(diffuse(spec, fake, eps, t), t, b["noise"], b["context"])


def test_relativistic_losses_match_an_element_wise_reference():
    trainer = Trainer(tiny_unet(), config(loss={"regression": "mse", "gan_loss": "relativistic"}, discriminator={"mix_and_match": False}))
    b = batch_of(PairsDataset())
    fake = trainer.info.to_unet_space(b["latent"]) + 0.3 * torch.randn(b["latent"].shape, generator=torch.Generator().manual_seed(5))
    d_loss = DiscriminatorLoss(trainer.config.generator.spec, (0, 499), False, True, 0.0, 16, gan_loss="relativistic")
    with torch.no_grad():
        terms, _ = d_loss.adversarial(trainer.discriminator, fake, _mb(trainer, b))
        real_l, fake_l = _reference_logits(trainer, b, fake, 0)
    pos = lambda w, lo: torch.stack([F.softplus(f - r).mean(dim=(1, 2, 3)) for r, f in zip(w, lo)]).mean(0)  # noqa: E731
    assert torch.allclose(terms["d_pair"], pos(real_l, fake_l).mean(), atol=1e-6)
    assert "d_real" not in terms and terms["total"] is terms["d_pair"]
    score = lambda ls: torch.stack([l.mean(dim=(1, 2, 3)) for l in ls]).mean(0)  # noqa: E731
    gap = score(real_l) - score(fake_l)
    assert torch.allclose(terms["d_gap"], gap.mean(), atol=1e-6) and terms["d_rank_acc"] == (gap > 0).float().mean()

    # G's term: the same draws, the roles swapped; its gradient reaches G's output only through the fake's logits
    g_loss = GeneratorLoss(RegressionLoss("mse", trainer.info), trainer.config.generator.spec, 1.0, (0, 499), "fixed", gan_loss="relativistic")
    out = fake.clone().requires_grad_(True)
    gan = g_loss._gan(out, trainer.discriminator, _mb(trainer, b))
    assert torch.allclose(gan, pos(fake_l, real_l).mean().detach(), atol=1e-6)
    gan.backward()
    assert out.grad is not None and out.grad.abs().sum() > 0


def test_standard_loss_draws_are_unchanged_and_still_reported():
    """The standard loss keeps its terms (d_real, d_fake) and gains the ranking accuracy; G's standard term equals
    softplus(−D(x̂_t)) under the same draw order as before."""
    trainer = Trainer(tiny_unet(), config(loss={"regression": "mse"}, discriminator={"mix_and_match": False}))
    b = batch_of(PairsDataset())
    fake = trainer.info.to_unet_space(b["latent"]) * 0.5
    g_loss = GeneratorLoss(RegressionLoss("mse", trainer.info), trainer.config.generator.spec, 1.0, (0, 499), "fixed")
    with torch.no_grad():
        gan = g_loss._gan(fake, trainer.discriminator, _mb(trainer, b, seed=3))
        g = torch.Generator().manual_seed(3)
        t = sample_d_timesteps(4, 0, 499, generator=g)
        eps = torch.randn(fake.shape, generator=g)
        logits = trainer.discriminator(diffuse(trainer.config.generator.spec, fake, eps, t), t, b["noise"], b["context"])
        ref = torch.stack([F.softplus(-l).mean(dim=(1, 2, 3)) for l in logits]).mean(0).mean()
        terms, _ = trainer.parts.d_loss.adversarial(trainer.discriminator, fake, _mb(trainer, b))
    assert torch.allclose(gan, ref, atol=1e-6)
    assert {"d_real", "d_fake", "d_rank_acc", "d_gap"} <= set(terms) and 0.0 <= float(terms["d_rank_acc"]) <= 1.0


def test_relativistic_discriminator_learns_to_rank_and_mix_and_match_pairs_with_the_real():
    # D trained alone (G's lr 0) on a batch whose fakes differ from their reals: its pairwise loss falls well below
    # chance (ln 2) and it ranks every real above its fake; the mix-and-match terms are relativistic too.
    cfg = config(loss={"regression": "mse", "warmup_steps": 1000, "d_lead_steps": 1000, "gan_loss": "relativistic"},
                 optim={"lr_g": 0.0, "lr_d": 1e-3, "lr_warmup": 0}, discriminator={"r1_gamma": 0.0, "d_t_max": 100}, batch_size=8)
    trainer = Trainer(tiny_unet(), cfg)
    b = batch_of(PairsDataset(n=8), 8)
    logs = [trainer.train_step(b) for _ in range(30)]
    assert abs(logs[0]["d_pair"] - math.log(2)) < 0.05 and "d_mixed" in logs[0]
    assert sum(x["d_pair"] for x in logs[-5:]) / 5 < 0.3, [x["d_pair"] for x in logs]
    assert logs[-1]["d_rank_acc"] == 1.0 and logs[-1]["d_gap"] > 1.0


def test_constant_discriminator_lr_ignores_the_generator_schedule():
    def lrs(schedule):
        t = Trainer(tiny_unet(), config(loss={"regression": "mse"}, optim={"lr_g": 1e-3, "lr_d": 2e-3, "lr_warmup": 100, "lr_d_schedule": schedule}))
        t._set_learning_rates()
        return {name: net.optimizer.param_groups[0]["lr"] for name, net in t.networks.items()}

    shared, constant = lrs("shared"), lrs("constant")
    g = next(k for k in shared if k == "generator")
    d = next(k for k in shared if k != g)
    assert shared[g] == constant[g] < 1e-3 / 50  # G warms up either way (step 0 of 100)
    assert shared[d] < 2e-3 / 50 and constant[d] == 2e-3


def test_discriminator_betas_and_the_gan_weight_ramp():
    t = Trainer(tiny_unet(), config(loss={"regression": "mse"}, optim={"betas_d": (0.0, 0.99), "eps_d": 1e-5}))
    betas = {name: net.optimizer.param_groups[0]["betas"] for name, net in t.networks.items()}
    assert betas["generator"] == (0.9, 0.999) and [b for n, b in betas.items() if n != "generator"] == [(0.0, 0.99)]
    eps = {name: net.optimizer.param_groups[0]["eps"] for name, net in t.networks.items()}
    assert eps["generator"] == 1e-8 and [e for n, e in eps.items() if n != "generator"] == [1e-5]  # D's own Adam ε
    with pytest.raises(ValueError, match="eps_d"):
        config(optim={"eps_d": 0.0})

    def gan_scale(ramp_steps, step):
        cfg = config(loss={"regression": "mse", "warmup_steps": 2, "gan_ramp_steps": ramp_steps, "gan_balance": "adaptive", "gan_weight": 1.0,
                           "gan_scale_max": 1e12})
        t = Trainer(tiny_unet(), cfg)
        b = batch_of(PairsDataset())
        logs = [t.train_step(b) for _ in range(step)]
        return logs[-1]["gan_scale"]

    # the same draws up to the step looked at: at the first GAN step (step 3, 1-based) a 4-step ramp gives ¼ of the weight
    assert abs(gan_scale(4, 3) / gan_scale(0, 3) - 0.25) < 1e-4
