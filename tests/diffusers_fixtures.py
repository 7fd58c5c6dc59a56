"""Small diffusers UNets in the exact layouts released one-step models ship in."""
from __future__ import annotations

import os
import pickle

import torch
from diffusers import UNet2DConditionModel

TINY_SD15 = dict(
    block_out_channels=(32, 64), down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), layers_per_block=1, cross_attention_dim=768,
    attention_head_dim=8, norm_num_groups=32, sample_size=8,  # ldm UNets use 32 groups
)


def tiny_unet(seed: int = 0, **overrides) -> UNet2DConditionModel:
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(**{**TINY_SD15, **overrides}).eval()
    with torch.no_grad():  # diffusers zero-initialises conv_out; give every weight some signal
        for p in unet.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    return unet


def instaflow_folder(root: str, unet: UNet2DConditionModel) -> str:
    """<root>/unet/{config.json, diffusion_pytorch_model.safetensors}, as save_pretrained writes a pipeline's UNet."""
    unet.save_pretrained(os.path.join(root, "unet"))
    with open(os.path.join(root, "model_index.json"), "w") as f:
        f.write('{"_class_name": "RectifiedFlowPipeline", "unet": ["diffusers", "UNet2DConditionModel"]}')
    return root


def dmd2_state_dict(path: str, unet: UNet2DConditionModel) -> str:
    """A DMD2-style UNet state dict (diffusers keys) saved with torch.save."""
    torch.save(unet.state_dict(), path)
    return path


def sid_lsg_pickle(path: str, unet: UNet2DConditionModel) -> str:
    """A SiD-LSG checkpoint: pickle of {'ema': module}."""
    with open(path, "wb") as f:
        pickle.dump({"ema": unet}, f)
    return path


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/onestep_pwned",))


def evil_pickle(path: str, unet: UNet2DConditionModel) -> str:
    """A pickle that would run a shell command when unpickled normally."""
    with open(path, "wb") as f:
        pickle.dump({"ema": unet, "payload": _Evil()}, f)
    return path
