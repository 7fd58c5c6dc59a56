"""Decoder readouts of the Diffusion2GAN discriminator (DiscriminatorConfig.readout = "decoder", the paper's heads on
decoder scales): the decoder pass is the UNet's own forward up to its output layers, D starts as the whole teacher
UNet, reads every decoder level, and a GAN step trains it through all of them."""
from __future__ import annotations

import pytest
import torch
from test_core_training_fixtures import PairsDataset, batch_of, config, tiny_elpips, tiny_unet

from training.config import DiscriminatorConfig
from training.trainer import Trainer


def test_decoder_pass_is_the_unet_forward_up_to_its_output_layers():
    net = tiny_unet()
    u = net.unet
    x, t, ctx = torch.randn(2, 4, 16, 16), torch.tensor([999.0, 40.0]), torch.randn(2, 7, u.config.cross_attention_dim)
    with torch.no_grad():
        feats = net.decoder_features(x, t, ctx)
        assert torch.allclose(u.conv_out(u.conv_act(u.conv_norm_out(feats[-1]))), net(x, t, ctx), atol=1e-5)
        assert [f.shape[1] for f in feats] == net.decoder_channels and [f.shape[-1] for f in feats] == [16, 16]
        residual = torch.randn(2, net.input_features, 16, 16)
        moved = net.decoder_features(x, t, ctx, input_residual=residual)  # the z-conv's way in reaches the decoder too
    assert not torch.allclose(moved[-1], feats[-1])


def test_decoder_readout_starts_as_the_whole_teacher_and_trains_every_head():
    unet = tiny_unet()
    teacher = {k: v.clone() for k, v in unet.state_dict().items()}
    trainer = Trainer(unet, config(discriminator={"readout": "decoder"}), tiny_elpips())
    d = trainer.discriminator
    body = d.encoder.state_dict()
    output_layers = {k for k in teacher if k.startswith(("unet.conv_norm_out.", "unet.conv_out."))}
    assert output_layers and set(body) == set(teacher) - output_layers  # up blocks included, the unused output layers not
    assert all(torch.equal(body[k], teacher[k]) for k in body)
    assert d.encoder.unet is not unet.unet and unet.unet.conv_out is not None and len(d.heads) == len(unet.decoder_channels)
    batch = batch_of(PairsDataset())
    logits = d(trainer.info.to_unet_space(batch["latent"]), torch.full((4,), 50.0), batch["noise"], batch["context"])
    assert [tuple(l.shape) for l in logits] == [(4, 1, 16, 16), (4, 1, 16, 16)]
    sum(l.mean() for l in logits).backward()
    assert [n for n, p in d.named_parameters() if p.grad is None] == []  # no parameter D never uses
    d.zero_grad(set_to_none=True)
    h0 = {n: p.detach().clone() for n, p in d.named_parameters()}
    logs = trainer.train_step(batch)
    assert {"gan_g", "d_real", "d_fake"} <= set(logs)
    moved = {n for n, p in d.named_parameters() if not torch.equal(p, h0[n])}
    assert {n.split(".")[1] for n in moved if n.startswith("heads.")} == {"0", "1"}
    assert any(n.startswith("encoder.unet.up_blocks.") for n in moved)
    single = Trainer(tiny_unet(), config(discriminator={"readout": "decoder", "multiscale": False}), tiny_elpips()).discriminator
    assert len(single.heads) == 1 and single.levels == [len(unet.decoder_channels) - 1]  # the finest level's head


def test_an_unknown_readout_is_refused_by_name():
    with pytest.raises(ValueError, match="readout must be one of"):
        DiscriminatorConfig(readout="middle")


def test_decoder_readout_with_a_lora_backbone_trains_only_its_factors_heads_and_z_conv():
    trainer = Trainer(tiny_unet(), config(discriminator={"readout": "decoder", "backbone": "lora", "lora_rank": 4}), tiny_elpips())
    d = trainer.discriminator
    trained = {n for n, p in d.named_parameters() if p.requires_grad}
    assert any(".up_blocks." in n and "lora" in n for n in trained)  # the decoder's attention gets factors too
    assert all("lora" in n or n.startswith(("heads.", "z_conv.")) for n in trained)
    assert {"d_real", "gan_g"} <= set(trainer.train_step(batch_of(PairsDataset())))
