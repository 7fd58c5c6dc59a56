"""Key layouts of SD-family UNets: diffusers' UNet2DConditionModel → ComfyUI's (ldm/sgm) UNetModel.

Released one-step models (InstaFlow, DMD2, SiD-LSG) ship diffusers-layout weights; the pack stores the ldm
layout that ComfyUI's loaders read. The block structure is read off the keys themselves (resnets per
down block, which up blocks carry attention), so SD1.x, SD2.x, SDXL and small test configs all map.
Block inner names (attention, transformer, norms) are identical in both layouts and pass through.
"""
from __future__ import annotations

import re

import torch

_RESNET = {  # diffusers ResnetBlock2D → ldm ResBlock
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}
_TOP = {
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "add_embedding.linear_1": "label_emb.0.0",
    "add_embedding.linear_2": "label_emb.0.2",
    "conv_in": "input_blocks.0.0",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
}


def is_diffusers_unet(sd: dict[str, torch.Tensor]) -> bool:
    """True for diffusers-layout UNet weights."""
    return "conv_in.weight" in sd and any(k.startswith("down_blocks.") for k in sd)


def _resnet(rest: str) -> str:
    head, _, tail = rest.partition(".")
    if head not in _RESNET:
        raise KeyError(head)
    return f"{_RESNET[head]}.{tail}"


def diffusers_to_ldm(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename diffusers UNet2DConditionModel keys to ComfyUI's UNetModel keys; unknown keys raise."""
    n_res = 1 + max(int(m.group(1)) for k in sd if (m := re.match(r"down_blocks\.0\.resnets\.(\d+)\.", k)))
    per_level = n_res + 1  # ldm input blocks per level: the resnets plus a downsampler
    up_has_attn = {int(m.group(1)) for k in sd if (m := re.match(r"up_blocks\.(\d+)\.attentions\.", k))}
    out: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        out[_rename(key, n_res, per_level, up_has_attn)] = value
    return out


def _rename(key: str, n_res: int, per_level: int, up_has_attn: set[int]) -> str:
    for old, new in _TOP.items():
        if key.startswith(old + "."):
            return new + key[len(old):]
    try:
        if m := re.match(r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)", key):
            i, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
            block = 1 + i * per_level + j
            return f"input_blocks.{block}.0.{_resnet(rest)}" if kind == "resnets" else f"input_blocks.{block}.1.{rest}"
        if m := re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)", key):
            return f"input_blocks.{1 + int(m[1]) * per_level + n_res}.0.op.{m[2]}"
        if m := re.match(r"mid_block\.resnets\.(\d+)\.(.*)", key):
            return f"middle_block.{2 * int(m[1])}.{_resnet(m[2])}"
        if m := re.match(r"mid_block\.attentions\.0\.(.*)", key):
            return f"middle_block.1.{m[1]}"
        if m := re.match(r"up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)", key):
            i, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
            block = i * per_level + j
            return f"output_blocks.{block}.0.{_resnet(rest)}" if kind == "resnets" else f"output_blocks.{block}.1.{rest}"
        if m := re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.*)", key):
            i = int(m[1])
            return f"output_blocks.{i * per_level + n_res}.{2 if i in up_has_attn else 1}.conv.{m[2]}"
    except KeyError:
        pass
    raise ValueError(f"unexpected key in diffusers UNet weights: {key!r}")
