"""A LoRA discriminator backbone (DiscriminatorConfig.backbone="lora"): the copy of the teacher's encoder is frozen
and only its LoRA factors, the readout heads and the z-conv train. With a LoRA generator the frozen weights are
G's own tensors (one copy in memory), so neither model may change them; checkpoints leave them out and resume
exactly."""
from __future__ import annotations

import pytest
import torch
from test_core_training_fixtures import PairsDataset, config, resumed_halfway, tiny_elpips, tiny_unet

from training import lora
from training.config import DiscriminatorConfig, GeneratorConfig
from training.trainer import Trainer


def _lora_d(rank_g: int = 4, **over) -> Trainer:
    cfg = config(generator=GeneratorConfig(lora_rank=rank_g, **over.pop("generator", {})), loss={"warmup_steps": 0},
                 discriminator={"backbone": "lora", "lora_rank": 2, "r1_every": 2}, seed=7, **over)
    return Trainer(tiny_unet(), cfg, tiny_elpips())


def _frozen(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p for n, p in module.named_parameters() if not p.requires_grad}


def test_lora_backbone_shares_the_generators_frozen_weights():
    t = _lora_d(generator={"frozen_dtype": "bfloat16"}, bf16=True)
    d_frozen = _frozen(t.discriminator.encoder)
    g_ptrs = {p.data_ptr() for p in _frozen(t.unet).values()}
    assert d_frozen and all(p.data_ptr() in g_ptrs for p in d_frozen.values())  # no second copy of the backbone
    assert all(p.dtype == torch.bfloat16 for p in d_frozen.values())  # G's bf16 storage is D's too
    assert lora.lora_layers(t.discriminator.encoder)  # D has its own LoRA factors ...
    d_trained = {id(p) for p in t.discriminator_parameters()}
    assert d_trained.isdisjoint(id(p) for p in t.trainable_parameters())  # ... not G's
    names = {n for n, p in t.discriminator.named_parameters() if p.requires_grad}
    assert names and all(".lora_" in n or n.startswith(("heads.", "z_conv.")) for n in names)
    assert {id(p) for g in t.opt_d.param_groups for p in g["params"]} == d_trained


def test_gan_steps_train_the_lora_factors_and_heads_but_never_the_shared_weights():
    t = _lora_d()
    frozen = {n: p.detach().clone() for n, p in _frozen(t.unet).items()}
    d_before = {n: p.detach().clone() for n, p in t.discriminator.named_parameters() if p.requires_grad}
    result = t.run(PairsDataset(), 3)
    assert "d_real" in result.logs and "r1" in result.logs and all(torch.isfinite(torch.tensor(v)) for v in result.logs.values())
    now = dict(t.discriminator.named_parameters())
    assert any(".lora_up" in n and not torch.equal(now[n], v) for n, v in d_before.items())  # B starts at 0 and moved
    assert any(n.startswith("heads.") and not torch.equal(now[n], v) for n, v in d_before.items())
    g_now = dict(t.unet.named_parameters())
    assert all(torch.equal(g_now[n], v) for n, v in frozen.items())  # the shared backbone is untouched
    assert all(not p.requires_grad for p in _frozen(t.unet).values())  # D's step did not unfreeze it
    assert all(p.grad is None for p in t.discriminator.parameters())


def test_lora_backbone_checkpoint_leaves_the_backbone_out_and_resumes_exactly(tmp_path):
    full = _lora_d()
    full.run(PairsDataset(), 4)
    half, resumed = resumed_halfway(_lora_d, tmp_path)
    d_keys = set(half.state_dict()["discriminator"])
    assert d_keys and not d_keys & set(_frozen(half.discriminator))
    want, got = full.generator_state_dict(ema=True, layout="native"), resumed.generator_state_dict(ema=True, layout="native")
    assert all(torch.equal(want[k], got[k]) for k in want)
    assert all(torch.equal(a, b) for a, b in zip(full.discriminator.state_dict().values(), resumed.discriminator.state_dict().values()))
    paper_d = Trainer(tiny_unet(), config(generator=GeneratorConfig(lora_rank=4), seed=7), tiny_elpips())
    with pytest.raises(ValueError, match="discriminator does not match"):
        paper_d.load(str(tmp_path / "halfway.safetensors"))


def test_full_generator_with_lora_backbone_keeps_its_own_frozen_copy():
    t = Trainer(tiny_unet(), config(discriminator={"backbone": "lora", "lora_rank": 2}, loss={"warmup_steps": 0}), tiny_elpips())
    g_ptrs = {p.data_ptr() for p in t.unet.parameters()}
    d_frozen = _frozen(t.discriminator.encoder)
    assert d_frozen and not any(p.data_ptr() in g_ptrs for p in d_frozen.values())  # G trains: D cannot share it
    before = {n: p.detach().clone() for n, p in d_frozen.items()}
    t.run(PairsDataset(), 2)
    assert all(torch.equal(p, before[n]) for n, p in _frozen(t.discriminator.encoder).items())


@pytest.mark.parametrize("bad, message", [({"backbone": "frozen"}, "backbone must be one of"), ({"backbone": "lora", "lora_rank": 0}, "lora_rank")])
def test_discriminator_backbone_config_is_validated(bad, message):
    with pytest.raises(ValueError, match=message):
        DiscriminatorConfig(**bad)
