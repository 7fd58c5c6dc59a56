"""Shared pieces of the trainer tests (no tests here): a tiny teacher UNet, a tiny E-LatentLPIPS and a
synthetic, learnable pairs dataset in the layout of onestep/pairs (noise, latent in VAE units, context)."""
from __future__ import annotations

import torch
from diffusers import UNet2DConditionModel

from onestep.latent_lpips import ELatentLPIPS, LatentLPIPS, get_encoder
from training.config import DiscriminatorConfig, LossConfig, OptimConfig, TrainConfig
from training.diffusers_unet import DiffusersUNet

torch.set_num_threads(1)  # the test machine is small and shared

SCALE = 0.18215  # SD1.5 latent scale: the UNet's x0 space is latent × SCALE
CTX_DIM = 32
TINY = {
    "block_out_channels": (32, 64), "down_block_types": ("CrossAttnDownBlock2D", "DownBlock2D"),
    "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D"), "layers_per_block": 1, "cross_attention_dim": CTX_DIM,
    "attention_head_dim": 8, "norm_num_groups": 32, "sample_size": 16, "in_channels": 4, "out_channels": 4,
}


def tiny_unet(seed: int = 0) -> DiffusersUNet:
    """A tiny SD1.5-layout UNet behind the trainer's interface (deterministic for a seed)."""
    torch.manual_seed(seed)
    return DiffusersUNet(UNet2DConditionModel(**TINY), latent_scale=SCALE)


def tiny_elpips(seed: int = 0) -> ELatentLPIPS:
    """E-LatentLPIPS with a 1/8-width random network (a fixed function of the inputs, not a perceptual metric)."""
    torch.manual_seed(seed)
    return ELatentLPIPS(LatentLPIPS(in_channels=4, width=1 / 8), get_encoder("sd15")).eval()


class PairsDataset(torch.utils.data.Dataset):
    """Items of a fixed synthetic teacher: x0 = smooth(z)·0.8 + a colour per prompt (UNet space), stored in VAE units."""

    def __init__(self, n: int = 16, size: int = 16, prompts: int = 4, seed: int = 0, context_dim: int = CTX_DIM, channels: int = 4):
        g = torch.Generator().manual_seed(seed)
        self.noise = torch.randn(n, channels, size, size, generator=g)
        self.contexts = torch.randn(prompts, 7, context_dim, generator=g)
        colours = torch.randn(prompts, channels, 1, 1, generator=g) * 0.5
        self.prompt = torch.arange(n) % prompts
        smooth = torch.nn.functional.interpolate(torch.nn.functional.avg_pool2d(self.noise, 4), size=(size, size), mode="bilinear")
        self.latent = (0.8 * smooth + colours[self.prompt]) / SCALE

    def __len__(self) -> int:
        return len(self.noise)

    def __getitem__(self, i: int) -> dict:
        return {"noise": self.noise[i], "latent": self.latent[i], "context": self.contexts[self.prompt[i]],
                "prompt_index": self.prompt[i], "seed": torch.tensor(i)}


def batch_of(ds, n: int = 4) -> dict[str, torch.Tensor]:
    """The first n items of a dataset stacked into one training batch."""
    items = [ds[i] for i in range(n)]
    return {k: torch.stack([it[k] for it in items]) for k in items[0]}


def config(**kw) -> TrainConfig:
    """A small-run config: GAN from step 0 unless told, fast learning rates, no lr warm-up."""
    d = {"enabled": True}
    d.update(kw.pop("discriminator", {}))
    loss = {"regression": "elatentlpips", "warmup_steps": 0}
    loss.update(kw.pop("loss", {}))
    optim = {"lr_g": 1e-3, "lr_d": 1e-3, "lr_warmup": 0}
    optim.update(kw.pop("optim", {}))
    return TrainConfig(discriminator=DiscriminatorConfig(**d), loss=LossConfig(**loss), optim=OptimConfig(**optim),
                       batch_size=kw.pop("batch_size", 4), save_every=kw.pop("save_every", 0), **kw)


def resumed_halfway(make, tmp_path, steps: int = 4):
    """(first half, resumed): make() run steps//2 steps with a checkpoint, then a fresh make() resumed from it and run to steps."""
    half = make()
    ckpt = str(tmp_path / "halfway.safetensors")
    half.run(PairsDataset(), steps // 2, checkpoint=ckpt)
    resumed = make()
    assert resumed.load(ckpt) == steps // 2
    resumed.run(PairsDataset(), steps)
    return half, resumed


def tiny_pipeline(folder: str, seed: int = 0) -> str:
    """A diffusers pipeline folder as the CLI's prompts path reads it: the tiny UNet (unet/), a 2-layer CLIP text model
    of width CTX_DIM (text_encoder/) and a character-level CLIP tokenizer (tokenizer/: one token per character, no
    merges), all random and deterministic for a seed."""
    import json
    import os
    import string

    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    tiny_unet(seed).unet.save_pretrained(os.path.join(folder, "unet"))
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in string.ascii_lowercase + string.digits + ".,'-!":
        vocab[c], vocab[c + "</w>"] = len(vocab), len(vocab) + 1
    raw = os.path.join(folder, "tokenizer_files")
    os.makedirs(raw, exist_ok=True)
    with open(os.path.join(raw, "vocab.json"), "w") as f:
        json.dump(vocab, f)
    with open(os.path.join(raw, "merges.txt"), "w") as f:
        f.write("#version: 0.2\n")
    CLIPTokenizer(os.path.join(raw, "vocab.json"), os.path.join(raw, "merges.txt"), model_max_length=77).save_pretrained(os.path.join(folder, "tokenizer"))
    torch.manual_seed(seed)
    config = CLIPTextConfig(vocab_size=len(vocab), hidden_size=CTX_DIM, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                            max_position_embeddings=77, bos_token_id=0, eos_token_id=1, pad_token_id=1)
    CLIPTextModel(config).save_pretrained(os.path.join(folder, "text_encoder"))
    return folder
