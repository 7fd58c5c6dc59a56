"""The conditional diffusion discriminator and the GAN steps: D starts as the teacher's encoder, one GAN step moves
G and D, R1 runs every 16th step only, and each ablation switch of the paper changes what is computed."""
from __future__ import annotations

import copy

import pytest
import torch
from test_core_training_fixtures import PairsDataset, batch_of, config, tiny_elpips, tiny_unet

from training.losses import DiscriminatorLoss, MicroBatch
from training.trainer import Trainer


def _d_logits(trainer, batch, z=None):
    d = trainer.discriminator
    with torch.no_grad():
        x = trainer.info.to_unet_space(batch["latent"])
        return d(x, torch.full((x.shape[0],), 100.0), batch["noise"] if z is None else z, batch["context"])


def test_discriminator_starts_from_the_teacher_encoder():
    unet = tiny_unet()
    teacher = {k: v.clone() for k, v in unet.state_dict().items()}
    trainer = Trainer(unet, config(), tiny_elpips())
    enc = trainer.discriminator.encoder.state_dict()
    assert set(enc) < set(teacher) and not any(k.startswith("unet.up_blocks") for k in enc)
    assert all(torch.equal(enc[k], teacher[k]) for k in enc)
    assert trainer.discriminator.encoder.unet is not unet.unet  # a copy, not shared weights
    ds = PairsDataset()
    b = batch_of(ds)
    a, c = _d_logits(trainer, b), _d_logits(trainer, b, z=torch.randn_like(b["noise"]))
    assert all(torch.equal(x, y) for x, y in zip(a, c))  # zero-initialised z-conv: D is the teacher's encoder


def test_discriminator_initialisation_follows_the_run_seed_only():
    # the new layers (heads, z-conv) come from the config's seed, not the global RNG, so that a run started
    # twice from the same flags in two processes is the same run
    built = []
    for global_seed in (1, 2):
        unet, elpips = tiny_unet(), tiny_elpips()  # (the fixtures seed the global RNG themselves)
        torch.manual_seed(global_seed)
        built.append(Trainer(unet, config(), elpips).discriminator.state_dict())
    assert all(torch.equal(built[0][k], built[1][k]) for k in built[0])
    other = Trainer(tiny_unet(), config(seed=7), tiny_elpips()).discriminator.state_dict()
    assert not all(torch.equal(built[0][k], other[k]) for k in other if k.startswith("heads."))


def test_one_gan_step_changes_generator_and_discriminator():
    trainer = Trainer(tiny_unet(), config(), tiny_elpips())
    g0 = {n: p.detach().clone() for n, p in trainer.unet.named_parameters()}
    d0 = {n: p.detach().clone() for n, p in trainer.discriminator.named_parameters()}
    logs = trainer.train_step(batch_of(PairsDataset()))
    assert {"regression", "gan_g", "d_real", "d_fake", "d_mixed", "r1"} <= set(logs)
    g_moved = [n for n, p in trainer.unet.named_parameters() if not torch.equal(p, g0[n])]
    d_moved = [n for n, p in trainer.discriminator.named_parameters() if not torch.equal(p, d0[n])]
    assert len(g_moved) > 0.9 * len(g0)
    assert any(n.startswith("encoder.") for n in d_moved) and any(n.startswith("heads.") for n in d_moved)
    assert any(n.startswith("z_conv.") for n in d_moved)  # z-conditioning learns from the first step


def test_r1_every_16_steps():
    ds = PairsDataset(n=8)
    trainer = Trainer(tiny_unet(), config(loss={"regression": "mse"}, batch_size=2, discriminator={"mix_and_match": False}))
    with_r1 = []
    trainer.run(ds, 17, on_step=lambda step, logs: with_r1.append(step) if "r1" in logs else None)
    assert with_r1 == [1, 17]  # steps 1 and 17 (0-based 0 and 16)
    no_r1 = Trainer(tiny_unet(), config(loss={"regression": "mse"}, batch_size=2, discriminator={"r1_gamma": 0.0}))
    assert "r1" not in no_r1.train_step(batch_of(ds, 2))


def test_ablation_switches():
    ds = PairsDataset()
    b = batch_of(ds)
    run = lambda **kw: Trainer(tiny_unet(), config(**{"loss": {"regression": "mse"}, **kw}))

    off = run(discriminator={"enabled": False})
    assert off.discriminator is None and not {"gan_g", "d_real"} & set(off.train_step(b))

    warm = run(loss={"regression": "mse", "warmup_steps": 1})
    assert "gan_g" not in warm.train_step(b) and "gan_g" in warm.train_step(b)  # regression-only first

    lead = run(loss={"regression": "mse", "warmup_steps": 2, "d_lead_steps": 1})  # D trains from step 1, G hears it from step 2
    d_before = {k: v.clone() for k, v in lead.discriminator.state_dict().items()}
    first = lead.train_step(b)
    assert not {"gan_g", "d_real"} & set(first) and all(torch.equal(v, lead.discriminator.state_dict()[k]) for k, v in d_before.items())
    second = lead.train_step(b)
    assert "d_real" in second and "gan_g" not in second
    assert not all(torch.equal(v, lead.discriminator.state_dict()[k]) for k, v in d_before.items())
    assert {"gan_g", "d_real"} <= set(lead.train_step(b))
    with pytest.raises(ValueError, match="d_lead_steps"):
        config(loss={"warmup_steps": 2, "d_lead_steps": 3})

    plain = run(discriminator={"z_conditioning": False})
    assert plain.discriminator.z_conv is None
    plain.train_step(b)
    z2 = torch.randn_like(b["noise"])
    assert all(torch.equal(x, y) for x, y in zip(_d_logits(plain, b), _d_logits(plain, b, z2)))  # D ignores z
    zc = run()
    zc.train_step(b)
    assert not all(torch.equal(x, y) for x, y in zip(_d_logits(zc, b), _d_logits(zc, b, z2)))  # D reads z

    assert len(_d_logits(zc, b)) == 3  # heads after both down levels and the middle block
    single = run(discriminator={"multiscale": False})
    logits = _d_logits(single, b)
    assert len(logits) == 1 and logits[0].shape[-1] == 8  # the middle block's scale

    assert "d_mixed" in zc.train_step(b)
    assert "d_mixed" not in run(discriminator={"mix_and_match": False}).train_step(b)


def test_mix_and_match_counts_only_wrong_pairs():
    trainer = Trainer(tiny_unet(), config(loss={"regression": "mse"}))
    b = batch_of(PairsDataset())
    loss = trainer.parts.d_loss
    x = trainer.info.to_unet_space(b["latent"])

    def mixed(seed, prompt):
        mb = MicroBatch(z=b["noise"], real=x, latent=b["latent"], context=b["context"], seed=seed, prompt_index=prompt, rng=torch.Generator().manual_seed(0))
        return loss(trainer.discriminator, x.clone(), mb, apply_r1=False)["d_mixed"]

    same = torch.zeros(4, dtype=torch.long)
    assert mixed(same, same).item() == 0.0  # every item shares seed and prompt: no mismatched pair exists
    assert mixed(torch.arange(4), torch.arange(4)).item() > 0.0
    assert isinstance(loss, DiscriminatorLoss)


def test_approximate_r1_matches_the_exact_penalty_on_average():
    """(D(x+σn) − D(x))²/σ² averages to ‖∇_x D‖²: the approx mode's mean over noise draws ≈ the exact R1."""
    trainer = Trainer(tiny_unet(), config(loss={"regression": "mse"}), tiny_elpips())
    b = batch_of(PairsDataset(), 1)
    x = trainer.info.to_unet_space(b["latent"])
    t = torch.full((1,), 100.0)
    mb = MicroBatch(z=b["noise"], real=x, latent=b["latent"], context=b["context"], extra={}, seed=None, prompt_index=None,
                    rng=torch.Generator().manual_seed(0))
    exact = DiscriminatorLoss(trainer.config.generator.spec, (0, 499), False, True, 1.0, 16).r1(trainer.discriminator, x, t, mb)
    approx_loss = DiscriminatorLoss(trainer.config.generator.spec, (0, 499), False, True, 1.0, 16, "approx", 1e-3)
    draws = torch.stack([approx_loss.r1_approx(trainer.discriminator, x, t, mb).detach() for _ in range(400)])
    assert abs(draws.mean() / exact.detach() - 1) < 0.25, (draws.mean(), exact)
    trainer_approx = Trainer(tiny_unet(), config(loss={"regression": "mse"}, discriminator={"r1_mode": "approx"}), tiny_elpips())
    d0 = {n: p.detach().clone() for n, p in trainer_approx.discriminator.named_parameters()}
    logs = trainer_approx.train_step(batch_of(PairsDataset()))
    assert "r1" in logs and torch.isfinite(torch.tensor(logs["r1"]))
    assert any(not torch.equal(p, d0[n]) for n, p in trainer_approx.discriminator.named_parameters())


def test_discriminator_trained_alone_learns_like_a_plain_loop():
    # Proof-scale runs 6 and 9 saw D sit at chance while it trained alone (d_lead_steps; G on its regression only), where a
    # standalone probe's D separated the same kind of samples. Here the trainer's D phase (optimiser, lr × schedule,
    # freezing G, R1 in its own backward, clipping) must learn as fast as the same D under a plain loop: on a fixed batch
    # whose real and fake clearly differ, its loss falls far below chance (2·ln 2 ≈ 1.386) within a few dozen steps.
    from training.discriminator import diffuse, sample_d_timesteps
    from training.losses import _ns

    steps, lr = 30, 1e-3
    cfg = config(loss={"regression": "mse", "warmup_steps": 1000, "d_lead_steps": 1000}, optim={"lr_g": 0.0, "lr_d": lr, "lr_warmup": 0},
                 discriminator={"mix_and_match": False, "r1_gamma": 0.1, "r1_every": 16}, batch_size=8)
    trainer = Trainer(tiny_unet(), cfg)
    plain_d = copy.deepcopy(trainer.discriminator)
    b = batch_of(PairsDataset(n=8), 8)
    losses = [trainer.train_step(b)["d_total"] for _ in range(steps)]
    assert "gan_g" not in trainer.train_step(b)  # G never heard D: it trained alone

    real = trainer.info.to_unet_space(b["latent"])
    with torch.no_grad():
        fake = trainer.generator(b["noise"], b["context"])  # G did not move (lr 0): the trainer's fakes
    assert (real - fake).pow(2).mean().sqrt() > 0.5 * real.std()  # real and fake clearly differ
    opt = torch.optim.AdamW([p for p in plain_d.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
    g, spec, plain = torch.Generator().manual_seed(1), cfg.generator.spec, []
    for _ in range(steps):
        t = sample_d_timesteps(8, cfg.discriminator.d_t_min, cfg.discriminator.d_t_max, g)
        eps = torch.randn(real.shape, generator=g)
        logits = plain_d(torch.cat([diffuse(spec, real, eps, t), diffuse(spec, fake, eps, t)]), t.repeat(2), b["noise"].repeat(2, 1, 1, 1),
                         b["context"].repeat(2, 1, 1))
        halves = [list(x) for x in zip(*[l.split(8) for l in logits])]
        loss = (_ns(halves[0], real=True) + _ns(halves[1], real=False)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(plain_d.parameters(), 1.0)
        opt.step()
        plain.append(loss.item())
    tail = lambda v: sum(v[-5:]) / 5  # noqa: E731
    assert abs(losses[0] - 1.386) < 0.05 and tail(plain) < 0.7  # both start at chance; the plain loop learns
    assert tail(losses) < 0.7 and tail(losses) < tail(plain) + 0.15, (losses, plain)


def test_hold_generator_keeps_g_still_until_the_gan_starts():
    # LossConfig.hold_generator: while D leads (steps before warmup_steps) G's lr is 0, so its weights stay the start
    # weights exactly; from warmup_steps on it trains, its lr warm-up counting from there
    b = batch_of(PairsDataset())
    cfg = config(loss={"regression": "mse", "warmup_steps": 2, "d_lead_steps": 2, "hold_generator": True}, optim={"lr_warmup": 2})
    trainer = Trainer(tiny_unet(), cfg)
    g0 = {n: p.detach().clone() for n, p in trainer.unet.named_parameters()}
    d0 = {n: p.detach().clone() for n, p in trainer.discriminator.named_parameters()}
    for _ in range(2):
        logs = trainer.train_step(b)
        assert "d_real" in logs and "gan_g" not in logs
    assert all(torch.equal(p, g0[n]) for n, p in trainer.unet.named_parameters())
    assert not all(torch.equal(p, d0[n]) for n, p in trainer.discriminator.named_parameters())
    assert trainer.opt_g.param_groups[0]["lr"] == 0.0
    assert "gan_g" in trainer.train_step(b)
    assert trainer.opt_g.param_groups[0]["lr"] == pytest.approx(cfg.optim.lr_g / 2)  # warm-up step 1 of 2
    assert not all(torch.equal(p, g0[n]) for n, p in trainer.unet.named_parameters())
    with pytest.raises(ValueError, match="d_lead_steps must equal warmup_steps"):  # steps where nothing trains
        config(loss={"warmup_steps": 2, "d_lead_steps": 1, "hold_generator": True})
    # without the hold G trains on its regression while D leads
    free = Trainer(tiny_unet(), config(loss={"regression": "mse", "warmup_steps": 2, "d_lead_steps": 2}, optim={"lr_warmup": 2}))
    f0 = {n: p.detach().clone() for n, p in free.unet.named_parameters()}
    free.train_step(b)
    assert not all(torch.equal(p, f0[n]) for n, p in free.unet.named_parameters())
