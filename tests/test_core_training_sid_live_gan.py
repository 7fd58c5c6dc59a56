"""SiD-LSG's live GAN (SidConfig.live_gan_weight; training/methods/sid_lsg.py) on the CPU with a tiny UNet: the
settings are checked and the run stays prompts-only; G's extra gradient is D's non-saturating loss on G(z_a) at its
share of the SiD gradient (draws in their order); D's phase trains D alone on φ's samples as real and G's as fake;
N straight steps equal N/2 + resume + N/2 with D and its optimiser in the checkpoint; D pulls G toward φ's samples."""
from __future__ import annotations

import dataclasses
import json
import os

import pytest
import torch
from safetensors import safe_open
from test_core_training_fixtures import tiny_unet
from test_core_training_sid_lsg import (SIZE, _generator_grads, assert_anchor_term, engine, moved_fake_score, prompts,
                                        reference_ddim, sid_config)

from training.config import DiscriminatorConfig, SidConfig
from training.discriminator import diffuse, sample_d_timesteps
from training.losses import _ns
from training.methods import PROMPTS
from training.methods.base import Backward
from training.methods.diffusion2gan import Diffusion2GAN
from training.methods.sid_lsg import SidLSG
from training.session import TrainingSession


def gan(weight: float = 0.5, items: int = 2, steps: int = 2, top: dict | None = None, **sid):
    return engine(sid_config(top=top, live_gan_weight=weight, live_anchor_items=items, live_anchor_steps=steps, **sid))


def moved_discriminator(e, seed: int = 11) -> None:
    """D's zero-initialised heads moved a little, so that its loss has a gradient at G's output."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in e.method.discriminator.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=g) * 0.02)


def _params(module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in module.named_parameters() if p.requires_grad}


def test_live_gan_settings_are_checked_and_keep_the_run_prompts_only():
    assert SidLSG.data_for(sid_config(live_gan_weight=0.5)) == PROMPTS
    for field, value in (("live_gan_weight", -0.1), ("live_gan_lr", -1e-4)):
        with pytest.raises(ValueError, match=field):
            SidConfig(**{field: value})
    with pytest.raises(ValueError, match="one recall anchor at a time"):
        SidConfig(anchor_weight=0.25, live_gan_weight=1.0)
    with pytest.raises(ValueError, match="live GAN calls the teacher's own samples real"):
        gan(top={"discriminator": DiscriminatorConfig(real_images="x.safetensors", z_conditioning=False)})
    e = gan(0.5, live_gan_lr=3e-4)
    assert e.method.capturable() is None  # its draws are phase draws (test_core_training_graph_step.py replays it)
    notes = e.method.file_notes()["sid_lsg"]
    assert notes["live_gan_weight"] == 0.5 and notes["live_anchor_items"] == 2  # the samples' settings, with no regression on
    d = e.networks["discriminator"]
    assert d.module is e.method.discriminator and d.lr == 3e-4
    assert e.networks["discriminator"].optimizer.param_groups[0]["betas"] == Diffusion2GAN.optim_defaults["betas_d"]
    assert e.networks["fake_score"].optimizer.param_groups[0]["betas"] == SidLSG.optim_defaults["betas"]  # ψ keeps SiD's
    assert gan(0.5).networks["discriminator"].lr == e.config.optim.lr_d
    assert [p.network for p in e.method.phases(e, 0)] == ["fake_score", "generator", "discriminator"]
    assert notes["live_gan_start"] == 0


def test_before_live_gan_start_d_trains_and_g_does_not_hear_it():
    batch = {"context": prompts().context[:4]}
    e = gan(0.5, live_gan_start=3)
    moved_fake_score(e)
    moved_discriminator(e)
    assert [p.network for p in e.method.phases(e, 2)] == ["fake_score", "generator", "discriminator"]
    early, late = (next(p for p in e.method.phases(e, step) if p.network == "generator") for step in (2, 3))
    grads = []
    for phase in (early, late):
        mb = e._micro_batch(batch, 0)
        mb.rng = torch.Generator().manual_seed(0)
        e.unet.zero_grad(set_to_none=True)
        terms = phase.update(mb, Backward(1, False, e.device))
        grads.append(torch.cat([p.grad.flatten() for p in e.unet.parameters() if p.grad is not None]))
        assert "live_pairs" in mb.outputs  # D's phase has its pairs either way
        assert ("gan_g" in terms) == (phase is late)
    assert not torch.allclose(grads[0], grads[1])
    assert "discriminator" not in engine().networks


def test_without_the_anchors_regression_g_of_z_a_keeps_a_graph_only_once_g_hears_d():
    """live_anchor_weight 0: before live_gan_start G(z_a) is only D's fake, so it is built without autograd's graph."""
    batch = {"context": prompts().context[:4]}
    e = gan(0.5, live_gan_start=3, live_anchor_weight=0.0)
    moved_fake_score(e)
    generator, graph = e.generator, []

    def spy(z, *args, **kwargs):
        if len(z) == 2:  # the anchored items' call (the SiD batch is 4)
            graph.append(torch.is_grad_enabled())
        return generator(z, *args, **kwargs)

    e.generator = spy
    for step in (2, 3):
        mb = e._micro_batch(batch, 0)
        mb.rng = torch.Generator().manual_seed(0)
        next(p for p in e.method.phases(e, step) if p.network == "generator").update(mb, Backward(1, False, e.device))
        assert "live_pairs" in mb.outputs
    assert graph == [False, True]


def test_live_gan_adds_ds_loss_on_g_at_its_share_of_the_sid_gradient():
    batch = {"context": prompts().context[:4]}
    plain, e = engine(), gan(0.5, items=2, steps=2)
    moved_fake_score(plain)
    e.method.fake.load_state_dict(plain.method.fake.state_dict())
    moved_discriminator(e)
    t0, g0 = _generator_grads(plain, batch)
    t1, g1 = _generator_grads(e, batch)
    assert t1["sid"] == t0["sid"] and "gan_g" in t1 and "gan_g" not in t0 and "anchor_scale" not in t1
    # the reference: the phase's draws (z, ε, t, z_a), then the GAN's (D's t, its ε) from the same source
    m, spec = e.method, e.config.generator.spec
    mb = e._micro_batch(batch, 0)
    rng = torch.Generator().manual_seed(0)
    z = torch.randn(4, 4, SIZE, SIZE, generator=rng)
    eps, t = torch.randn(z.shape, generator=rng), torch.randint(20, 980, (4,), generator=rng)
    z_a = torch.randn(2, 4, SIZE, SIZE, generator=rng)
    t_d = sample_d_timesteps(2, e.config.discriminator.d_t_min, e.config.discriminator.d_t_max, rng)
    eps_d = torch.randn(z_a.shape, generator=rng)
    x_g = e.generator(z, mb.context).detach().requires_grad_(True)
    sid, _, _ = m.g_loss(m.fake, m.teacher, x_g, eps, t, *m._conditioning(mb))
    (g_sid,) = torch.autograd.grad(sid.mean(), x_g)
    with torch.no_grad():
        target = reference_ddim(m.teacher, "eps", z_a, {"context": mb.context[:2]}, {"context": m.uncond["context"].expand(2, -1, -1)},
                                e.config.sid.kappa4, 2)
    assert float(t1["anchor"]) == pytest.approx((e.generator(z_a, mb.context[:2]) - target).pow(2).mean().item(), rel=1e-4)  # logged only
    e.unet.zero_grad(set_to_none=True)
    x_a = e.generator(z_a, mb.context[:2])
    loss = _ns(m.discriminator(diffuse(spec, x_a, eps_d, t_d), t_d, z_a, mb.context[:2]), real=True).mean()
    terms = {"anchor": t1["gan_g"], "anchor_scale": t1["gan_g_scale"]}
    assert_anchor_term(e, terms, g0, g1, g_sid, x_a, loss, 0.5, distance_rel=1e-5)


def test_the_discriminators_phase_trains_d_alone_on_the_teachers_samples_as_real():
    e = gan(1.0, items=3, steps=2)
    moved_fake_score(e)
    mb = e._micro_batch({"context": prompts().context[:4]}, 0)
    mb.rng = torch.Generator().manual_seed(0)
    e.method._generator(e, mb, Backward(1, False, e.device))
    pairs = mb.outputs["live_pairs"]
    assert pairs.real.shape == pairs.outputs["fake"].shape == (3, 4, SIZE, SIZE) and pairs.z.shape == (3, 4, SIZE, SIZE)
    assert not torch.equal(pairs.real, pairs.outputs["fake"])
    for net in (e.unet, e.method.fake, e.method.discriminator):
        net.zero_grad(set_to_none=True)
    terms = e.method._discriminator(True, mb, Backward(1, False, e.device))
    assert {"d_real", "d_fake", "d_mixed", "d_rank_acc", "r1", "total"} <= set(terms) and torch.isfinite(terms["total"])
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in e.method.discriminator.parameters())
    assert all(p.grad is None for p in e.method.fake.parameters())


def _state(session: TrainingSession) -> dict[str, torch.Tensor]:
    e = session.trainer
    out = {f"g.{k}": v.clone() for k, v in e.generator_state_dict(ema=False, layout="native").items()}
    out.update({f"d.{k}": v.detach().clone() for k, v in e.method.discriminator.state_dict().items()})
    out.update({f"fake.{k}": v.detach().clone() for k, v in e.method.fake.state_dict().items()})
    return out


def test_resume_is_exact_with_the_discriminator_in_the_checkpoint(tmp_path):
    config = sid_config(live_gan_weight=0.5, live_anchor_weight=0.5, live_anchor_items=2, live_anchor_steps=2)
    config = dataclasses.replace(config, discriminator=DiscriminatorConfig(r1_every=2))  # R1 on steps 0 and 2
    straight = TrainingSession(tiny_unet(), config, prompts(), str(tmp_path / "straight"))
    d0 = _params(straight.trainer.method.discriminator)
    result = straight.run(4)
    assert {"d_real", "d_fake", "d_total", "grad_norm_d", "gan_g", "gan_g_scale", "anchor", "anchor_scale"} <= set(result.logs)
    want = _state(straight)
    assert any(not torch.equal(v, d0[k]) for k, v in _params(straight.trainer.method.discriminator).items())  # D trained

    run_dir = str(tmp_path / "halves")
    half = TrainingSession(tiny_unet(), config, prompts(), run_dir)
    assert half.run(4, on_step=lambda step, logs: step == 2).stopped
    with safe_open(os.path.join(run_dir, "checkpoint.safetensors"), "pt") as f:
        keys = set(f.keys())
        assert json.loads(f.metadata()["onestep.trainer_state"])["step"] == 2
    assert any(k.startswith("/discriminator/") for k in keys) and any(k.startswith("/opt_d/state/") for k in keys)
    resumed = TrainingSession(tiny_unet(), config, prompts(), run_dir)
    resumed.run(4)
    got = _state(resumed)
    assert set(got) == set(want) and all(torch.equal(got[k], want[k]) for k in want), [k for k in want if not torch.equal(got[k], want[k])][:5]


def test_held_g_and_psi_stand_still_while_d_leads_then_train(tmp_path):
    """live_gan_hold: before live_gan_start each step is D's update alone on the live pairs; from it on, all three train
    and G's lr schedule counts from there."""
    for bad in ({"live_gan_weight": 0.0, "live_gan_start": 2}, {"live_gan_weight": 0.5, "live_gan_start": 0}):
        with pytest.raises(ValueError, match="live_gan_hold"):
            SidConfig(live_gan_hold=True, **bad)
    e = gan(0.5, live_gan_start=2, live_gan_hold=True)
    assert [p.network for p in e.method.phases(e, 1)] == ["discriminator"]
    assert [p.network for p in e.method.phases(e, 2)] == ["fake_score", "generator", "discriminator"]
    assert e.method.generator_start() == 2 and gan(0.5, live_gan_start=2).method.generator_start() == 0
    assert e.method.held_with_generator() == ("fake_score",) and gan(0.5, live_gan_start=2).method.held_with_generator() == ()
    assert e.method.file_notes()["sid_lsg"]["live_gan_hold"] is True

    config = sid_config(live_gan_weight=0.5, live_gan_start=2, live_gan_hold=True, live_anchor_items=2, live_anchor_steps=2)
    session = TrainingSession(tiny_unet(), config, prompts(), str(tmp_path / "run"))
    m = session.trainer.method
    g0, f0, d0 = _params(session.trainer.unet), _params(m.fake), _params(m.discriminator)
    seen, lrs = [], []

    def after(step, logs):
        seen.append((step, _params(session.trainer.unet), _params(m.fake), _params(m.discriminator), dict(logs)))
        lrs.append({name: net.optimizer.param_groups[0]["lr"] for name, net in session.trainer.networks.items()})
        return False

    session.run(3, on_step=after)
    (s1, g1, f1, d1, logs1), (_, g2, f2, d2, _), (_, g3, f3, d3, logs3) = seen
    assert s1 == 1 and "sid" not in logs1 and {"d_real", "d_fake", "anchor"} <= set(logs1)
    for before, after_lead in ((g0, g1), (g1, g2), (f0, f1), (f1, f2)):
        assert all(torch.equal(before[k], after_lead[k]) for k in before)  # held through both lead steps
    assert any(not torch.equal(d0[k], d1[k]) for k in d0) and any(not torch.equal(d1[k], d2[k]) for k in d1)  # D led
    assert "sid" in logs3 and "gan_g" in logs3
    assert lrs[0]["generator"] == lrs[0]["fake_score"] == 0.0 < lrs[0]["discriminator"]  # ψ's warm-up waits with G's
    assert lrs[2]["generator"] / session.trainer.networks["generator"].lr == pytest.approx(
        lrs[2]["fake_score"] / session.trainer.networks["fake_score"].lr)
    assert any(not torch.equal(g2[k], g3[k]) for k in g2) and any(not torch.equal(f2[k], f3[k]) for k in f2)
