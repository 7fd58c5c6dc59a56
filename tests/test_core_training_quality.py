"""The trainer's quality settings (issue 14): the lr schedule (warm-up, cosine decay; resumes exactly), the
float32 output layer under autocast, the on-device pairs (same batches as the DataLoader path) and the adaptive
GAN weight (the GAN's pull at G's output is a fixed fraction of the regression's)."""
from __future__ import annotations

import math

import pytest
import torch
from test_core_training_fixtures import PairsDataset, config, resumed_halfway, tiny_elpips, tiny_unet

from onestep.pairs import PairDataset, PairSettings, collate_pairs
from onestep.pairs.collect import collect, open_dataset
from onestep.pairs.manifest import prompts_hash
from onestep.precision import Float32Conv2d, keep_output_float32
from training.config import GeneratorConfig
from training.device_data import DevicePairs
from training.losses import GeneratorLoss, MicroBatch, RegressionLoss
from training.lr_schedule import lr_factor
from training.session import TrainingSession
from training.trainer import Trainer


# -- lr schedule --------------------------------------------------------------------------------------------
def test_lr_factor_warms_up_linearly_then_decays_by_a_half_cosine_to_the_floor():
    assert [lr_factor(s, 4) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    f = [lr_factor(s, 2, "cosine", 12, 0.1) for s in range(14)]
    assert f[:2] == [0.5, 1.0] and f[2] == pytest.approx(1.0)
    assert f[7] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))  # half-way: the mean of 1 and the floor
    assert f[12] == pytest.approx(0.1) and f[13] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(f[2:], f[3:]))
    with pytest.raises(ValueError, match="lr decay"):
        lr_factor(0, 0, "linear")


def test_trainer_follows_the_schedule_and_resumes_it_exactly(tmp_path):
    optim = {"lr_warmup": 2, "lr_decay": "cosine", "lr_decay_steps": 4, "lr_floor": 0.2}
    make = lambda: Trainer(tiny_unet(), config(optim=optim), tiny_elpips())
    seen = []
    straight = make()
    straight.run(PairsDataset(), 4, on_step=lambda step, logs: seen.append(straight.opt_g.param_groups[0]["lr"]))
    assert seen == pytest.approx([1e-3 * lr_factor(s, 2, "cosine", 4, 0.2) for s in range(4)])
    assert straight.opt_d.param_groups[0]["lr"] == pytest.approx(seen[-1])  # D follows the same schedule
    _, resumed = resumed_halfway(make, tmp_path)
    for (n, a), b in zip(straight.unet.named_parameters(), resumed.unet.parameters()):
        assert torch.equal(a, b), n


# -- float32 output layer -------------------------------------------------------------------------------------
def test_output_layer_computes_in_float32_under_autocast():
    conv = torch.nn.Conv2d(8, 4, 3, padding=1)
    x = torch.randn(2, 8, 6, 6)
    want = conv(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        rounded = conv(x)
        keep_output_float32(conv)
        exact = conv(x)
    assert type(conv) is Float32Conv2d and set(conv.state_dict()) == {"weight", "bias"}
    assert rounded.dtype == torch.bfloat16 and exact.dtype == torch.float32
    assert torch.allclose(exact, want, atol=1e-6) and (rounded.float() - want).abs().max() > 1e-3


def test_trainer_keeps_the_generators_last_layer_in_float32():
    trainer = Trainer(tiny_unet(), config(discriminator={"enabled": False}), tiny_elpips())
    assert type(trainer.unet.output_conv) is Float32Conv2d
    z, ctx = torch.randn(2, 4, 16, 16), torch.randn(2, 7, 32)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        x0 = trainer.generator(z, ctx)
    assert x0.dtype == torch.float32


# -- pairs on the device ----------------------------------------------------------------------------------------
class EqualLengthTeacher:
    """latent = tanh(noise + prompt index); every prompt encodes to 5 tokens of width 32 (the tiny UNet's)."""

    def noise(self, seed):
        return torch.randn([1, 4, 16, 16], generator=torch.Generator().manual_seed(seed))

    def conditioning(self, j):
        return {"cond": torch.randn((1, 5 if j >= 0 else 5, 32), generator=torch.Generator().manual_seed(10 + j))}

    def sample(self, noise, prompt_indices, hint_indices):
        return torch.tanh(noise + torch.tensor([float(j) for j in prompt_indices]).view(-1, 1, 1, 1))


def _pairs(folder, teacher, count=12):
    prompts = ["a", "b", "c"]
    s = PairSettings(teacher="t" * 64, latent_format="SD15", latent_shape=(4, 16, 16), sampler="euler", scheduler="normal", steps=2,
                     cfg=1.0, negative="", prompts_sha256=prompts_hash(prompts), seed_start=5, count=count, batch_size=4, shard_size=4)
    collect(str(folder), open_dataset(str(folder), s, prompts), teacher)
    return PairDataset(str(folder))


def test_device_pairs_give_the_collated_batch_of_the_same_items(tmp_path):
    ds = _pairs(tmp_path / "pairs", EqualLengthTeacher())
    on_device = DevicePairs(ds, "cpu")
    assert len(on_device) == len(ds) == 12
    for indices in ([0, 5, 11, 3], [7], list(range(12))[::-1]):
        want, got = collate_pairs([ds[i] for i in indices]), on_device.batch(indices)
        assert set(got) == set(want)
        for k in want:
            assert got[k].dtype == want[k].dtype and torch.equal(got[k], want[k]), k


def test_device_pairs_refuse_prompts_of_different_lengths(tmp_path):
    class Mixed(EqualLengthTeacher):
        def conditioning(self, j):
            return {"cond": torch.zeros((1, 10 if j == 1 else 5, 32))}

    with pytest.raises(ValueError, match="different lengths"):
        DevicePairs(_pairs(tmp_path / "pairs", Mixed()), "cpu")


def test_session_trains_the_same_with_pairs_on_the_device_or_in_a_dataloader(tmp_path):
    ds_folder = str(tmp_path / "pairs")
    _pairs(ds_folder, EqualLengthTeacher())
    results = {}
    for where in ("always", "never"):
        torch.manual_seed(0)
        session = TrainingSession(tiny_unet(), config(data_on_device=where), ds_folder, str(tmp_path / where), tiny_elpips(), torch.device("cpu"))
        assert isinstance(session.training_data(), DevicePairs if where == "always" else PairDataset)
        session.run(3)
        results[where] = session.trainer.generator_state_dict(ema=False)
    assert all(torch.equal(results["always"][k], results["never"][k]) for k in results["never"])


# -- adaptive GAN weight ----------------------------------------------------------------------------------------
def test_adaptive_gan_weight_scales_the_gans_pull_to_a_fraction_of_the_regressions():
    torch.manual_seed(0)
    trainer = Trainer(tiny_unet(), config(loss={"regression": "mse"}), None)
    unet, d, spec = trainer.unet, trainer.discriminator, trainer.config.generator.spec
    item = PairsDataset()
    batch = collate_pairs([item[i] for i in range(4)])
    mb = MicroBatch(z=batch["noise"], real=trainer.info.to_unet_space(batch["latent"]), latent=batch["latent"], context=batch["context"],
                    rng=torch.Generator().manual_seed(3))
    loss = GeneratorLoss(RegressionLoss("mse", trainer.info), spec, 0.25, (0, 499), "adaptive")
    terms, _ = loss(trainer.generator, d, mb)
    # the same draws again, now by hand: gradients of both terms at the output
    x0 = trainer.generator(mb.z, mb.context).detach().requires_grad_(True)
    mb.rng = torch.Generator().manual_seed(3)
    reg = RegressionLoss("mse", trainer.info)(x0, mb).mean()
    (g_reg,) = torch.autograd.grad(reg, x0)
    gan = loss._gan(x0, d, mb)
    (g_gan,) = torch.autograd.grad(gan, x0)
    w = 0.25 * g_reg.norm() / g_gan.norm()
    assert terms["gan_scale"].item() == pytest.approx(w.item(), rel=1e-5)
    assert terms["total"].item() == pytest.approx((reg + w * gan).item(), rel=1e-5)
    # backward of the objective gives G the gradient of regression + w·GAN, whose GAN part is 1/4 of the regression's
    unet.zero_grad(set_to_none=True)
    terms["objective"].backward()
    got = [p.grad.clone() for p in unet.parameters() if p.grad is not None]
    unet.zero_grad(set_to_none=True)
    trainer.generator(mb.z, mb.context).backward(g_reg + w * g_gan)
    want = [p.grad for p in unet.parameters() if p.grad is not None]
    assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-7) for a, b in zip(got, want))
    assert (w * g_gan).norm().item() == pytest.approx(0.25 * g_reg.norm().item(), rel=1e-5)
    # a cap below w bounds it (a flat D's near-zero gradient must not be multiplied without bound)
    mb.rng = torch.Generator().manual_seed(3)
    capped, _ = GeneratorLoss(RegressionLoss("mse", trainer.info), spec, 0.25, (0, 499), "adaptive", scale_max=w.item() / 2)(trainer.generator, d, mb)
    assert capped["gan_scale"].item() == pytest.approx(w.item() / 2, rel=1e-5)


def test_adaptive_gan_training_runs_and_logs_its_scale():
    trainer = Trainer(tiny_unet(), config(loss={"gan_balance": "adaptive", "gan_weight": 0.5}), tiny_elpips())
    logs = trainer.run(PairsDataset(), 2).logs
    assert math.isfinite(logs["gan_scale"]) and logs["gan_scale"] > 0 and "d_fake" in logs


def test_generator_can_start_from_a_finished_runs_weights_with_the_discriminator_from_the_teacher():
    """Diffusion2GAN's two stages: G (and its EMA) from a regression run's weights, D still the teacher's encoder."""
    regression = Trainer(tiny_unet(), config(discriminator={"enabled": False}, loss={"regression": "mse"}), None)
    regression.run(PairsDataset(), 2)
    start = regression.generator_state_dict(ema=True, layout="native")
    teacher_d = Trainer(tiny_unet(), config(), tiny_elpips()).discriminator.state_dict()
    gan = Trainer(tiny_unet(), config(), tiny_elpips())
    gan.start_generator_from(start)
    assert all(torch.equal(p.detach(), start[n]) for n, p in gan.unet.named_parameters())
    assert all(torch.equal(gan.ema.shadow[n], start[n]) for n in gan.ema.shadow)
    assert all(torch.equal(v, teacher_d[k]) for k, v in gan.discriminator.state_dict().items())
    assert any(not torch.equal(start[n], p.detach()) for n, p in tiny_unet().named_parameters())  # really other weights
    gan.run(PairsDataset(), 1)
    with pytest.raises(ValueError, match="before training starts"):
        gan.start_generator_from(start)
    with pytest.raises(ValueError, match="another UNet"):
        Trainer(tiny_unet(), config(), tiny_elpips()).start_generator_from({k: v for k, v in list(start.items())[1:]})
    with pytest.raises(ValueError, match="LoRA"):
        Trainer(tiny_unet(), config(generator=GeneratorConfig(lora_rank=4)), tiny_elpips()).start_generator_from(start)
