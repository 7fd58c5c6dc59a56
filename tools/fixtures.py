"""Random-weight models with real SD-family architectures, built with ComfyUI's own classes.

Nothing is downloaded: UNets, CLIP-L, the SD VAE and an SD1.5 ControlNet are built from their configs and
filled with small random weights (seeded, so the same call makes the same files). Run with the ComfyUI tree
on PYTHONPATH; used by the tests and by scripts that build the pack's embedded default model.
"""
from __future__ import annotations

import math
import os

import comfy.cli_args

comfy.cli_args.args.cpu = comfy.cli_args.args.cpu or not __import__("torch").cuda.is_available()

import comfy.cldm.cldm  # noqa: E402
import comfy.model_management  # noqa: E402
import comfy.sd  # noqa: E402
import comfy.sdxl_clip  # noqa: E402
import comfy.supported_models  # noqa: E402
import torch  # noqa: E402
from comfy.ldm.models.autoencoder import AutoencoderKL  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

from onestep.format import GeneratorMetadata, save_generator  # noqa: E402

SD15_UNET = {
    "use_checkpoint": False, "image_size": 32, "use_spatial_transformer": True, "legacy": False,
    "adm_in_channels": None, "in_channels": 4, "out_channels": 4, "model_channels": 320,
    "num_res_blocks": [2, 2, 2, 2], "transformer_depth": [1, 1, 1, 1, 1, 1, 0, 0],
    "transformer_depth_output": [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0], "channel_mult": [1, 2, 4, 4],
    "transformer_depth_middle": 1, "use_linear_in_transformer": False, "context_dim": 768,
    "use_temporal_resblock": False, "use_temporal_attention": False,
}
# SDXL's base UNet (2.6 B parameters) as ComfyUI's model detection reads it from SDXL weights (tests check that core's
# detection of its state dict gives supported_models.SDXL and this config); for the GPU benchmarks.
SDXL_UNET = {
    "use_checkpoint": False, "image_size": 32, "use_spatial_transformer": True, "legacy": False, "num_classes": "sequential",
    "adm_in_channels": 2816, "in_channels": 4, "out_channels": 4, "model_channels": 320, "num_res_blocks": [2, 2, 2],
    "transformer_depth": [0, 0, 2, 2, 10, 10], "transformer_depth_output": [0, 0, 0, 2, 2, 2, 10, 10, 10], "channel_mult": [1, 2, 4],
    "transformer_depth_middle": 10, "use_linear_in_transformer": True, "context_dim": 2048, "use_temporal_resblock": False,
    "use_temporal_attention": False, "num_heads": -1, "num_head_channels": 64,
}
# The SD1.5 family at 1/10 width: same blocks and conditioning, ~1 M parameters, runs in milliseconds on CPU.
TINY_UNET = {
    **SD15_UNET, "model_channels": 32, "num_res_blocks": [1, 1], "transformer_depth": [1, 0],
    "transformer_depth_output": [1, 1, 0, 0], "channel_mult": [1, 2],
}
# The SDXL family at reduced width: SDXL's conditioning (2048-wide text, pooled text + six size embeddings into a
# 2816-wide label embedding, linear transformer projections), SD1.5-tiny's blocks. Files carry it as unet_config.
TINY_SDXL_UNET = {
    **TINY_UNET, "context_dim": 2048, "adm_in_channels": 2816, "num_classes": "sequential", "use_linear_in_transformer": True,
    "num_heads": -1, "num_head_channels": 32,
}
SD_VAE = {
    "double_z": True, "z_channels": 4, "resolution": 256, "in_channels": 3, "out_ch": 3, "ch": 128,
    "ch_mult": [1, 2, 4, 4], "num_res_blocks": 2, "attn_resolutions": [], "dropout": 0.0,
}


def randomize(module: torch.nn.Module, seed: int, gain: float = 1.0) -> torch.nn.Module:
    """Small seeded random weights (ComfyUI's layers skip initialisation): fan-in scaled normals, unit norms."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("bias"):
                p.zero_()
            elif p.ndim <= 1:
                p.fill_(1.0) if p.ndim == 1 else None
            else:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) * (gain / math.sqrt(fan_in)))
    return module


def unet_state_dict(unet_config: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    """ldm-layout weights of an SD1.5-family UNet with the given config."""
    model = comfy.supported_models.SD15(dict(unet_config)).get_model({})
    return {k: v.contiguous() for k, v in randomize(model.diffusion_model, seed).state_dict().items()}


def write_generator(path: str, architecture: dict = TINY_UNET, seed: int = 0, dtype: torch.dtype = torch.float32, **meta) -> GeneratorMetadata:
    """A generator file around a random UNet of `architecture` (an ldm unet config; defaults: Diffusion2GAN-style ε at
    t=999, σ_t·z input); `meta` sets metadata fields (its unet_config is what the file records)."""
    fields = dict(method="diffusion2gan", base="sd15", prediction="eps", timestep=999, input_convention="sigma_z",
                  latent_format="sd15", latent_channels=4, guidance=None, source="random-weight fixture")
    fields.update(meta)
    md = GeneratorMetadata(**fields)
    save_generator(path, {k: v.to(dtype) for k, v in unet_state_dict(architecture, seed).items()}, md)
    return md


def write_unet(path: str, unet_config: dict = SD15_UNET, seed: int = 7, dtype: torch.dtype = torch.float16) -> None:
    """A plain diffusion-model file (ldm keys, no metadata) that core's UNETLoader loads: a teacher MODEL."""
    _save(unet_state_dict(unet_config, seed), path, dtype)


# Layers of an SD1.5 UNet a kohya-format LoRA fixture adapts, in diffusers names (kohya's key names are these with
# "_" for "."): attention projections at both ends and the middle, a 1×1 convolution and a feed-forward output.
KOHYA_LORA_LAYERS = (
    "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q",
    "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k",
    "down_blocks.1.attentions.1.proj_in",
    "mid_block.attentions.0.transformer_blocks.0.attn1.to_out.0",
    "up_blocks.3.attentions.2.transformer_blocks.0.attn2.to_v",
    "up_blocks.3.attentions.2.transformer_blocks.0.ff.net.2",
)


def kohya_lora(unet_sd: dict[str, torch.Tensor], unet_config: dict = SD15_UNET, rank: int = 4, alpha: float = 2.0,
               seed: int = 9) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """A random LoRA for KOHYA_LORA_LAYERS in kohya's format (lora_unet_<name>.lora_down/.lora_up/.alpha, as
    A1111/Forge load it) and, per kohya module name, the ldm key of the weight it changes (sized from `unet_sd`)."""
    import comfy.utils

    to_ldm = comfy.utils.unet_to_diffusers(dict(unet_config))
    g = torch.Generator().manual_seed(seed)
    lora, targets = {}, {}
    for layer in KOHYA_LORA_LAYERS:
        key = to_ldm[layer + ".weight"]
        out_ch, in_ch, *kernel = unet_sd[key].shape
        name = "lora_unet_" + layer.replace(".", "_")
        ones = [1] * len(kernel)  # a 1×1 convolution's LoRA factors are 1×1 convolutions
        lora[name + ".lora_down.weight"] = (torch.randn(rank, in_ch, generator=g) / math.sqrt(in_ch)).reshape(rank, in_ch, *ones)
        lora[name + ".lora_up.weight"] = (torch.randn(out_ch, rank, generator=g) / math.sqrt(rank)).reshape(out_ch, rank, *ones)
        lora[name + ".alpha"] = torch.tensor(float(alpha))
        targets[name] = key
    return lora, targets


def merge_kohya_lora(unet_sd: dict[str, torch.Tensor], lora: dict[str, torch.Tensor], targets: dict[str, str],
                     strength: float) -> dict[str, torch.Tensor]:
    """`unet_sd` with the LoRA merged at `strength`: W + strength·(alpha/rank)·up·down, the LoRA definition (the
    changed weights in float32, the others as they are)."""
    out = dict(unet_sd)
    for name, key in targets.items():
        down, up = lora[name + ".lora_down.weight"].float(), lora[name + ".lora_up.weight"].float()
        scale = float(lora[name + ".alpha"]) / down.shape[0]
        out[key] = out[key].float() + strength * scale * (up.flatten(1) @ down.flatten(1)).reshape(out[key].shape)
    return out


def clip_l(seed: int = 1) -> comfy.sd.CLIP:
    """A random-weight CLIP-L text encoder with ComfyUI's SD1.5 tokenizer."""
    target = comfy.supported_models.SD15(dict(SD15_UNET)).clip_target()
    clip = comfy.sd.CLIP(target)
    randomize(clip.cond_stage_model, seed)
    return clip


def sdxl_clip(seed: int = 5, layers: int = 3) -> comfy.sd.CLIP:
    """Core's SDXL text encoder (CLIP-L + OpenCLIP-G, SDXL's tokenizers, 2048-wide text and 1280-wide pooled output) with
    `layers` transformer layers per tower instead of 12/32 (core reads the penultimate one: at least 3) and random weights: what CLIP Text Encode makes for SDXL."""
    depth = {"num_hidden_layers": layers}
    target = comfy.supported_models.SDXL(dict(TINY_SDXL_UNET)).clip_target()
    clip = comfy.sd.CLIP(target, model_options={"clip_l_model_config": depth, "clip_g_model_config": depth})
    randomize(clip.cond_stage_model, seed)
    return clip


def write_clip_l(path: str, seed: int = 1) -> None:
    """CLIP-L in the standalone layout CLIPLoader (type stable_diffusion) reads."""
    sd = clip_l(seed).get_sd()
    sd = {k[len("clip_l.transformer."):]: v.contiguous() for k, v in sd.items() if k.startswith("clip_l.transformer.")}
    _save(sd, path)


def write_clip_g(path: str, seed: int = 6) -> None:
    """OpenCLIP-G at full size (32 layers, 1280 wide: core recognises the tower by its 31st layer and reads a fixed
    config, so it cannot be reduced) with random weights, in the standalone layout DualCLIPLoader (type sdxl) reads
    beside a CLIP-L file; 1.4 GB in fp16."""
    tower = randomize(comfy.sdxl_clip.SDXLClipG(device="cpu", dtype=torch.float32), seed)
    _save({k[len("transformer."):]: v.contiguous() for k, v in tower.state_dict().items() if k.startswith("transformer.")}, path, torch.float16)


def vae_state_dict(seed: int = 2) -> dict[str, torch.Tensor]:
    """The SD VAE (AutoencoderKL, 4-channel latents) with random weights."""
    vae = AutoencoderKL(ddconfig=dict(SD_VAE), embed_dim=4)
    return {k: v.contiguous() for k, v in randomize(vae, seed, gain=0.5).state_dict().items()}


def write_vae(path: str, seed: int = 2) -> None:
    """SD VAE in the layout VAELoader reads."""
    _save(vae_state_dict(seed), path)


def write_controlnet(path: str, seed: int = 3) -> None:
    """An SD1.5 ControlNet (ldm layout: input_hint_block, zero_convs, middle_block_out) with random weights."""
    cfg = {k: v for k, v in SD15_UNET.items() if k not in ("out_channels",)}
    cfg.update(hint_channels=3, num_heads=8, num_head_channels=-1, operations=comfy.ops.disable_weight_init, device="cpu", dtype=torch.float32)
    net = comfy.cldm.cldm.ControlNet(**cfg)
    _save({k: v.contiguous() for k, v in randomize(net, seed).state_dict().items()}, path, torch.float16)


def write_sd15_checkpoint(path: str, seed: int = 4) -> None:
    """A full random SD1.5 checkpoint (UNet + CLIP-L + VAE) that CheckpointLoaderSimple loads."""
    cfg = comfy.supported_models.SD15(dict(SD15_UNET))
    model = cfg.get_model({})
    randomize(model.diffusion_model, seed)
    sd = model.state_dict_for_saving(clip_l().get_sd(), vae_state_dict(), None)
    _save({k: v.contiguous() for k, v in sd.items()}, path, torch.float16)


def _save(sd: dict[str, torch.Tensor], path: str, dtype: torch.dtype | None = None) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if dtype is not None:
        sd = {k: v.to(dtype) if v.is_floating_point() else v for k, v in sd.items()}
    tmp = path + ".partial"
    save_file(sd, tmp)
    os.replace(tmp, path)
