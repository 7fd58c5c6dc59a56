"""Reflow (→ 2-rectified flow) and InstaFlow's one-step distillation of the flow (training/methods/reflow.py,
onestep/flow.py) against hand-written references in Liu et al.'s notation (X_t = t·x + (1 − t)·z, t = 1 at the data,
model time 1000·(1 − t), target x − z): the loss and its interpolation, the Euler sampler, training through the
session with bit-exact resume, and the files both methods write (their one-step and k-step outputs)."""
from __future__ import annotations

import dataclasses

import pytest
import torch
from test_core_training_fixtures import CTX_DIM, PairsDataset, config, tiny_unet

from onestep import flow
from onestep.format import load_generator, read_metadata
from onestep.parameterization import OneStepGenerator
from training.config import GeneratorConfig, ReflowConfig, TrainConfig
from training.engine import Engine
from training.losses import MicroBatch
from training.methods import Resources
from training.methods.reflow import FLOW_SPEC, ReflowLoss
from training.session import TrainingSession


class FlowPairs(PairsDataset):
    """The synthetic pairs with a negative (empty) prompt's conditioning, as a pairs dataset has."""

    def negative(self) -> dict:
        return {"context": torch.randn(7, CTX_DIM, generator=torch.Generator().manual_seed(99))}


class Recorder(torch.nn.Module):
    """A nonlinear stand-in velocity UNet that records its inputs."""

    def forward(self, x, t, context):
        self.seen = (x.clone(), t.clone(), context.clone())
        return torch.tanh(0.5 * x - t.view(-1, 1, 1, 1) / 700.0 + context.mean(dim=(1, 2)).view(-1, 1, 1, 1))


def reflow_config(**kw) -> TrainConfig:
    reflow, method = kw.pop("reflow", {}), kw.pop("method", "reflow")
    c = config(loss={"regression": "mse"}, discriminator={"enabled": False}, **kw)
    return dataclasses.replace(c, method=method, generator=GeneratorConfig(spec=FLOW_SPEC), reflow=ReflowConfig(**reflow))


def test_flow_convention_matches_the_released_pipelines():
    g = torch.Generator().manual_seed(0)
    z, x, ctx = torch.randn(3, 4, 8, 8, generator=g, dtype=torch.float64), torch.randn(3, 4, 8, 8, generator=g, dtype=torch.float64), torch.randn(3, 7, 5, generator=g, dtype=torch.float64)
    t = torch.tensor([0.0, 0.3, 1.0], dtype=torch.float64)  # Liu's t: 0 noise, 1 data
    assert torch.allclose(flow.interpolate(z, x, 1 - t), t.view(-1, 1, 1, 1) * x + (1 - t.view(-1, 1, 1, 1)) * z)
    assert torch.equal(flow.model_time(1 - t), 1000 * (1 - t)) and torch.equal(flow.velocity_target(z, x), x - z)
    unet = Recorder()
    for n in (1, 2, 4):  # InstaFlow's pipeline: τ_i = (1 − i/N)·1000, x ← x + v/N
        want = z.clone()
        for i in range(n):
            want = want + unet(want, torch.full((3,), (1 - i / n) * 1000.0, dtype=torch.float64), ctx) / n
        assert torch.allclose(flow.euler(unet, z, n, context=ctx), want, atol=1e-12), n
    one = OneStepGenerator(unet, FLOW_SPEC)(z, ctx)  # the file's one-step formula, x0 = z + v(z, 1000)
    assert torch.allclose(one, z + unet(z, torch.full((3,), 1000.0, dtype=torch.float64), ctx)) and torch.allclose(one, flow.euler(unet, z, 1, context=ctx))
    # CFG on velocities: v_u + w·(v_c − v_u)
    den = flow.FlowDenoiser(unet)
    s = torch.full((3,), 0.5, dtype=torch.float64)
    tau = torch.full((3,), 500.0, dtype=torch.float64)
    v_c, v_u = unet(z, tau, ctx), unet(z, tau, torch.zeros_like(ctx))
    assert torch.allclose(den(z, s, cfg=2.0, uncond={"context": torch.zeros_like(ctx)}, context=ctx), z + 0.5 * (v_u + 2.0 * (v_c - v_u)))
    assert torch.equal(flow.flow_sigmas(4), torch.tensor([1.0, 0.75, 0.5, 0.25, 0.0]))


@pytest.mark.parametrize("dropout", [0.0, 0.5])
def test_reflow_loss_matches_a_hand_written_reference(dropout):
    data = FlowPairs(n=6)
    z, x = data.noise[:6], data.latent[:6] * 0.18215
    ctx, null = torch.stack([data[i]["context"] for i in range(6)]), data.negative()["context"]
    eps = 1e-3
    mb = MicroBatch(z=z, real=x, latent=data.latent[:6], context=ctx, rng=torch.Generator().manual_seed(3))
    unet = Recorder()
    terms = ReflowLoss(eps, dropout, data.negative())(unet, mb)

    g = torch.Generator().manual_seed(3)  # the same draws, in the same order: the noise fraction, then the dropout coin
    t = 1 - (eps + (1 - eps) * torch.rand(6, generator=g))  # Liu's t ∈ (0, 1 − ε]: the data end is left out
    drop = torch.rand(6, generator=g) < dropout if dropout else torch.zeros(6, dtype=torch.bool)
    x_t = t.view(-1, 1, 1, 1) * x + (1 - t.view(-1, 1, 1, 1)) * z
    c = torch.stack([null if d else ctx[i] for i, d in enumerate(drop)])
    v = unet(x_t, 1000 * (1 - t), c)
    want = ((v - (x - z)) ** 2).mean()
    seen_x, seen_t, seen_c = unet.seen
    assert torch.allclose(seen_x, x_t, atol=1e-6) and torch.allclose(seen_t, 1000 * (1 - t), atol=1e-4) and torch.equal(seen_c, c)
    assert torch.allclose(terms["total"], want, rtol=1e-5) and terms["velocity_mse"] is terms["total"]
    assert bool(drop.any()) == (dropout > 0)


def test_reflow_refuses_what_it_cannot_train():
    with pytest.raises(ValueError, match="prediction 'flow' at timestep 1000"):
        Engine(tiny_unet(), dataclasses.replace(reflow_config(), generator=GeneratorConfig()))
    with pytest.raises(ValueError, match="text dropout needs the empty prompt"):
        Engine(tiny_unet(), reflow_config(), Resources())
    with pytest.raises(ValueError, match="instaflow method trains a velocity model"):
        Engine(tiny_unet(), dataclasses.replace(reflow_config(), method="instaflow", generator=GeneratorConfig()))


def _weights(session: TrainingSession) -> dict[str, torch.Tensor]:
    e = session.trainer
    out = {f"g.{k}": v.clone() for k, v in e.generator_state_dict(ema=False, layout="native").items()}
    out.update({f"ema.{k}": v.clone() for k, v in e.generator_state_dict(ema=True, layout="native").items()})
    return out


@pytest.mark.parametrize("method", ["reflow", "instaflow"])
def test_trains_resumes_exactly_and_writes_a_flow_file(method, tmp_path):
    cfg = reflow_config(method=method, optim={"lr_g": 1e-3, "lr_warmup": 0})
    straight = TrainingSession(tiny_unet(), cfg, FlowPairs(), str(tmp_path / "straight"))
    before = _weights(straight)
    result = straight.run(4)
    want = _weights(straight)
    terms = {"velocity_mse", "g_total", "grad_norm_g"} if method == "reflow" else {"regression", "g_total", "grad_norm_g"}
    assert result.step == 4 and terms <= set(result.logs)
    assert any(not torch.equal(want[k], before[k]) for k in want)

    run_dir = str(tmp_path / "halves")
    assert TrainingSession(tiny_unet(), cfg, FlowPairs(), run_dir).run(4, on_step=lambda step, logs: step == 2).stopped
    resumed = TrainingSession(tiny_unet(), cfg, FlowPairs(), run_dir)
    assert resumed.step == 2
    resumed.run(4)
    got = _weights(resumed)
    assert all(torch.equal(got[k], want[k]) for k in want)  # N straight == N/2 + resume + N/2, bit for bit

    path = str(tmp_path / f"{method}.safetensors")
    resumed.export(path, "custom", "sd15", teacher_hash="cd" * 8)
    meta = read_metadata(path)
    assert (meta.method, meta.prediction, meta.timestep, meta.training_steps) == ({"reflow": "2-rectified-flow", "instaflow": "instaflow"}[method], "flow", 1000, 4)
    sd, meta = load_generator(path)
    assert all(torch.equal(sd[k], v) for k, v in resumed.trainer.generator_state_dict().items())
    # the file's formula (onestep.parameterization) on the EMA weights it holds: one step x0 = z + v(z, 1000), k Euler steps
    e = resumed.trainer
    e.unet.load_state_dict({k: v for k, v in e.generator_state_dict(ema=True, layout="native").items()})
    e.unet.eval()
    item = FlowPairs()[0]
    z, ctx = item["noise"][None], item["context"][None]
    with torch.no_grad():
        v1000 = e.unet(z, torch.tensor([1000.0]), ctx)
        assert torch.allclose(OneStepGenerator(e.unet, meta.spec())(z, ctx), z + v1000, atol=1e-6)
        x = z
        for i in range(4):
            x = x + e.unet(x, torch.tensor([1000.0 - 250 * i]), ctx) / 4
        assert torch.allclose(flow.euler(e.unet, z, 4, context=ctx), x, atol=1e-5)


def test_cli_trains_a_2rf_then_distils_it_from_its_file(tmp_path):
    from test_core_training_cli import _pairs, _parse

    from training import cli

    c = cli.config_from_args(_parse(["--method", "reflow", "--text-dropout", "0.2", "--t-eps", "0.01"]))
    assert c.method == "reflow" and c.generator.spec == FLOW_SPEC and c.reflow == ReflowConfig(t_eps=0.01, text_dropout=0.2)
    assert cli.config_from_args(_parse(["--method", "instaflow"])).generator.spec == FLOW_SPEC
    gan = cli.config_from_args(_parse(["--method", "instaflow-gan"]))  # InstaFlow + the GAN term: the flow spec, D on
    assert gan.generator.spec == FLOW_SPEC and gan.discriminator.enabled and gan.optim.betas_d == (0.9, 0.99)
    assert cli.config_from_args(_parse([])).generator.spec.prediction == "eps"  # other methods keep their default

    pairs = _pairs(str(tmp_path / "pairs"))
    teacher = str(tmp_path / "teacher")
    tiny_unet().unet.save_pretrained(teacher)
    common = ["--pairs", pairs, "--teacher", teacher, "--batch-size", "4", "--num-workers", "0", "--steps", "2"]
    rf = str(tmp_path / "2rf.safetensors")
    assert cli.main(["train", "--method", "reflow", "--out", rf, *common]) == 0  # no E-LatentLPIPS weights needed
    meta = read_metadata(rf)
    assert (meta.method, meta.prediction, meta.timestep, meta.guidance, meta.notes["training_method"]) == ("2-rectified-flow", "flow", 1000, 3.0, "reflow")
    one = str(tmp_path / "instaflow.safetensors")  # lr 0: G stays what it started from, the 2-RF's weights
    assert cli.main(["train", "--method", "instaflow", "--regression", "mse", "--init-from", rf, "--lr-g", "0", "--out", one, *common]) == 0
    (sd_rf, _), (sd_one, meta) = load_generator(rf), load_generator(one)
    assert meta.method == "instaflow" and meta.spec() == FLOW_SPEC and all(torch.equal(sd_one[k], sd_rf[k]) for k in sd_rf)
    with pytest.raises(SystemExit, match="predicts 'flow'"):
        cli.main(["train", "--regression", "mse", "--init-from", rf, "--out", str(tmp_path / "x.safetensors"), *common])


def test_instaflow_with_the_gan_term_trains_d_resumes_exactly_and_writes_an_instaflow_file(tmp_path):
    """instaflow-gan: the Diffusion2GAN method's GAN term on InstaFlow's flow generator (issue 17's optional GAN). D is
    trained on flow-noised reals and fakes; the term changes G against plain instaflow from the same seed; resume is exact."""
    def cfg(method):
        c = config(loss={"regression": "mse"}, discriminator={"enabled": method == "instaflow-gan", "r1_gamma": 0.0}, optim={"lr_warmup": 0})
        return dataclasses.replace(c, method=method, generator=GeneratorConfig(spec=FLOW_SPEC))

    straight = TrainingSession(tiny_unet(), cfg("instaflow-gan"), FlowPairs(), str(tmp_path / "straight"))
    result = straight.run(4)
    assert {"regression", "g_total", "d_total", "grad_norm_g", "grad_norm_d"} <= set(result.logs), sorted(result.logs)
    want = _weights(straight)
    plain = TrainingSession(tiny_unet(), cfg("instaflow"), FlowPairs(), str(tmp_path / "plain"))
    logs = plain.run(4).logs
    assert "regression" in logs and "d_total" not in logs
    assert any(not torch.equal(want[k], v) for k, v in _weights(plain).items())  # the GAN term moved G

    run_dir = str(tmp_path / "halves")
    assert TrainingSession(tiny_unet(), cfg("instaflow-gan"), FlowPairs(), run_dir).run(4, on_step=lambda step, logs: step == 2).stopped
    resumed = TrainingSession(tiny_unet(), cfg("instaflow-gan"), FlowPairs(), run_dir)
    assert resumed.step == 2
    resumed.run(4)
    got = _weights(resumed)
    assert all(torch.equal(got[k], want[k]) for k in want)  # N straight == N/2 + resume + N/2, bit for bit (G, EMA; D inside)

    path = str(tmp_path / "instaflow_gan.safetensors")
    resumed.export(path, "custom", "sd15", teacher_hash="cd" * 8)
    meta = read_metadata(path)
    assert (meta.method, meta.prediction, meta.timestep) == ("instaflow", "flow", 1000)
    with pytest.raises(ValueError, match="instaflow-gan method trains a velocity model"):
        Engine(tiny_unet(), dataclasses.replace(cfg("instaflow-gan"), generator=GeneratorConfig()))
