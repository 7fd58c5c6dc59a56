"""diffusers' UNet2DConditionModel as the engine's TrainableUNet, the discriminator's UNetEncoder and SiD-LSG's
CopyableUNet (the headless CLI path; SD1.x/2.x/XL layouts).

The encoder pass repeats UNet2DConditionModel.forward up to the middle block (time embedding, SDXL's
text-time embedding, conv_in, down blocks, mid block) and returns the feature map of every level; the decoder pass
goes on through the up blocks with the skips and returns each up block's output.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from .core import LATENT_SPACES, unet_keys
from .unet_interface import ModelInfo, copy_module, copy_without, default_lora_targets


class DiffusersUNet(nn.Module):
    """A diffusers UNet2DConditionModel behind the engine's TrainableUNet and the discriminator's UNetEncoder."""

    def __init__(self, unet: nn.Module, latent_scale: float = LATENT_SPACES["sd15"].scale, latent_shift: float = 0.0):
        super().__init__()
        self.unet = unet
        cfg = unet.config
        pooled = None
        if cfg.addition_embed_type == "text_time":
            pooled = cfg.projection_class_embeddings_input_dim - 6 * cfg.addition_time_embed_dim
        self.info = ModelInfo(
            latent_channels=cfg.in_channels, context_dim=cfg.cross_attention_dim, pooled_dim=pooled,
            latent_scale=latent_scale, latent_shift=latent_shift, spatial_multiple=2 ** (len(cfg.block_out_channels) - 1),
        )

    def _added(self, x: torch.Tensor, pooled: torch.Tensor | None, size: torch.Tensor | None = None) -> dict:
        if self.info.pooled_dim is None:
            return {}
        if pooled is None:
            raise ValueError("this UNet (SDXL layout) needs the pooled text embedding: pass pooled=")
        if size is not None:  # [B, 6]: original (h, w), crop top-left (h, w), target (h, w), diffusers' time_ids order
            return {"text_embeds": pooled, "time_ids": size.to(x.device, x.dtype)}
        h, w = x.shape[-2] * 8, x.shape[-1] * 8  # default size conditioning: original = target size, no crop
        ids = torch.tensor([h, w, 0, 0, h, w], device=x.device, dtype=x.dtype).expand(x.shape[0], 6)
        return {"text_embeds": pooled, "time_ids": ids}

    def forward(self, x_in: torch.Tensor, t: torch.Tensor, context: torch.Tensor, pooled: torch.Tensor | None = None,
                size: torch.Tensor | None = None) -> torch.Tensor:
        """The raw UNet output."""
        return self.unet(x_in, t, encoder_hidden_states=context, added_cond_kwargs=self._added(x_in, pooled, size), return_dict=False)[0]

    def _encode(self, x_in: torch.Tensor, t: torch.Tensor, context: torch.Tensor, input_residual: torch.Tensor | None,
                pooled: torch.Tensor | None, size: torch.Tensor | None):
        """The pass up to and through the middle block: (its output, the embedding, the skips, each level's output)."""
        u = self.unet
        emb = u.time_embedding(u.get_time_embed(sample=x_in, timestep=t))
        aug = u.get_aug_embed(emb=emb, encoder_hidden_states=context, added_cond_kwargs=self._added(x_in, pooled, size))
        emb = emb + aug if aug is not None else emb
        if u.time_embed_act is not None:
            emb = u.time_embed_act(emb)
        h = u.conv_in(x_in)
        if input_residual is not None:
            h = h + input_residual.to(h.dtype)
        skips, feats = [h], []
        for block in u.down_blocks:
            if getattr(block, "has_cross_attention", False):
                h, res = block(hidden_states=h, temb=emb, encoder_hidden_states=context)
            else:
                h, res = block(hidden_states=h, temb=emb)
            skips.extend(res)
            feats.append(h)
        if getattr(u.mid_block, "has_cross_attention", False):
            h = u.mid_block(h, emb, encoder_hidden_states=context)
        else:
            h = u.mid_block(h, emb)
        feats.append(h)
        return h, emb, skips, feats

    def encoder_features(
        self, x_in: torch.Tensor, t: torch.Tensor, context: torch.Tensor, input_residual: torch.Tensor | None = None,
        pooled: torch.Tensor | None = None, size: torch.Tensor | None = None,
    ) -> list[torch.Tensor]:
        """Feature maps after each down block and after the middle block."""
        return self._encode(x_in, t, context, input_residual, pooled, size)[3]

    def decoder_features(
        self, x_in: torch.Tensor, t: torch.Tensor, context: torch.Tensor, input_residual: torch.Tensor | None = None,
        pooled: torch.Tensor | None = None, size: torch.Tensor | None = None,
    ) -> list[torch.Tensor]:
        """Feature maps after each up block (coarsest first), the skips taken as UNet2DConditionModel.forward takes them."""
        u = self.unet
        h, emb, skips, _ = self._encode(x_in, t, context, input_residual, pooled, size)
        feats = []
        for i, block in enumerate(u.up_blocks):
            n = len(block.resnets)
            res, skips = tuple(skips[-n:]), skips[:-n]
            up_size = skips[-1].shape[2:] if i < len(u.up_blocks) - 1 else None
            if getattr(block, "has_cross_attention", False):
                h = block(hidden_states=h, temb=emb, res_hidden_states_tuple=res, encoder_hidden_states=context, upsample_size=up_size)
            else:
                h = block(hidden_states=h, temb=emb, res_hidden_states_tuple=res, upsample_size=up_size)
            feats.append(h)
        return feats

    def encoder_copy(self, share_weights: bool = False) -> DiffusersUNet:
        """A deep copy without the decoder (up blocks, output norm and conv); share_weights: on this UNet's tensors."""
        enc = copy_without(self.unet, ("up_blocks", "conv_norm_out", "conv_act", "conv_out"), share_weights)
        return DiffusersUNet(enc, self.info.latent_scale, self.info.latent_shift)

    def decoder_copy(self, share_weights: bool = False) -> DiffusersUNet:
        """A deep copy without the output layers (norm, conv), which decoder_features never reaches: D's decoder
        readouts train no parameter without a gradient."""
        body = copy_without(self.unet, ("conv_norm_out", "conv_act", "conv_out"), share_weights)
        return DiffusersUNet(body, self.info.latent_scale, self.info.latent_shift)

    def full_copy(self, share_weights: bool = False) -> DiffusersUNet:
        """A deep copy of the whole UNet (SiD-LSG's fake score ψ and teacher φ); share_weights: on this UNet's tensors."""
        return DiffusersUNet(copy_module(self.unet, share_weights), self.info.latent_scale, self.info.latent_shift)

    @property
    def output_conv(self) -> nn.Module:
        """The last layer (kept in float32 under autocast: onestep/precision.py)."""
        return self.unet.conv_out

    @property
    def input_features(self) -> int:
        """Channels after conv_in."""
        return self.unet.conv_in.out_channels

    @property
    def feature_channels(self) -> list[int]:
        """Channels of each encoder_features map."""
        cfg = self.unet.config
        return [*cfg.block_out_channels, cfg.block_out_channels[-1]]

    @property
    def decoder_channels(self) -> list[int]:
        """Channels of each decoder_features map."""
        return list(reversed(self.unet.config.block_out_channels))

    def blocks(self) -> list[nn.Module]:
        """The down, middle and up blocks (an encoder copy has no up blocks): what TrainConfig.compile_blocks compiles."""
        u = self.unet
        return [*u.down_blocks, u.mid_block, *(u.up_blocks or [])]

    def set_gradient_checkpointing(self, enabled: bool) -> None:
        """diffusers' own per-block checkpointing."""
        if enabled:
            self.unet.enable_gradient_checkpointing()
        else:
            self.unet.disable_gradient_checkpointing()

    def lora_targets(self) -> list[str]:
        """Attention projections and feed-forward linears (names relative to this adapter)."""
        return default_lora_targets(self)

    def export_state_dict(self, sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Adapter state dict → ldm layout ('unet.' prefix dropped, diffusers → ldm names)."""
        inner = {k[len("unet."):]: v for k, v in sd.items() if k.startswith("unet.")}
        return unet_keys.diffusers_to_ldm(inner)
