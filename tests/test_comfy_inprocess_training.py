"""The trainer's ComfyUI adapter (onestep_nodes/comfy_unet.py) in-process with ComfyUI's real UNetModel: its forward is
the MODEL's UNet, its encoder and decoder passes return every level, its full copies (SiD-LSG's ψ and φ) compute the same, and a
Diffusion2GAN step trains through it."""
import torch

from onestep.latent_lpips import ELatentLPIPS, LatentLPIPS, get_encoder
from test_comfy_inprocess import F
from training.config import TrainConfig


def adapter(tmp_path):
    from onestep_nodes import comfy_unet as cu
    from onestep_nodes import generator_model as gm
    F.write_generator(str(tmp_path / "g.safetensors"))
    model = gm.load_generator_model(str(tmp_path / "g.safetensors"))
    return model, cu.ComfyUNet.from_model(model, device=torch.device("cpu"))


def test_adapter_forward_is_the_unet_and_encoder_has_every_level(tmp_path):
    model, net = adapter(tmp_path)
    assert net.info.latent_channels == 4 and net.info.context_dim == 768 and net.info.spatial_multiple == 2
    x, t, ctx = torch.randn(2, 4, 16, 16), torch.tensor([999.0, 500.0]), torch.randn(2, 77, 768)
    with torch.no_grad():
        want = model.model.diffusion_model(x, t, ctx)
        assert torch.allclose(net(x, t, ctx), want, atol=1e-5)
        net.set_gradient_checkpointing(True)
        assert torch.allclose(net(x, t, ctx), want, atol=1e-5)
        feats = net.encoder_features(x, t, ctx)
    assert [f.shape[1] for f in feats] == net.feature_channels == [32, 64, 64]
    assert [f.shape[-1] for f in feats] == [8, 8, 8]
    with torch.no_grad():  # the decoder pass (D's decoder readouts): every level, the last one what `out` turns into the output
        dec = net.decoder_features(x, t, ctx)
        assert torch.allclose(net.unet.out(dec[-1]), want, atol=1e-5)
    assert [f.shape[1] for f in dec] == net.decoder_channels == [64, 32] and [f.shape[-1] for f in dec] == [16, 16]
    body = net.decoder_copy()
    assert body.unet.out is None and body.unet.output_blocks is not None and net.unet.out is not None
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(body.decoder_features(x, t, ctx), dec))
    enc = net.encoder_copy()
    assert enc.unet.output_blocks is None and net.unet.output_blocks is not None
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(enc.encoder_features(x, t, ctx), feats))
    full, shared = net.full_copy(), net.full_copy(share_weights=True)  # SiD-LSG's ψ and φ
    with torch.no_grad():
        assert torch.equal(full(x, t, ctx), net(x, t, ctx)) and torch.equal(shared(x, t, ctx), net(x, t, ctx))
    assert full.info == net.info and full._encode_adm is net._encode_adm  # the model's method shared, not deep-copied
    assert all(a is not b for a, b in zip(full.parameters(), net.parameters())) and all(a is b for a, b in zip(shared.parameters(), net.parameters()))
    assert net.lora_targets() and all(".attn" in n or ".ff." in n for n in net.lora_targets())
    assert set(net.export_state_dict(net.state_dict())) == set(model.model.diffusion_model.state_dict())


def test_gan_step_trains_the_comfy_unet(tmp_path):
    from test_core_training_fixtures import PairsDataset
    from training.trainer import Trainer

    _, net = adapter(tmp_path)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    elpips = ELatentLPIPS(LatentLPIPS(in_channels=4, width=1 / 8), get_encoder("sd15"))
    cfg = TrainConfig.from_dict({"batch_size": 2, "loss": {"warmup_steps": 0}, "discriminator": {"enabled": True}})
    trainer = Trainer(net, cfg, elpips)
    result = trainer.run(PairsDataset(n=4, context_dim=768), 2)
    assert result.step == 2 and all(torch.isfinite(torch.tensor(v)) for v in result.logs.values() if isinstance(v, float))
    assert any(not torch.equal(before[k], v) for k, v in net.state_dict().items())
    sd = trainer.generator_state_dict()
    assert set(sd) == {k[len("unet."):] for k in before}  # ldm keys, no prefix: the generator format's layout
