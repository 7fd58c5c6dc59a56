"""D's minibatch-std readout (DiscriminatorConfig.mbstd_group): each head can read how varied a group of samples is,
groups never mix items of different groups, and with the setting off D is the one checkpoints already hold."""
from __future__ import annotations

import pytest
import torch
from test_core_training_fixtures import PairsDataset, batch_of, config, tiny_elpips, tiny_unet

from proof_scale import rows
from training.config import DiscriminatorConfig
from training.discriminator import minibatch_std
from training.trainer import Trainer


def test_minibatch_std_is_each_groups_feature_std_per_position():
    x = torch.randn(8, 3, 2, 2, generator=torch.Generator().manual_seed(0))
    s = minibatch_std(x, 4)
    assert s.shape == (8, 1, 2, 2)
    expected = x[4:].std(dim=0, unbiased=False).mean(dim=0)  # the second group of four
    assert torch.allclose(s[5, 0], expected, atol=1e-5) and torch.equal(s[4], s[7])
    assert not torch.allclose(s[0], s[4])
    assert minibatch_std(x, 3).shape == (8, 1, 2, 2) and torch.allclose(minibatch_std(x, 3)[:2], minibatch_std(x[:2], 2))  # 3 ∤ 8: pairs
    assert torch.allclose(minibatch_std(x, 1), torch.full((8, 1, 2, 2), 1e-4))  # one sample: nothing to compare


def test_a_head_reading_the_group_std_sees_only_its_own_group():
    trainer = Trainer(tiny_unet(), config(discriminator={"mbstd_group": 2}), tiny_elpips())
    d = trainer.discriminator
    assert all(h.net[2].in_channels == h.net[0].num_channels + 1 for h in d.heads)
    batch = batch_of(PairsDataset())
    x = trainer.info.to_unet_space(batch["latent"])
    t = torch.full((4,), 50.0)
    with torch.no_grad():
        base = d(x, t, batch["noise"], batch["context"])
        x2 = x.clone()
        x2[3] = torch.randn_like(x2[3])  # item 3 changes: only its own group (items 2, 3) may score differently
        moved = d(x2, t, batch["noise"], batch["context"])
    for a, b in zip(base, moved):
        assert torch.allclose(a[:2], b[:2], atol=1e-6) and not torch.allclose(a[2], b[2], atol=1e-6)
    logs = trainer.train_step(batch)
    assert {"gan_g", "d_real", "d_fake"} <= set(logs)


def test_off_by_default_with_the_checkpoint_layout_unchanged():
    assert DiscriminatorConfig().mbstd_group == 0
    plain = Trainer(tiny_unet(), config(), tiny_elpips()).discriminator.state_dict()
    grouped = Trainer(tiny_unet(), config(discriminator={"mbstd_group": 4}), tiny_elpips()).discriminator.state_dict()
    assert set(plain) == set(grouped) and any(k.startswith("heads.0.net.2.") for k in plain)
    assert [k for k in plain if plain[k].shape != grouped[k].shape] == [k for k in plain if k.startswith("heads.") and k.endswith("net.2.weight")]
    with pytest.raises(ValueError, match="mbstd_group must be"):
        DiscriminatorConfig(mbstd_group=-1)


def test_a_proof_scale_row_sets_it():  # the CLI's --d-mbstd-group: tests/test_core_training_cli.py
    row = "diffusion2gan@steps=10:batch=8:d_mbstd=4"
    assert rows.train_config(rows.plan(row, rows.ROW_DEFAULTS), bf16=False, save_every=10).discriminator.mbstd_group == 4
