"""SiD-LSG (training/methods/sid_lsg.py) on the CPU with a tiny UNet: the generator loss is the formula (both α forms),
guidance and x0 agree with the parameterization module, gradients reach G only through x_g in the generator phase and
ψ only in the fake-score phase, φ never changes, prompt dropout only under guidance, NaN samples are left out and
counted, the recall anchor adds the pairs' regression at its share of the SiD gradient, the live anchor the same on the
teacher's own samples drawn in the loop (its sampler the proof-scale one), N straight steps equal N/2 +
resume + N/2, two gloo ranks equal one process accumulating two micro-batches,
and the exported file loads as a `sid-lsg` generator."""
from __future__ import annotations

import dataclasses
import json
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from test_core_training_fixtures import CTX_DIM, SCALE, PairsDataset, tiny_elpips, tiny_unet

from onestep.format import load_generator, read_metadata
from onestep.parameterization import OneStepSpec
from training.config import LossConfig, OptimConfig, SidConfig, TrainConfig
from training.engine import Engine
from training.methods import METHODS, PAIRS, PROMPTS, Resources
from training.methods.base import Backward
from training.methods.sid_losses import SidGeneratorLoss, alpha_bar, diffuse, guided, sid_loss, x0_from_output
from training.methods.sid_lsg import SidLSG, TeacherSampler
from training.prompts import PromptDataset
from training.session import TrainingSession

SIZE = 16  # the tiny UNet's latent size


def prompts(n: int = 8, seed: int = 5) -> PromptDataset:
    g = torch.Generator().manual_seed(seed)
    return PromptDataset(torch.randn(n, 7, CTX_DIM, generator=g), {"context": torch.randn(7, CTX_DIM, generator=g)})


def sid_config(batch_size: int = 4, top: dict | None = None, **sid) -> TrainConfig:
    """A small SiD-LSG run: fast learning rates, no warm-up, the method's betas, noise of the tiny UNet's size; `top`:
    other TrainConfig fields."""
    s = {"latent_height": SIZE, "latent_width": SIZE, **sid}
    optim = OptimConfig(lr_g=1e-3, lr_d=1e-3, lr_warmup=0, betas=SidLSG.optim_defaults["betas"], grad_clip=SidLSG.optim_defaults["grad_clip"])
    return TrainConfig(method="sid-lsg", optim=optim,
                       sid=SidConfig(**s), batch_size=batch_size, save_every=0, seed=3, **(top or {}))


def engine(config: TrainConfig | None = None, data: PromptDataset | None = None) -> Engine:
    data = data or prompts()
    return Engine(tiny_unet(), config or sid_config(), Resources(unconditional=data.unconditional))


def micro_batch(e: Engine, n: int = 4, seed: int = 0):
    batch = {"context": prompts().context[:n]}
    mb = e._micro_batch(batch, 0)
    mb.rng = torch.Generator().manual_seed(seed)
    return mb


def reference_loss(x_g, y_real, y_fake, alpha):
    """The official integrand summed over pixels ÷ batch, written out element by element (no vectorised mean)."""
    b, c, h, w_ = x_g.shape
    total = 0.0
    for i in range(b):
        w = max(sum(abs(float(x_g[i, k, y, x] - y_real[i, k, y, x])) for k in range(c) for y in range(h) for x in range(w_)) / (c * h * w_), 1e-5)
        for k in range(c):
            for y in range(h):
                for x in range(w_):
                    r, f, g = float(y_real[i, k, y, x]), float(y_fake[i, k, y, x]), float(x_g[i, k, y, x])
                    total += (r - f) * ((r - g) - alpha * (r - f)) / w
    return total / b


@pytest.mark.parametrize("alpha", [1.0, 1.2, 0.5])
def test_generator_loss_is_the_formula(alpha):
    g = torch.Generator().manual_seed(1)
    x_g, y_real, y_fake = (torch.randn(3, 2, 3, 3, generator=g, dtype=torch.float64) for _ in range(3))
    y_real[2] = x_g[2]  # w clipped at 1e-5 for this item
    y_fake[2] = x_g[2] + 1e-3
    ours = sid_loss(x_g, y_real, y_fake, alpha)  # the official reduction: the pixel sum (÷ batch when averaged over items)
    assert float(ours.mean()) == pytest.approx(reference_loss(x_g, y_real, y_fake, alpha), rel=1e-5)
    assert torch.allclose(sid_loss(x_g, y_real, y_fake, alpha, "mean") * 2 * 3 * 3, ours)  # "mean": C·H·W times smaller
    # w carries no gradient: with y_real and y_fake held fixed, ∂L_i/∂x_g = −(y_real − y_fake)/w_i in both forms
    x = x_g.clone().float().requires_grad_(True)
    sid_loss(x, y_real.float(), y_fake.float(), alpha).sum().backward()
    w = (x_g - y_real).abs().mean(dim=(1, 2, 3), keepdim=True).clamp_min(1e-5)
    assert torch.allclose(x.grad.double(), -(y_real - y_fake) / w, rtol=1e-4, atol=1e-6)


def test_guidance_and_x0_agree_with_the_parameterization():
    g = torch.Generator().manual_seed(2)
    cond, unc = torch.randn(2, 4, 3, 3, generator=g), torch.randn(2, 4, 3, 3, generator=g)
    net = lambda x, t, context: torch.where(context[:, :1, :1, None] > 0, cond.repeat(2, 1, 1, 1)[: len(x)], unc.repeat(2, 1, 1, 1)[: len(x)])
    c = {"context": torch.ones(2, 1, 1)}
    u = {"context": -torch.ones(2, 1, 1)}
    x = torch.zeros(2, 4, 3, 3)
    assert torch.allclose(guided(net, x, torch.zeros(2), c, u, 2.5), unc + 2.5 * (cond - unc))
    assert torch.equal(guided(net, x, torch.zeros(2), c, None, 1.0), cond)
    for prediction in ("eps", "v"):  # at one timestep for every item, x0 is the one-step parameterization's
        spec = OneStepSpec(prediction, 625)
        t = torch.full((2,), 625)
        a = alpha_bar(spec, t, x)
        out, x_t = torch.randn(2, 4, 3, 3, generator=g), torch.randn(2, 4, 3, 3, generator=g)
        assert torch.allclose(x0_from_output(prediction, out, x_t, a), spec.x0(out, x_t), atol=1e-6)
    x0, eps = torch.randn(2, 4, 3, 3, generator=g), torch.randn(2, 4, 3, 3, generator=g)
    a = alpha_bar(OneStepSpec("eps", 625), torch.tensor([20, 979]), x0)
    assert torch.allclose(x0_from_output("eps", eps, diffuse(x0, eps, a), a), x0, atol=1e-4)  # the true ε gives back x0


def test_kappa4_t_min_guides_the_teacher_only_at_t_at_or_above_it():
    """SidConfig.kappa4_t_min: each item's y_real is φ at κ4 when its t ≥ the bound, the conditional φ below; ψ's side
    (κ2) and everything else as without it."""
    g = torch.Generator().manual_seed(4)
    cond, unc = torch.randn(4, 4, 3, 3, generator=g), torch.randn(4, 4, 3, 3, generator=g)
    phi = lambda x, t, context: x + torch.where(context[:, :1, :1, None] > 0, cond.repeat(2, 1, 1, 1)[: len(x)], unc.repeat(2, 1, 1, 1)[: len(x)])
    psi = lambda x, t, context: 0.9 * x
    c, u = {"context": torch.ones(4, 1, 1)}, {"context": -torch.ones(4, 1, 1)}
    x_g, eps = torch.randn(4, 4, 3, 3, generator=g), torch.randn(4, 4, 3, 3, generator=g)
    t = torch.tensor([100, 499, 500, 900])
    spec = OneStepSpec("eps", 625)
    bounded, _, _ = SidGeneratorLoss(spec, 1.0, 1.0, 1.5, kappa4_t_min=500)(psi, phi, x_g, eps, t, c, u)
    guided_all, _, _ = SidGeneratorLoss(spec, 1.0, 1.0, 1.5)(psi, phi, x_g, eps, t, c, u)
    unguided, _, _ = SidGeneratorLoss(spec, 1.0, 1.0, 1.0)(psi, phi, x_g, eps, t, c, u)
    assert torch.allclose(bounded[:2], unguided[:2]) and torch.allclose(bounded[2:], guided_all[2:])
    assert not torch.allclose(guided_all[:2], unguided[:2])  # guidance changes the low-t items when not bounded
    assert SidConfig(kappa4_t_min=250).kappa4_t_min == 250
    with pytest.raises(ValueError, match="kappa4_t_min"):
        SidConfig(kappa4_t_min=-1)


@pytest.mark.parametrize("prediction", ["eps", "v"])
def test_fake_score_loss_targets(prediction):
    from training.methods.sid_losses import FakeScoreLoss

    spec = OneStepSpec(prediction, 625)
    g = torch.Generator().manual_seed(3)
    x_g, eps, t = torch.randn(3, 4, 4, 4, generator=g), torch.randn(3, 4, 4, 4, generator=g), torch.tensor([20, 500, 979])
    a = alpha_bar(spec, t, x_g)
    target = eps if prediction == "eps" else a.sqrt() * eps - (1 - a).sqrt() * x_g
    loss = FakeScoreLoss(spec, 1.0)
    exact = loss(lambda x, tt, context: target, x_g, eps, t, {"context": torch.zeros(3, 1, 1)}, None)
    assert torch.allclose(exact, torch.zeros(3), atol=1e-10)
    off = loss(lambda x, tt, context: target + 1, x_g, eps, t, {"context": torch.zeros(3, 1, 1)}, None)
    weight = torch.ones(3) if prediction == "eps" else a.flatten()  # v: snr/(snr+1) = ᾱ_t
    assert torch.allclose(off, 4 * 4 * 4 * weight, atol=1e-5)  # summed over C, H, W
    mean = FakeScoreLoss(spec, 1.0, "mean")(lambda x, tt, context: target + 1, x_g, eps, t, {"context": torch.zeros(3, 1, 1)}, None)
    assert torch.allclose(mean, weight, atol=1e-6)


def moved_fake_score(e: Engine, seed: int = 9) -> None:
    """ψ a little away from the teacher (at the start ψ = φ, so with κ2 = κ4 the generator loss and its gradient vanish)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in e.method.fake.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.02)


def _trained(e: Engine) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in e.unet.named_parameters()}


def test_generator_phase_reaches_g_only_through_x_g():
    e = engine()
    m = e.method
    moved_fake_score(e)
    for p in [*m.fake.parameters(), *e.unet.parameters()]:  # even with ψ trainable, the phase leaves it alone
        p.requires_grad_(p.is_floating_point())
    mb = micro_batch(e)
    terms = m._generator(e, mb, Backward(1, False, e.device))
    assert all(p.grad is None for p in m.fake.parameters()) and all(p.grad is None for p in m.teacher.parameters())
    ours = {n: p.grad.clone() for n, p in e.unet.named_parameters()}
    e.unet.zero_grad(set_to_none=True)
    # the reference: the same draws, the loss written out, one plain backward into G
    rng = torch.Generator().manual_seed(0)
    z, eps, t = torch.randn(4, 4, SIZE, SIZE, generator=rng), torch.randn(4, 4, SIZE, SIZE, generator=rng), torch.randint(20, 980, (4,), generator=rng)
    for p in m.fake.parameters():
        p.requires_grad_(False)
    s = e.config.sid
    x_g = e.generator(z, mb.context)
    a = alpha_bar(e.config.generator.spec, t, x_g)
    x_t = a.sqrt() * x_g + (1 - a).sqrt() * eps
    u = m.uncond["context"].expand(4, -1, -1)

    def x0(net, kappa):
        eu, ec = net(x_t, t.float(), u), net(x_t, t.float(), mb.context)
        return (x_t - (1 - a).sqrt() * (eu + kappa * (ec - eu))) / a.sqrt()

    y_fake, y_real = x0(m.fake, s.kappa2), x0(m.teacher, s.kappa4)
    w = (x_g - y_real).abs().mean(dim=(1, 2, 3), keepdim=True).detach()
    loss = ((y_real - y_fake) * (y_fake - x_g) / w).sum(dim=(1, 2, 3)).mean()
    loss.backward()
    assert float(terms["sid"]) == pytest.approx(loss.item(), rel=1e-5) and abs(loss.item()) > 1e-3
    scale = max(p.grad.abs().max().item() for p in e.unet.parameters())
    assert scale > 1e-3  # not a comparison of rounding noise
    for n, p in e.unet.named_parameters():
        assert torch.allclose(ours[n], p.grad, rtol=1e-4, atol=1e-5 * scale), n


def test_fake_phase_trains_psi_only_and_phi_never_changes():
    e = engine()
    m = e.method
    teacher = {k: v.clone() for k, v in m.teacher.state_dict().items()}
    g_before = _trained(e)
    for p in e.unet.parameters():  # trainable here: the fake phase samples G without gradients all the same
        p.requires_grad_(True)
    m._fake_score(e, micro_batch(e), Backward(1, False, e.device))
    assert all(p.grad is None for p in e.unet.parameters()) and all(p.grad is None for p in m.teacher.parameters())
    assert all(p.grad is not None for p in m.fake.parameters() if p.requires_grad)
    m.fake.zero_grad(set_to_none=True)
    for step in range(2):  # whole steps through the engine: ψ and G move, φ does not
        e.train_step({"context": prompts().context[:4]})
    assert any(not torch.equal(g_before[n], p) for n, p in e.unet.named_parameters())
    assert all(torch.equal(teacher[k], v) for k, v in m.teacher.state_dict().items())
    assert all(not p.requires_grad for p in m.teacher.parameters())
    assert set(e.networks) == {"generator", "fake_score"}  # φ is no trained network: not in checkpoints


@pytest.mark.parametrize(("kappas", "drops"), [((1.0, 1.0, 2.0), False), ((2.0, 1.0, 1.0), True), ((1.0, 2.0, 1.0), True)])
def test_prompt_dropout_only_when_psi_is_guided(kappas, drops):
    k1, k2, k4 = kappas
    e = engine(sid_config(kappa1=k1, kappa2=k2, kappa4=k4, prompt_dropout=0.5))
    m = e.method
    seen = []
    loss = m.fake_loss
    m.fake_loss = lambda psi, x_g, eps, t, cond, uncond, *a: seen.append(cond["context"].clone()) or loss(psi, x_g, eps, t, cond, uncond, *a)
    mb = micro_batch(e)
    for seed in range(4):
        mb.rng = torch.Generator().manual_seed(seed)
        m._fake_score(e, mb, Backward(1, False, e.device))
    blank = m.uncond["context"]
    rows = [torch.equal(c[i], blank) for c in seen for i in range(len(c))]
    originals = [torch.equal(c[i], mb.context[i]) for c in seen for i in range(len(c))]
    assert all(a != b for a, b in zip(rows, originals))  # each row is its prompt or the empty one
    assert any(rows) == drops and (not drops or not all(rows))


def test_nan_samples_are_left_out_and_counted():
    e = engine()
    m = e.method
    moved_fake_score(e)
    teacher_forward = m.teacher.forward

    def nan_in_item_0(x, t, context, **kw):
        out = teacher_forward(x, t, context, **kw).clone()
        out[0::4] = float("nan")  # item 0 of each half of the CFG batch
        return out

    m.teacher.forward = nan_in_item_0
    e.unet.requires_grad_(True)
    terms = m._generator(e, micro_batch(e), Backward(1, False, e.device))
    assert float(terms["g_nan_samples"]) == 1 and torch.isfinite(terms["sid"])
    ours = {n: p.grad.clone() for n, p in e.unet.named_parameters()}
    assert all(torch.isfinite(g).all() for g in ours.values())
    # the same as the loss of items 1..3 alone (still ÷ 4, as the official ÷ per-GPU batch)
    m.teacher.forward = teacher_forward
    e.unet.zero_grad(set_to_none=True)
    mb = micro_batch(e)
    rng = torch.Generator().manual_seed(0)
    z, eps, t = torch.randn(4, 4, SIZE, SIZE, generator=rng), torch.randn(4, 4, SIZE, SIZE, generator=rng), torch.randint(20, 980, (4,), generator=rng)
    cond, uncond = m._conditioning(mb)
    x_g = e.generator(z, mb.context)
    per_item, ok, _ = m.g_loss(m.fake, m.teacher, x_g, eps.to(x_g), t, cond, uncond)
    (per_item[1:].sum() / 4).backward()
    assert float(terms["sid"]) == pytest.approx((per_item[1:].sum() / 4).item(), rel=1e-5)
    scale = max(p.grad.abs().max().item() for p in e.unet.parameters())
    assert scale > 1e-3
    for n, p in e.unet.named_parameters():
        assert torch.allclose(ours[n], p.grad, rtol=1e-4, atol=1e-5 * scale), n
    # the fake phase: a non-finite generator sample is left out of ψ's loss and counted; ψ's gradients stay finite
    e.unet.zero_grad(set_to_none=True)
    sample = e.generator

    def nan_sample(z, **kw):
        x = sample(z, **kw).clone()
        x[1] = float("inf")
        return x

    e.generator = nan_sample
    terms = m._fake_score(e, micro_batch(e), Backward(1, False, e.device))
    assert float(terms["fake_nan_samples"]) == 1 and torch.isfinite(terms["fake_score"])
    assert all(torch.isfinite(p.grad).all() for p in m.fake.parameters() if p.grad is not None)


def _state(session: TrainingSession) -> dict[str, torch.Tensor]:
    e = session.trainer
    out = {f"g.{k}": v.clone() for k, v in e.generator_state_dict(ema=False, layout="native").items()}
    out.update({f"ema.{k}": v.clone() for k, v in e.generator_state_dict(ema=True, layout="native").items()})
    out.update({f"fake.{k}": v.detach().clone() for k, v in e.method.fake.state_dict().items()})
    out.update({f"teacher.{k}": v.detach().clone() for k, v in e.method.teacher.state_dict().items()})
    return out


def test_resume_is_exact_and_the_export_loads_as_sid_lsg(tmp_path):
    config = sid_config()
    straight = TrainingSession(tiny_unet(), config, prompts(), str(tmp_path / "straight"))
    teacher = _state(straight)
    result = straight.run(4)
    assert {"fake_score", "fake_total", "grad_norm_fake", "sid", "sid_gap", "g_total", "grad_norm_g", "g_nan_samples"} <= set(result.logs)
    want = _state(straight)
    assert all(torch.equal(want[k], teacher[k]) for k in want if k.startswith("teacher."))  # φ never changes
    assert any(not torch.equal(want[k], teacher[k]) for k in want if k.startswith("fake."))  # ψ does

    run_dir = str(tmp_path / "halves")
    half = TrainingSession(tiny_unet(), config, prompts(), run_dir)
    assert half.run(4, on_step=lambda step, logs: step == 2).stopped
    with safe_open(os.path.join(run_dir, "checkpoint.safetensors"), "pt") as f:
        state = json.loads(f.metadata()["onestep.trainer_state"])
        keys = set(f.keys())
    assert state["method"] == "sid-lsg" and state["step"] == 2
    assert any(k.startswith("/fake_score/") for k in keys) and any(k.startswith("/opt_fake/state/") for k in keys)
    assert not any("teacher" in k for k in keys)  # φ is rebuilt from the teacher, never stored
    resumed = TrainingSession(tiny_unet(), config, prompts(), run_dir)
    assert resumed.step == 2
    resumed.run(4)
    got = _state(resumed)
    assert set(got) == set(want) and all(torch.equal(got[k], want[k]) for k in want), [k for k in want if not torch.equal(got[k], want[k])][:5]

    student, teacher_latents = resumed.previews(2)
    assert student.shape == (2, 4, SIZE, SIZE) and teacher_latents is None and torch.isfinite(student).all()
    path = str(tmp_path / "sid.safetensors")
    resumed.export(path, "custom", "sd15", teacher_hash="cd" * 8, source="test")
    meta = read_metadata(path)
    assert (meta.method, meta.prediction, meta.timestep, meta.input_convention) == ("sid-lsg", "eps", 625, "sigma_z")
    assert meta.guidance == config.sid.kappa4 and meta.training_steps == 4
    assert meta.notes["sid_lsg"] == {"kappa1": 1.5, "kappa2": 1.5, "kappa3": 1.5, "kappa4": 1.5, "alpha": 1.0, "t_init": 625, "t_range": [20, 979]}
    assert meta.notes["training_config"]["sid"]["alpha"] == 1.0
    sd, loaded = load_generator(path)
    assert loaded.method == "sid-lsg" and all(torch.equal(sd[k], v) for k, v in resumed.trainer.generator_state_dict().items())


def test_v_prediction_lora_and_low_memory_storage_train():
    from training.config import GeneratorConfig

    g = GeneratorConfig(OneStepSpec("v", 625), lora_rank=4, frozen_dtype="bfloat16", gradient_checkpointing=True)
    config = sid_config(fake_lora_rank=4, fake_dtype="bfloat16", top={"bf16": True, "generator": g})
    e = engine(config)
    m = e.method
    shared = {id(p) for p in e.unet.parameters() if not p.requires_grad}
    assert all(id(p) in shared for n, p in m.teacher.named_parameters() if "lora" not in n)  # φ is G's frozen base: one copy
    assert {p.dtype for p in m.teacher.parameters()} == {torch.bfloat16}
    trained = [p for p in m.fake.parameters() if p.requires_grad]
    assert trained and all(p.dtype == torch.bfloat16 for p in trained) and len(trained) < len(list(m.fake.parameters()))
    teacher = {k: v.clone() for k, v in m.teacher.state_dict().items()}
    before = [p.detach().clone() for p in trained]
    logs = e.train_step({"context": prompts().context[:4]})
    assert all(torch.isfinite(torch.tensor(v)) for v in logs.values())
    assert any(not torch.equal(a, b) for a, b in zip(before, trained))
    assert all(torch.equal(teacher[k], v) for k, v in m.teacher.state_dict().items())


def test_refusals():
    with pytest.raises(ValueError, match="empty prompt's conditioning"):
        Engine(tiny_unet(), sid_config())
    Engine(tiny_unet(), sid_config(kappa1=1.0, kappa2=1.0, kappa4=1.0))  # without guidance no empty prompt is needed
    from training.config import GeneratorConfig

    with pytest.raises(ValueError, match="ε- or v-prediction"):
        engine(dataclasses.replace(sid_config(), generator=GeneratorConfig(OneStepSpec("x0", 625))))
    with pytest.raises(ValueError, match="multiples of 2"):
        engine(sid_config(latent_height=15))
    with pytest.raises(ValueError, match="t_min"):
        SidConfig(t_min=30, t_max=20)
    assert METHODS["sid-lsg"] is SidLSG and TrainConfig.from_dict(sid_config(alpha=1.2).to_dict()).sid.alpha == 1.2


def anchored(weight: float, regression: str = "mse") -> Engine:
    config = dataclasses.replace(sid_config(anchor_weight=weight), loss=LossConfig(regression=regression))
    elpips = tiny_elpips() if regression != "mse" else None
    return Engine(tiny_unet(), config, Resources(elpips=elpips, unconditional=prompts().unconditional))


def _generator_grads(e: Engine, batch: dict) -> tuple[dict, dict]:
    mb = e._micro_batch(batch, 0)
    mb.rng = torch.Generator().manual_seed(0)
    e.unet.zero_grad(set_to_none=True)
    terms = e.method._generator(e, mb, Backward(1, False, e.device))
    return terms, {n: p.grad.clone() for n, p in e.unet.named_parameters() if p.grad is not None}


def assert_anchor_term(e: Engine, terms: dict, g0: dict, g1: dict, g_sid: torch.Tensor, x_a: torch.Tensor, distance: torch.Tensor,
                       weight: float, distance_rel: float) -> None:
    """An anchored step's extra gradient (g1 − g0, per parameter) is the distance's gradient at G's output x_a rescaled to
    weight × ‖g_sid‖, pulled back through G; its logged terms are that distance and scale."""
    (g_a,) = torch.autograd.grad(distance, x_a, retain_graph=True)
    scale = weight * g_sid.norm() / g_a.norm()
    assert float(terms["anchor_scale"]) == pytest.approx(scale.item(), rel=1e-4) and float(terms["anchor"]) == pytest.approx(distance.item(), rel=distance_rel)
    assert (scale * g_a).norm().item() == pytest.approx(weight * g_sid.norm().item(), rel=1e-5)  # the anchor's share at G's output
    (x_a * (scale * g_a)).sum().backward()
    top = max(p.grad.abs().max().item() for p in e.unet.parameters() if p.grad is not None)
    assert top > 1e-4
    for n, p in e.unet.named_parameters():
        if p.grad is not None:
            assert torch.allclose(g1[n] - g0[n], p.grad, rtol=1e-3, atol=1e-4 * top), n


def test_recall_anchor_adds_the_pairs_regression_at_its_share_of_the_sid_gradient():
    assert SidLSG.data_for(sid_config()) == PROMPTS and SidLSG.data_for(sid_config(anchor_weight=0.3)) == PAIRS
    assert SidLSG.needs_elpips(dataclasses.replace(sid_config(anchor_weight=0.3), loss=LossConfig(regression="latentlpips")))
    assert not SidLSG.needs_elpips(sid_config()) and not SidLSG.needs_elpips(TrainConfig(method="sid-lsg", sid=SidConfig(anchor_weight=0.3), loss=LossConfig(regression="mse")))
    batch = next(iter(torch.utils.data.DataLoader(PairsDataset(n=4, size=SIZE), batch_size=4)))
    plain, anchored_e = anchored(0.0), anchored(0.5)
    moved_fake_score(plain)  # ψ ≠ φ: a SiD gradient that is not zero
    anchored_e.method.fake.load_state_dict(plain.method.fake.state_dict())
    t0, g0 = _generator_grads(plain, batch)
    t1, g1 = _generator_grads(anchored_e, batch)
    assert t1["sid"] == t0["sid"] and "anchor" in t1 and "anchor" not in t0
    # the difference is the anchor's part: the MSE regression of G(z_pair) on the pairs, rescaled so that its gradient
    # at G's output has 0.5 × the norm of the SiD gradient there
    mb = anchored_e._micro_batch(batch, 0)
    rng = torch.Generator().manual_seed(0)
    z = torch.randn(4, 4, SIZE, SIZE, generator=rng)
    eps, t = torch.randn(z.shape, generator=rng), torch.randint(20, 980, (4,), generator=rng)
    x_g = anchored_e.generator(z, mb.context).detach().requires_grad_(True)
    m = anchored_e.method
    sid, ok, _ = m.g_loss(m.fake, m.teacher, x_g, eps, t, *m._conditioning(mb))
    (g_sid,) = torch.autograd.grad(sid.mean(), x_g)
    anchored_e.unet.zero_grad(set_to_none=True)
    x_a = anchored_e.generator(mb.z, mb.context)
    distance = (x_a - mb.real).pow(2).mean(dim=(1, 2, 3)).mean()
    assert_anchor_term(anchored_e, t1, g0, g1, g_sid, x_a, distance, 0.5, distance_rel=1e-5)


def test_recall_anchor_pulls_the_student_to_the_pairs_and_needs_them():
    data = PairsDataset(n=8, size=SIZE)
    with pytest.raises(Exception, match="noise"):
        anchored(0.5).run(prompts(), 1)

    def mse(e: Engine) -> float:
        with torch.no_grad():
            return (e.generator(data.noise, data.contexts[data.prompt]) - data.latent * SCALE).pow(2).mean().item()

    ends = {}
    for weight in (0.0, 2.0):
        e = anchored(weight, "latentlpips")
        start = mse(e)
        e.run(data, 12)
        ends[weight] = mse(e)
    assert ends[2.0] < 0.8 * ends[0.0] and ends[2.0] < start, (start, ends)


# -- the live recall anchor: teacher samples drawn in the loop from the micro-batch's prompts ------------------
def reference_ddim(net, prediction: str, z, cond: dict, uncond: dict | None, kappa: float, steps: int) -> torch.Tensor:
    """DDIM (η = 0) from x_999 = z written out on its own: SD's scaled-linear ᾱ from the betas, ε and x0 of the guided
    output each by its own formula (v: ε = sqrt(1−ᾱ)·x + sqrt(ᾱ)·v), float64 schedule arithmetic."""
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    alphas = torch.cumprod(1 - betas, 0)
    ts = [round(999 - i * 999 / (steps - 1)) for i in range(steps)] if steps > 1 else [999]
    x = z.double()
    for i, t in enumerate(ts):
        a = float(alphas[t])
        tt = torch.full((len(z),), float(t))
        out_c = net(x.float(), tt, **cond).double()
        out = out_c if kappa == 1.0 else net(x.float(), tt, **uncond).double() * (1 - kappa) + kappa * out_c
        if prediction == "eps":
            eps, x0 = out, (x - (1 - a) ** 0.5 * out) / a**0.5
        else:
            eps, x0 = (1 - a) ** 0.5 * x + a**0.5 * out, a**0.5 * x - (1 - a) ** 0.5 * out
        if i + 1 == len(ts):
            return x0.float()
        a_next = float(alphas[ts[i + 1]])
        x = a_next**0.5 * x0 + (1 - a_next) ** 0.5 * eps
    return x.float()


def test_sampler_timesteps_are_ddims_linspace():
    from onestep.schedule import SD_SCHEDULE, sampler_timesteps

    assert sampler_timesteps(SD_SCHEDULE, 5).tolist() == [999, 749, 500, 250, 0]  # round(749.25), round(499.5), round(249.75)
    assert sampler_timesteps(SD_SCHEDULE, 1).tolist() == [999] and sampler_timesteps(SD_SCHEDULE, 25)[[0, -1]].tolist() == [999, 0]


@pytest.mark.parametrize("cfg", [1.0, 1.5])
def test_the_live_anchors_sampler_is_the_proof_scale_euler_sampler(cfg):
    """The in-loop sampler from x_T = z is proof_scale/sampler.py's Euler in σ space from sqrt(σ_max² + 1)·z (the
    teacher row's sampler): the same UNet, context table rows, steps and CFG give the same latents."""
    from proof_scale.sampler import sample_teacher_from_noise

    unet = tiny_unet()
    g = torch.Generator().manual_seed(11)
    table = torch.randn(4, 7, CTX_DIM, generator=g)  # three "classes" and the empty prompt (the last row)
    labels = torch.tensor([0, 1, 2, 1])
    z = torch.randn(4, 4, SIZE, SIZE, generator=g)
    cond, uncond = {"context": table[labels]}, {"context": table[-1].expand(4, -1, -1)}
    sampler = TeacherSampler(OneStepSpec("eps", 625), 6, cfg, torch.device("cpu"))
    with torch.no_grad():
        ours = sampler(unet, z, cond, uncond)
        want = sample_teacher_from_noise(unet.unet, table, z, labels, 6, cfg, bf16=False, graphs=False)
        fewer = TeacherSampler(OneStepSpec("eps", 625), 3, cfg, torch.device("cpu"))(unet, z, cond, uncond)
    assert torch.allclose(ours, want, rtol=1e-4, atol=1e-4 * want.abs().max().item()), (ours - want).abs().max()
    assert not torch.allclose(fewer, want, atol=1e-2)  # the step count matters: the comparison is not vacuous
    assert torch.allclose(reference_ddim(unet, "eps", z, cond, uncond, cfg, 6), ours, rtol=1e-4, atol=1e-4 * ours.abs().max().item())


def test_the_live_anchors_sampler_on_a_v_teacher_is_ddim():
    unet = tiny_unet(1)
    g = torch.Generator().manual_seed(12)
    cond, uncond = {"context": torch.randn(3, 7, CTX_DIM, generator=g)}, {"context": torch.randn(3, 7, CTX_DIM, generator=g)}
    z = torch.randn(3, 4, SIZE, SIZE, generator=g)
    with torch.no_grad():
        ours = TeacherSampler(OneStepSpec("v", 625), 5, 2.0, torch.device("cpu"))(unet, z, cond, uncond)
        want = reference_ddim(unet, "v", z, cond, uncond, 2.0, 5)
        as_eps = reference_ddim(unet, "eps", z, cond, uncond, 2.0, 5)
    assert torch.allclose(ours, want, rtol=1e-4, atol=1e-4 * want.abs().max().item()), (ours - want).abs().max()
    assert not torch.allclose(ours, as_eps, atol=1e-2)  # the prediction type matters


@pytest.mark.parametrize("spacing", ["exponential", "linspace"])
def test_the_live_anchors_dpmpp_2m_sampler_is_the_proof_scale_one(spacing):
    """TeacherSampler's DPM-Solver++(2M) in VP space is onestep/dpm_solver.py's in σ space, as proof_scale's sampler
    runs it (the teacher sweep's numbers then speak for the anchor's samples); it is not DDIM's."""
    from proof_scale.sampler import sample_teacher_from_noise

    unet = tiny_unet()
    g = torch.Generator().manual_seed(13)
    table = torch.randn(4, 7, CTX_DIM, generator=g)
    labels = torch.tensor([2, 0, 1])
    z = torch.randn(3, 4, SIZE, SIZE, generator=g)
    cond, uncond = {"context": table[labels]}, {"context": table[-1].expand(3, -1, -1)}
    spec = OneStepSpec("eps", 625)
    with torch.no_grad():
        ours = TeacherSampler(spec, 6, 1.5, torch.device("cpu"), "dpmpp_2m", spacing)(unet, z, cond, uncond)
        want = sample_teacher_from_noise(unet.unet, table, z, labels, 6, 1.5, "dpmpp_2m", bf16=False, graphs=False, spacing=spacing)
        ddim = TeacherSampler(spec, 6, 1.5, torch.device("cpu"), "ddim", spacing)(unet, z, cond, uncond)
    assert torch.allclose(ours, want, rtol=1e-4, atol=1e-4 * want.abs().max().item()), (ours - want).abs().max()
    assert not torch.allclose(ours, ddim, atol=1e-3)
    with pytest.raises(ValueError, match="the teacher sampler must be one of .*'heun'"):
        TeacherSampler(spec, 6, 1.5, torch.device("cpu"), "heun")


def live(weight: float, items: int = 2, steps: int = 3, **sid) -> Engine:
    return engine(sid_config(live_anchor_weight=weight, live_anchor_items=items, live_anchor_steps=steps, **sid))


def test_live_anchor_settings_are_checked_and_keep_the_run_prompts_only():
    assert SidLSG.data_for(sid_config(live_anchor_weight=0.5)) == PROMPTS
    assert not SidLSG.needs_elpips(dataclasses.replace(sid_config(live_anchor_weight=0.5), loss=LossConfig(regression="latentlpips")))
    with pytest.raises(ValueError, match="one recall anchor at a time"):
        SidConfig(anchor_weight=0.25, live_anchor_weight=1.0)
    for field, value in (("live_anchor_weight", -0.1), ("live_anchor_items", 0), ("live_anchor_steps", 0), ("live_anchor_steps", 2.5),
                         ("live_anchor_sampler", "heun"), ("live_anchor_spacing", "karras")):
        with pytest.raises(ValueError, match=field):
            SidConfig(**{field: value})
    with pytest.raises(ValueError, match="live anchor's 1001 sampler steps are more than the teacher's schedule has timesteps"):
        live(0.5, steps=1001)
    notes = live(0.5, items=3, steps=4, live_anchor_sampler="dpmpp_2m", live_anchor_spacing="exponential").method.file_notes()["sid_lsg"]
    assert (notes["live_anchor_weight"], notes["live_anchor_items"], notes["live_anchor_steps"]) == (0.5, 3, 4)
    assert (notes["live_anchor_sampler"], notes["live_anchor_spacing"]) == ("dpmpp_2m", "exponential")
    assert "live_anchor_weight" not in engine().method.file_notes()["sid_lsg"]
    assert live(0.5).method.capturable() is None  # the live anchor's draws and sampler stay on the device


def test_live_anchor_cfg_guides_the_teachers_sampler_apart_from_kappa4():
    unguided = {"kappa1": 1.0, "kappa2": 1.0, "kappa4": 1.0}
    assert live(0.5).method.sampler.kappa == 1.5  # 0: the sampler at κ4
    e = live(0.5, live_anchor_cfg=2.0, **unguided)
    assert e.method.sampler.kappa == 2.0 and e.method.file_notes()["sid_lsg"]["live_anchor_cfg"] == 2.0
    assert e.method.uncond is not None  # SiD's losses are unguided; the anchor's sampler still needs the empty prompt
    assert not SidConfig(live_anchor_cfg=2.0, **unguided).uses_unconditional  # no live samples: nothing guided
    with pytest.raises(ValueError, match="needs the empty prompt"):
        Engine(tiny_unet(), sid_config(live_anchor_weight=0.5, live_anchor_cfg=2.0, **unguided), Resources(unconditional=None))
    Engine(tiny_unet(), sid_config(live_anchor_weight=0.5, live_anchor_cfg=1.0, **unguided), Resources(unconditional=None))
    with pytest.raises(ValueError, match="live_anchor_cfg"):
        SidConfig(live_anchor_cfg=-1.0)


def test_live_anchor_draws_its_noise_after_the_others():
    plain, anchored_e = engine(), live(0.5, items=8)
    d0 = plain.method._generator_draws(plain, micro_batch(plain, seed=4))
    d1 = anchored_e.method._generator_draws(anchored_e, micro_batch(anchored_e, seed=4))
    assert set(d1) == set(d0) | {"z_anchor"} and all(torch.equal(d1[k], d0[k]) for k in d0)
    rng = torch.Generator().manual_seed(4)
    for shape in ((4, 4, SIZE, SIZE), (4, 4, SIZE, SIZE)):  # z, ε
        torch.randn(shape, generator=rng)
    torch.randint(20, 980, (4,), generator=rng)
    assert torch.equal(d1["z_anchor"], torch.randn(4, 4, SIZE, SIZE, generator=rng))  # 8 items capped at the micro-batch's 4
    two = live(0.5, items=2)
    assert two.method._generator_draws(two, micro_batch(two, seed=4))["z_anchor"].shape == (2, 4, SIZE, SIZE)


def test_live_anchor_adds_the_teacher_samples_regression_at_its_share_of_the_sid_gradient():
    batch = {"context": prompts().context[:4]}
    plain, anchored_e = engine(), live(0.5, items=2, steps=3)
    moved_fake_score(plain)  # ψ ≠ φ: a SiD gradient that is not zero
    anchored_e.method.fake.load_state_dict(plain.method.fake.state_dict())
    t0, g0 = _generator_grads(plain, batch)
    t1, g1 = _generator_grads(anchored_e, batch)
    assert t1["sid"] == t0["sid"] and "anchor" in t1 and "anchor" not in t0  # the same SiD draws and loss
    # the reference: the phase's draws in their order, φ's DDIM from z_a at κ4 for the first 2 prompts, the MSE of G(z_a)
    m, s = anchored_e.method, anchored_e.config.sid
    mb = anchored_e._micro_batch(batch, 0)
    rng = torch.Generator().manual_seed(0)
    z = torch.randn(4, 4, SIZE, SIZE, generator=rng)
    eps, t = torch.randn(z.shape, generator=rng), torch.randint(20, 980, (4,), generator=rng)
    z_a = torch.randn(2, 4, SIZE, SIZE, generator=rng)
    x_g = anchored_e.generator(z, mb.context).detach().requires_grad_(True)
    sid, ok, _ = m.g_loss(m.fake, m.teacher, x_g, eps, t, *m._conditioning(mb))
    (g_sid,) = torch.autograd.grad(sid.mean(), x_g)
    with torch.no_grad():
        target = reference_ddim(m.teacher, "eps", z_a, {"context": mb.context[:2]}, {"context": m.uncond["context"].expand(2, -1, -1)}, s.kappa4, 3)
    anchored_e.unet.zero_grad(set_to_none=True)
    x_a = anchored_e.generator(z_a, mb.context[:2])
    distance = (x_a - target).pow(2).mean()
    assert_anchor_term(anchored_e, t1, g0, g1, g_sid, x_a, distance, 0.5, distance_rel=1e-4)


def test_live_anchor_leaves_out_and_counts_non_finite_teacher_samples():
    batch = {"context": prompts().context[:4]}
    e = live(0.5, items=3, steps=2)
    moved_fake_score(e)
    m = e.method
    sampler = m.sampler

    def nan_in_item_1(teacher, z, cond, uncond):
        out = sampler(teacher, z, cond, uncond).clone()
        out[1] = float("nan")
        return out

    m.sampler = nan_in_item_1
    terms, grads = _generator_grads(e, batch)
    assert float(terms["anchor_nan_samples"]) == 1 and torch.isfinite(terms["anchor"]) and float(terms["anchor"]) > 0
    assert grads and all(torch.isfinite(g).all() for g in grads.values())
    # the distance is the MSE over items 0 and 2 alone
    rng = torch.Generator().manual_seed(0)
    for shape in ((4, 4, SIZE, SIZE), (4, 4, SIZE, SIZE)):  # z, ε
        torch.randn(shape, generator=rng)
    torch.randint(20, 980, (4,), generator=rng)
    z_a = torch.randn(3, 4, SIZE, SIZE, generator=rng)
    cond, uncond = m._conditioning(e._micro_batch(batch, 0))
    cond_a = {k: v[:3] for k, v in cond.items()}
    with torch.no_grad():
        target = sampler(m.teacher, z_a, cond_a, {k: v[:3] for k, v in uncond.items()})
        x_a = e.generator(z_a, **cond_a)
    keep = torch.tensor([0, 2])
    assert float(terms["anchor"]) == pytest.approx((x_a[keep] - target[keep]).pow(2).mean().item(), rel=1e-5)


def test_live_anchor_pulls_the_student_to_the_teachers_samples():
    data = prompts(8)
    g = torch.Generator().manual_seed(21)
    z = torch.randn(4, 4, SIZE, SIZE, generator=g)
    cond = {"context": data.context[:4]}

    def mse(e: Engine, target: torch.Tensor) -> float:
        with torch.no_grad():
            return (e.generator(z, **cond) - target).pow(2).mean().item()

    ends = {}
    for weight in (0.0, 2.0):
        e = live(weight, items=4, steps=4) if weight else engine(data=data)
        m = e.method
        sampler = m.sampler or TeacherSampler(e.config.generator.spec, 4, e.config.sid.kappa4, e.device)
        _, uncond = m._conditioning(e._micro_batch(cond, 0))
        target = sampler(m.teacher, z, cond, uncond)  # φ never changes: one target for the whole run
        start = mse(e, target)
        e.run(data, 8)
        ends[weight] = mse(e, target)
    # on noise it never trained on, G moves toward φ's samples at least 1.5× as far as SiD alone takes it (Adam with
    # β1 = 0 steps by the gradient's sign pattern, so a larger weight barely moves it further in 8 steps)
    assert ends[2.0] < ends[0.0] and start - ends[2.0] > 1.5 * (start - ends[0.0]) > 0, (start, ends)


def test_full_copy_of_the_adapter():
    unet = tiny_unet()
    copy, shared = unet.full_copy(), unet.full_copy(share_weights=True)
    x, t, ctx = torch.randn(2, 4, SIZE, SIZE), torch.tensor([10.0, 900.0]), torch.randn(2, 7, CTX_DIM)
    with torch.no_grad():
        want = unet(x, t, ctx)
        assert torch.equal(copy(x, t, ctx), want) and torch.equal(shared(x, t, ctx), want)
    assert copy.info == unet.info and copy.unet is not unet.unet
    assert all(a is not b for a, b in zip(copy.parameters(), unet.parameters()))
    assert all(a is b for a, b in zip(shared.parameters(), unet.parameters()))


# -- two gloo ranks = one process accumulating two micro-batches --------------------------------------------
STEPS = 2


def _final(e: Engine) -> dict[str, torch.Tensor]:
    sd = {f"g.{k}": v for k, v in e.generator_state_dict(ema=False, layout="native").items()}
    sd.update({f"fake.{k}": v.detach().clone().contiguous() for k, v in e.method.fake.state_dict().items()})
    return sd


def _rank(rank: int, folder: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{folder}/rendezvous", rank=rank, world_size=2)
    try:
        data = prompts()
        e = Engine(tiny_unet(), sid_config(), Resources(unconditional=data.unconditional))
        assert e.dist.world_size == 2
        e.run(data, STEPS)
        save_file(_final(e), os.path.join(folder, f"rank{rank}.safetensors"))
    finally:
        dist.destroy_process_group()


def test_two_ranks_equal_one_process_with_accumulation(tmp_path):
    folder = str(tmp_path)
    mp.spawn(_rank, args=(folder,), nprocs=2, join=True)
    data = prompts()
    single = Engine(tiny_unet(), dataclasses.replace(sid_config(), optim=dataclasses.replace(sid_config().optim, grad_accumulation=2)),
                    Resources(unconditional=data.unconditional))
    single.run(data, STEPS)
    want = _final(single)
    r0, r1 = (load_file(os.path.join(folder, f"rank{r}.safetensors")) for r in (0, 1))
    assert all(torch.equal(r0[k], r1[k]) for k in r0)
    untrained = _final(engine())
    assert max((want[k] - untrained[k]).abs().max().item() for k in want) > 1e-4  # they moved
    # float summation order only (ranks average, one process accumulates); Adam with β1 = 0 divides by the
    # gradient's own size, so a weight whose gradient is ~0 can move by a fraction of a step (lr 1e-3)
    diff = torch.cat([(r0[k] - want[k]).abs().flatten() for k in want])
    assert diff.max().item() < 0.5 * 1e-3, diff.max().item()
    assert (diff > 1e-6).float().mean().item() < 0.01


def test_resume_warns_only_about_settings_the_checkpoint_had(caplog):
    data = prompts()
    first = engine(data=data)
    first.train_step({"context": data.context[:4]})
    state = first.state_dict()
    older = {**state, "config": {k: v for k, v in state["config"].items() if k != "sid"}}  # written before the sid section
    with caplog.at_level("WARNING", logger="onestep"):
        engine(data=data).load_state_dict(older)
    assert "changed configuration" not in caplog.text
    with caplog.at_level("WARNING", logger="onestep"):
        engine(sid_config(alpha=1.2), data).load_state_dict(state)
    assert "changed configuration: sid.alpha" in caplog.text


def test_the_fake_score_can_start_from_carried_weights_before_the_first_step_only():
    """Engine.start_network_from (a SiD-LSG row carried on from an earlier session's ψ): the weights land in ψ, not in
    φ; other tensors, another network's name or a started run are refused by name."""
    e = engine()
    net = e.networks["fake_score"]
    own = net.state()
    g = torch.Generator().manual_seed(3)
    carried = {k: torch.randn(v.shape, generator=g) for k, v in own.items()}
    teacher_before = {n: p.detach().clone() for n, p in e.method.teacher.named_parameters()}
    e.start_network_from("fake_score", carried)
    assert all(torch.equal(net.state()[k].float(), carried[k].to(net.state()[k].dtype).float()) for k in carried)
    assert all(torch.equal(p, teacher_before[n]) for n, p in e.method.teacher.named_parameters())  # φ is untouched
    with pytest.raises(ValueError, match="missing"):
        e.start_network_from("fake_score", dict(list(carried.items())[1:]))
    with pytest.raises(ValueError, match="trains no network 'discriminator'"):
        e.start_network_from("discriminator", carried)
    e.step = 1
    with pytest.raises(ValueError, match="before training starts"):
        e.start_network_from("fake_score", carried)


def _adam_steps(opt) -> set[float]:
    return {float(s["step"]) for s in opt.state.values()}


def test_fake_steps_gives_psi_that_many_updates_per_generator_step_on_fresh_draws():
    batch = {"context": prompts().context[:4]}
    one, two = engine(sid_config()), engine(sid_config(fake_steps=2))
    first_psi = None
    for e in (one, two):
        terms = e.train_step(batch)
        assert {"fake_score", "sid"} <= set(terms)
        if first_psi is None:
            first_psi = {n: p.detach().clone() for n, p in e.method.fake.named_parameters()}
    assert _adam_steps(one.networks["fake_score"].optimizer) == {1.0} and _adam_steps(two.networks["fake_score"].optimizer) == {2.0}
    assert _adam_steps(one.opt_g) == _adam_steps(two.opt_g) == {1.0}
    # ψ's second update drew other noise and moved ψ on from where the one-step run's ψ stands
    assert any(not torch.equal(first_psi[n], p) for n, p in two.method.fake.named_parameters())
    with pytest.raises(ValueError, match="fake_steps"):
        SidConfig(fake_steps=0)
