"""The low-memory levers of a SiD-LSG full fine-tune (issue 16) on the CPU with a tiny UNet: no EMA (ema_decay 0 holds
no shadow and exports the live weights), G's trained weights stored in bf16 with stochastic-rounding updates, and
training.config.low_memory for SiD-LSG (ψ stored in bf16 or as LoRA factors of G's rank, φ's copy in bf16). Each
still trains (finite losses, weights move), and a checkpoint resumes exactly."""
from __future__ import annotations

import argparse
import dataclasses

import pytest
import torch
from test_core_training_fixtures import tiny_unet
from test_core_training_sid_lsg import _state, prompts, sid_config

from training import cli
from training.config import GeneratorConfig, TrainConfig, low_memory
from training.ema import EMA
from training.rounding import Bf16WeightsOptimizer
from training.session import TrainingSession


def _lowest(ema_decay: float = 0.0) -> TrainConfig:
    """Every lever of a full fine-tune: low_memory (Adafactor, ψ and φ in bf16), G stored in bf16, no EMA."""
    c = low_memory(sid_config())
    return dataclasses.replace(c, generator=dataclasses.replace(c.generator, storage_dtype="bfloat16"), ema_decay=ema_decay)


def test_ema_decay_zero_holds_nothing_and_is_the_live_weights():
    net = torch.nn.Linear(3, 2)
    ema = EMA(net, 0.0)
    assert ema.shadow == {} and not ema.enabled
    ema.update(net)
    assert ema.state_dict() == {"updates": 1}
    with_shadow = EMA(net, 0.9)
    with_shadow.update(net)
    ema.load_state_dict(with_shadow.state_dict())  # a run that had an EMA resumes without one
    assert ema.updates == 1 and ema.shadow == {}
    with pytest.raises(ValueError, match="ema_decay"):
        TrainConfig(ema_decay=-0.1)


def test_low_memory_levers_of_sid_lsg():
    full = low_memory(sid_config())
    assert (full.sid.fake_dtype, full.sid.fake_lora_rank, full.generator.frozen_dtype) == ("bfloat16", 0, "bfloat16")
    assert (full.optim.optimizer, full.optim.optimizer_d, full.bf16) == ("adafactor", "adafactor", True)
    lora = low_memory(sid_config(top={"generator": GeneratorConfig(lora_rank=4)}))
    assert (lora.sid.fake_dtype, lora.sid.fake_lora_rank, lora.generator.frozen_dtype) == ("float32", 4, "bfloat16")
    own = low_memory(sid_config(fake_lora_rank=2, top={"generator": GeneratorConfig(lora_rank=4)}))
    assert own.sid.fake_lora_rank == 2  # a ψ rank given is kept
    d2g = low_memory(TrainConfig())  # Diffusion2GAN's full fine-tune: unchanged (no frozen copy to store)
    assert (d2g.generator.frozen_dtype, d2g.sid) == ("float32", TrainConfig().sid)
    with pytest.raises(ValueError, match="storage_dtype"):
        TrainConfig(generator=GeneratorConfig(storage_dtype="bfloat16"))  # needs bf16 autocast
    with pytest.raises(ValueError, match="storage_dtype"):
        GeneratorConfig(storage_dtype="float16")


def test_full_finetune_with_every_lever_trains_and_resumes_exactly(tmp_path):
    config = _lowest()
    straight = TrainingSession(tiny_unet(), config, prompts(), str(tmp_path / "straight"))
    e, m = straight.trainer, straight.trainer.method
    assert e.ema.shadow == {} and isinstance(e.opt_g, Bf16WeightsOptimizer)
    assert {p.dtype for p in e.trainable_parameters()} == {torch.bfloat16}
    assert {p.dtype for p in m.fake.parameters() if p.requires_grad} == {torch.bfloat16}
    assert {p.dtype for p in m.teacher.parameters()} == {torch.bfloat16}
    start = _state(straight)
    result = straight.run(4)
    assert all(torch.isfinite(torch.tensor(v)) for v in result.logs.values())
    want = _state(straight)
    moved = [k for k in want if k.startswith("g.") and not torch.equal(want[k], start[k])]
    assert len(moved) > len([k for k in want if k.startswith("g.")]) // 2  # G learns in bf16 (lr 1e-3, Adafactor)
    assert {p.dtype for p in e.trainable_parameters()} == {torch.bfloat16} and all(p.grad is None for p in e.unet.parameters())
    assert all(torch.equal(want[f"ema.{k[2:]}"], v) for k, v in want.items() if k.startswith("g."))  # no EMA: the live weights
    run_dir = str(tmp_path / "halves")
    assert TrainingSession(tiny_unet(), config, prompts(), run_dir).run(4, on_step=lambda step, logs: step == 2).stopped
    resumed = TrainingSession(tiny_unet(), config, prompts(), run_dir)
    assert resumed.step == 2
    resumed.run(4)
    got = _state(resumed)
    assert all(torch.equal(got[k], want[k]) for k in want), [k for k in want if not torch.equal(got[k], want[k])][:5]


def test_bf16_generator_storage_with_adamw_and_an_ema():
    """G in bf16 with AdamW (the moments float32) and a float32 EMA of its bf16 weights: trains, the EMA moves apart."""
    c = sid_config(fake_dtype="bfloat16", top={"bf16": True, "ema_decay": 0.5, "generator": GeneratorConfig(storage_dtype="bfloat16")})
    c = dataclasses.replace(c, optim=dataclasses.replace(c.optim, optimizer="adamw"))
    s = TrainingSession(tiny_unet(), c, prompts(), None)
    s.run(3)
    e = s.trainer
    inner = e.opt_g.inner
    assert all(v.dtype == torch.float32 for st in inner.state.values() for k, v in st.items() if k != "step")
    live, ema = e.generator_state_dict(ema=False, layout="native"), e.generator_state_dict(ema=True, layout="native")
    assert all(v.dtype == torch.float32 and torch.isfinite(v).all() for v in ema.values())
    assert any(not torch.equal(live[k], ema[k]) for k in live)


def test_cli_flags_of_the_levers():
    p = argparse.ArgumentParser()
    cli.add_train_arguments(p)
    a = p.parse_args(["--method", "sid-lsg", "--prompts", "p.txt", "--teacher", "t", "--out", "o", "--steps", "5", "--bf16", "--low-memory",
                      "--generator-dtype", "bfloat16", "--ema-decay", "0"])
    c = cli.config_from_args(a)
    assert (c.generator.storage_dtype, c.ema_decay, c.sid.fake_dtype, c.generator.frozen_dtype) == ("bfloat16", 0.0, "bfloat16", "bfloat16")
