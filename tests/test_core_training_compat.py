"""Trainer plumbing: data/teacher mismatches are refused by name, configs round-trip, LoRA trains only its factors
and exports/merges exactly, bf16 + gradient checkpointing and Adafactor run, the export is a valid generator file."""
from __future__ import annotations

import dataclasses

import pytest
import torch
from test_core_training_fixtures import PairsDataset, batch_of, config, tiny_elpips, tiny_unet

from onestep.format import read_metadata, save_generator
from training.config import DEFAULT_SPEC, GeneratorConfig, OptimConfig, TrainConfig
from training.lora import LoRALayer
from training.trainer import Trainer
from training.unet_interface import IncompatibleDataError, check_batch_compatible


def test_mismatched_data_is_refused():
    unet = tiny_unet()
    good = batch_of(PairsDataset())
    check_batch_compatible(good, unet.info)
    check_batch_compatible(PairsDataset()[0], unet.info)  # one unbatched item
    with pytest.raises(IncompatibleDataError, match="8 channels .* 4-channel"):
        check_batch_compatible(batch_of(PairsDataset(channels=8)), unet.info)
    with pytest.raises(IncompatibleDataError, match="width 768 .* takes 32"):
        check_batch_compatible(batch_of(PairsDataset(context_dim=768)), unet.info)
    with pytest.raises(IncompatibleDataError, match="multiples of 2"):
        check_batch_compatible(batch_of(PairsDataset(size=17)), unet.info)
    with pytest.raises(IncompatibleDataError, match="lacks 'context'"):
        check_batch_compatible({k: v for k, v in good.items() if k != "context"}, unet.info)
    trainer = Trainer(unet, config(loss={"regression": "mse"}))
    with pytest.raises(IncompatibleDataError, match="width 768"):
        trainer.train_step(batch_of(PairsDataset(context_dim=768)))
    with pytest.raises(ValueError, match="E-LatentLPIPS weights are for 16-channel"):
        from onestep.latent_lpips import ELatentLPIPS, LatentLPIPS, get_encoder
        Trainer(tiny_unet(), config(), ELatentLPIPS(LatentLPIPS(16, width=1 / 8), get_encoder("custom-16")))


def test_config_round_trip_and_validation():
    c = config(generator=GeneratorConfig(lora_rank=4), bf16=True)
    assert TrainConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match="optimizer"):
        OptimConfig(optimizer="sgd")
    with pytest.raises(ValueError, match="regression"):
        config(loss={"regression": "l2"})
    assert all(f.name for f in dataclasses.fields(TrainConfig))


def test_lora_trains_only_its_factors_and_merges_exactly():
    ds = PairsDataset()
    unet = tiny_unet()
    base = {k: v.clone() for k, v in unet.state_dict().items()}
    trainer = Trainer(unet, config(generator=GeneratorConfig(lora_rank=4), loss={"regression": "mse"}))
    wrapped = [n for n, m in unet.named_modules() if isinstance(m, LoRALayer)]
    assert any(n.endswith("attn2.to_k") for n in wrapped) and any(n.endswith("ff.net.2") for n in wrapped)
    assert {n for n, p in unet.named_parameters() if p.requires_grad} == {f"{n}.lora_{s}.weight" for n in wrapped for s in ("down", "up")}
    for _ in range(2):
        trainer.train_step(batch_of(ds))
    merged = trainer.generator_state_dict(ema=False, layout="native")
    assert set(merged) == set(base)
    assert all(torch.equal(merged[k], base[k]) for k in base if ".attn" not in k and ".ff." not in k)  # only wrapped layers change
    assert not all(torch.equal(merged[k], base[k]) for k in base)
    lsd = trainer.lora_state_dict(ema=False)
    assert set(lsd) == {f"{n}.{s}" for n in wrapped for s in ("lora_down.weight", "lora_up.weight", "alpha")}
    fresh = tiny_unet()
    fresh.load_state_dict(merged)
    b = batch_of(ds)
    t = torch.full((4,), 999.0)
    with torch.no_grad():
        torch.testing.assert_close(fresh(b["noise"], t, b["context"]), unet(b["noise"], t, b["context"]), atol=1e-5, rtol=1e-4)


def test_bf16_gradient_checkpointing_and_adafactor_give_finite_losses():
    b = batch_of(PairsDataset())
    for kw in ({"bf16": True, "generator": GeneratorConfig(gradient_checkpointing=True)}, {"optim": {"optimizer": "adafactor", "lr_g": 1e-2, "lr_d": 1e-2}}):
        trainer = Trainer(tiny_unet(), config(discriminator={"r1_every": 1}, **kw), tiny_elpips())
        before = [p.detach().clone() for p in trainer.unet.parameters()]
        logs = trainer.train_step(b)
        assert {"regression", "gan_g", "d_real", "r1"} <= set(logs)
        assert all(torch.isfinite(torch.tensor(v)) for v in logs.values()), logs
        assert any(not torch.equal(p, q) for p, q in zip(trainer.unet.parameters(), before))


def test_export_writes_a_generator_file(tmp_path):
    trainer = Trainer(tiny_unet(), config(loss={"regression": "mse"}))
    trainer.train_step(batch_of(PairsDataset()))
    sd = trainer.generator_state_dict()
    assert "input_blocks.0.0.weight" in sd and "out.2.weight" in sd  # ComfyUI's ldm layout
    path = str(tmp_path / "g.safetensors")
    save_generator(path, sd, trainer.generator_metadata("custom", "sd15"))
    meta = read_metadata(path)
    assert (meta.method, meta.prediction, meta.timestep, meta.training_steps) == ("diffusion2gan", "eps", DEFAULT_SPEC.timestep, 1)
    assert meta.notes["training_config"]["loss"]["regression"] == "mse"
