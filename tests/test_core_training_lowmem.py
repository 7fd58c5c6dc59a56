"""Low-memory options of the trainer (what fits SD1.5 full fine-tuning in 16 GB and a LoRA run in 6 GB): a bf16 EMA
with seeded stochastic rounding, Adafactor / per-tensor updates, a separate D optimiser, G's frozen base stored in
bf16. Each still trains (finite losses, weights move) and a checkpoint resumes exactly."""
from __future__ import annotations

import pytest
import torch
from test_core_training_fixtures import PairsDataset, config, resumed_halfway, tiny_elpips, tiny_unet

from training.config import DiscriminatorConfig, GeneratorConfig, TrainConfig
from training.rounding import Bf16WeightsOptimizer, stochastic_round_bf16
from training.trainer import Trainer


def test_stochastic_rounding_is_unbiased_and_lands_on_neighbours():
    x = torch.full((200_000,), 1.0 + 1e-3)  # bf16 neighbours: 1.0 and 1.0078125
    r = stochastic_round_bf16(x, torch.Generator().manual_seed(0))
    assert r.dtype == torch.bfloat16 and set(r.float().unique().tolist()) == {1.0, 1.0078125}
    assert abs(r.float().mean().item() - (1.0 + 1e-3)) < 1e-4  # round-to-nearest would give exactly 1.0
    neg = stochastic_round_bf16(-x, torch.Generator().manual_seed(0))
    assert torch.equal(neg, -r)  # symmetric in the sign


def _lowmem_full() -> Trainer:
    cfg = config(optim={"optimizer": "adafactor", "foreach": False}, ema_dtype="bfloat16", ema_decay=0.99,
                 loss={"warmup_steps": 1}, discriminator={"r1_every": 2}, seed=4)
    return Trainer(tiny_unet(), cfg, tiny_elpips())


def test_lowmem_full_finetune_trains_and_resumes_exactly(tmp_path):
    full = _lowmem_full()
    before = {k: v.clone() for k, v in full.generator_state_dict(ema=False, layout="native").items()}
    result = full.run(PairsDataset(), 4)
    assert result.step == 4 and all(torch.isfinite(torch.tensor(v)) for v in result.logs.values())
    assert "d_real" in result.logs and all(p.grad is None for p in full.unet.parameters())  # gradients freed after the step
    assert all(t.dtype == torch.bfloat16 for t in full.ema.shadow.values())
    after = full.generator_state_dict(ema=False, layout="native")
    assert any(not torch.equal(before[k], after[k]) for k in before)
    ema = full.generator_state_dict(ema=True, layout="native")
    assert any(not torch.equal(before[k], ema[k].to(torch.bfloat16).float()) for k in before)  # the EMA moved too

    _, resumed = resumed_halfway(_lowmem_full, tmp_path)
    for ema_flag in (False, True):
        want, got = full.generator_state_dict(ema=ema_flag, layout="native"), resumed.generator_state_dict(ema=ema_flag, layout="native")
        assert all(torch.equal(want[k], got[k]) for k in want), f"ema={ema_flag}"
    assert all(torch.equal(a, b) for a, b in zip(full.discriminator.state_dict().values(), resumed.discriminator.state_dict().values()))


def test_lora_with_bf16_frozen_base_trains():
    cfg = config(generator=GeneratorConfig(lora_rank=4, frozen_dtype="bfloat16"), bf16=True, optim={"optimizer_d": "adafactor", "foreach": False})
    trainer = Trainer(tiny_unet(), cfg, tiny_elpips())
    assert isinstance(trainer.opt_g, torch.optim.AdamW) and isinstance(trainer.opt_d, torch.optim.Adafactor)
    frozen = [p for p in trainer.unet.parameters() if not p.requires_grad]
    assert frozen and all(p.dtype == torch.bfloat16 for p in frozen)
    assert all(p.dtype == torch.float32 for p in trainer.trainable_parameters())
    assert all(p.dtype == torch.float32 for p in trainer.discriminator.parameters())  # D is trained: float32
    before = {k: v.clone() for k, v in trainer.lora_state_dict(ema=False).items()}
    result = trainer.run(PairsDataset(), 2)
    assert all(torch.isfinite(torch.tensor(v)) for v in result.logs.values()) and "d_real" in result.logs
    after = trainer.lora_state_dict(ema=False)
    assert any(not torch.equal(before[k], after[k]) for k in before)
    merged = trainer.generator_state_dict(ema=False, layout="native")
    assert all(v.dtype == torch.float32 and torch.isfinite(v).all() for v in merged.values())


def test_bf16_frozen_base_needs_autocast():
    with pytest.raises(ValueError, match="bf16 autocast"):
        TrainConfig(generator=GeneratorConfig(lora_rank=4, frozen_dtype="bfloat16"))
    with pytest.raises(ValueError, match="ema_dtype"):
        TrainConfig(ema_dtype="float16")
    assert TrainConfig.from_dict(TrainConfig(ema_dtype="bfloat16", bf16=True).to_dict()).ema_dtype == "bfloat16"


def test_bf16_weights_optimizer_keeps_steps_below_bf16_resolution():
    # SGD steps of 1e-4 on weights of 1.0 are 1/78 of a bf16 step: rounding to nearest would never move them
    w = torch.nn.Parameter(torch.ones(4096, dtype=torch.bfloat16))
    opt = Bf16WeightsOptimizer(torch.optim.SGD([w], lr=1e-4), seed=3)
    for _ in range(100):
        w.grad = torch.ones_like(w)
        opt.step()
    assert w.dtype == torch.bfloat16 and w.grad is None
    assert abs(w.float().mean().item() - (1.0 - 1e-2)) < 1e-3  # unbiased: 100 steps of 1e-4 on average
    nearest = torch.ones(4096, dtype=torch.bfloat16)
    for _ in range(100):
        nearest = (nearest.float() - 1e-4).to(torch.bfloat16)
    assert torch.equal(nearest.float(), torch.ones(4096))  # what plain bf16 storage would do
    state = opt.state_dict()
    again = Bf16WeightsOptimizer(torch.optim.SGD([torch.nn.Parameter(w.detach().clone())], lr=1e-4), seed=3)
    again.load_state_dict(state)
    assert again.steps == 100


def _bf16_d(seed: int = 4) -> Trainer:
    cfg = config(optim={"optimizer_d": "adafactor", "foreach": False}, bf16=True, discriminator={"storage_dtype": "bfloat16", "r1_every": 2},
                 loss={"warmup_steps": 1}, seed=seed)
    return Trainer(tiny_unet(), cfg, tiny_elpips())


def test_bf16_discriminator_trains_and_resumes_exactly(tmp_path):
    full = _bf16_d()
    d = full.discriminator
    assert all(p.dtype == torch.bfloat16 for p in d.parameters())
    before = {k: v.clone() for k, v in d.state_dict().items()}
    result = full.run(PairsDataset(), 4)
    assert all(torch.isfinite(torch.tensor(v)) for v in result.logs.values()) and "d_real" in result.logs
    assert all(p.dtype == torch.bfloat16 for p in d.parameters()) and all(p.grad is None for p in d.parameters())
    assert sum(not torch.equal(before[k], v) for k, v in d.state_dict().items()) > len(before) // 2  # D learns in bf16
    _, resumed = resumed_halfway(_bf16_d, tmp_path)
    assert all(torch.equal(a, b) for a, b in zip(d.state_dict().values(), resumed.discriminator.state_dict().values()))
    want, got = full.generator_state_dict(ema=True, layout="native"), resumed.generator_state_dict(ema=True, layout="native")
    assert all(torch.equal(want[k], got[k]) for k in want)


def test_bf16_discriminator_needs_autocast():
    with pytest.raises(ValueError, match="bf16 autocast"):
        TrainConfig(discriminator=DiscriminatorConfig(storage_dtype="bfloat16"))
    with pytest.raises(ValueError, match="storage_dtype"):
        DiscriminatorConfig(storage_dtype="float16")


def test_low_memory_variant_of_a_config():
    from training.config import low_memory

    lora = low_memory(TrainConfig(generator=GeneratorConfig(lora_rank=8)))
    assert (lora.generator.frozen_dtype, lora.optim.optimizer, lora.optim.optimizer_d, lora.ema_dtype) == ("bfloat16", "adamw", "", "float32")
    full = low_memory(TrainConfig())
    assert (full.generator.frozen_dtype, full.optim.optimizer, full.optim.optimizer_d, full.ema_dtype) == ("float32", "adafactor", "adafactor", "bfloat16")
    for c in (lora, full):
        assert c.bf16 and c.discriminator.r1_mode == "approx"
    assert (full.discriminator.backbone, full.discriminator.storage_dtype) == ("full", "bfloat16")  # the paper's D, stored in bf16
    assert (lora.discriminator.backbone, lora.discriminator.storage_dtype) == ("lora", "float32")  # D on G's frozen base
