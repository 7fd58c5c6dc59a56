"""ComfyUI's ldm UNetModel behind the engine's TrainableUNet interface (training/unet_interface.py),
Diffusion2GAN's UNetEncoder (training/discriminator.py) and SiD-LSG's CopyableUNet (training/methods/sid_lsg.py).

The forward pass walks the same blocks UNetModel._forward walks (time embedding, input blocks with skips,
middle block, output blocks, out) minus ControlNet and model patches, which training does not use, so each
block can be checkpointed. The encoder pass stops after the middle block and returns the output of every
resolution level, the decoder pass goes on and returns every decoder level's, as the Diffusion2GAN discriminator
reads them (Kang et al. 2024, Sec. 4.2)."""
from __future__ import annotations

import copy
from collections.abc import Mapping

import torch
from comfy.ldm.modules.diffusionmodules.openaimodel import Downsample, forward_timestep_embed
from comfy.ldm.modules.diffusionmodules.util import timestep_embedding
from torch import nn
from torch.utils.checkpoint import checkpoint

from onestep.pairs.manifest import SIZE_KEYS
from training.unet_interface import ModelInfo, copy_module, copy_without, default_lora_targets


def normal_tensors(module: nn.Module) -> nn.Module:
    """Replace inference-mode tensors (ComfyUI loads models under torch.inference_mode) by normal ones autograd can
    use; call outside inference mode."""
    with torch.inference_mode(False):
        for m in module.modules():
            for name, p in list(m._parameters.items()):
                if p is not None:
                    m._parameters[name] = nn.Parameter(p.detach().clone(), requires_grad=p.requires_grad)
            for name, b in list(m._buffers.items()):
                if b is not None:
                    m._buffers[name] = b.clone()
    return module


class ComfyUNet(nn.Module):
    """An ldm UNetModel (a copy of a MODEL's diffusion_model) as a trainable UNet."""

    def __init__(self, unet: nn.Module, info: ModelInfo, encode_adm=None):
        super().__init__()
        self.unet, self.info = unet, info
        self._encode_adm = encode_adm  # BaseModel.encode_adm for models with pooled/size conditioning (SDXL)
        self.checkpointing = False

    @classmethod
    def from_model(cls, patcher, dtype: torch.dtype = torch.float32, device: torch.device | None = None) -> ComfyUNet:
        """A trainable copy of a MODEL's UNet (its LoRA/weight patches applied), in `dtype` on `device`."""
        import comfy.model_management as mm

        mm.load_models_gpu([patcher], force_full_load=True)  # patches are applied to the weights on load
        base = patcher.model
        unet = normal_tensors(copy.deepcopy(base.diffusion_model)).to(device=device or mm.get_torch_device(), dtype=dtype)
        cfg = base.model_config.unet_config
        fmt = base.latent_format
        levels = len(cfg.get("channel_mult", (1, 2, 4, 4)))
        adm = cfg.get("adm_in_channels")
        info = ModelInfo(
            latent_channels=fmt.latent_channels, context_dim=cfg.get("context_dim"),
            pooled_dim=1280 if adm else None, latent_scale=float(fmt.scale_factor), latent_shift=float(getattr(fmt, "shift_factor", None) or 0.0),
            spatial_multiple=2 ** (levels - 1),
        )
        return cls(unet, info, base.encode_adm if adm else None)

    def _emb(self, x: torch.Tensor, t: torch.Tensor, pooled: torch.Tensor | None, size: torch.Tensor | None = None) -> torch.Tensor:
        u = self.unet
        emb = u.time_embed(timestep_embedding(t, u.model_channels, repeat_only=False).to(x.dtype))
        if u.num_classes is not None:
            if pooled is None:
                raise ValueError("this UNet (SDXL family) needs the pooled text embedding")
            emb = emb + u.label_emb(self._adm(x, pooled, size).to(x.device, x.dtype))
        return emb

    def _adm(self, x: torch.Tensor, pooled: torch.Tensor, size: torch.Tensor | None) -> torch.Tensor:
        """The label input y as core makes it (model_base.SDXL.encode_adm): the pooled text and the size/crop
        conditioning, per item [B, 6] (SIZE_KEYS order) or, without it, core's default for a conditioning with no size
        keys (comfy.samplers.encode_model_conds): original = target = the image size, no crop."""
        h, w = x.shape[-2] * 8, x.shape[-1] * 8
        if size is None:
            return self._encode_adm(pooled_output=pooled, width=w, height=h, target_width=w, target_height=h)
        if size.shape != (pooled.shape[0], len(SIZE_KEYS)):
            raise ValueError(f"size conditioning {tuple(size.shape)} must be [batch {pooled.shape[0]}, {len(SIZE_KEYS)}]")
        rows = [tuple(int(v) for v in row) for row in size.round().tolist()]
        parts, start = [], 0
        for end in range(1, len(rows) + 1):  # one call per run of equal rows (encode_adm takes one size for its batch)
            if end == len(rows) or rows[end] != rows[start]:
                parts.append(self._encode_adm(pooled_output=pooled[start:end], **dict(zip(SIZE_KEYS, rows[start]))))
                start = end
        return torch.cat(parts)

    def _block(self, module: nn.Module, h: torch.Tensor, emb: torch.Tensor, context: torch.Tensor, output_shape=None) -> torch.Tensor:
        def run(h, emb, context):
            return forward_timestep_embed(module, h, emb, context, {}, output_shape=output_shape)
        if self.checkpointing and torch.is_grad_enabled():
            return checkpoint(run, h, emb, context, use_reentrant=False)
        return run(h, emb, context)

    def forward(self, x_in: torch.Tensor, t: torch.Tensor, context: torch.Tensor, pooled: torch.Tensor | None = None,
                size: torch.Tensor | None = None) -> torch.Tensor:
        """The raw UNet output, as UNetModel.forward computes it (pooled, size: SDXL's label inputs, see _adm)."""
        u = self.unet
        emb = self._emb(x_in, t, pooled, size)
        h, hs = x_in, []
        for module in u.input_blocks:
            h = self._block(module, h, emb, context)
            hs.append(h)
        h = self._block(u.middle_block, h, emb, context)
        for module in u.output_blocks:
            h = torch.cat([h, hs.pop()], dim=1)
            h = self._block(module, h, emb, context, output_shape=hs[-1].shape if hs else None)
        return u.out(h)

    def _encode(self, x_in: torch.Tensor, t: torch.Tensor, context: torch.Tensor, input_residual: torch.Tensor | None,
                pooled: torch.Tensor | None, size: torch.Tensor | None):
        """The pass through the input and middle blocks: (its output, the embedding, the skips, each level's output)."""
        u = self.unet
        emb = self._emb(x_in, t, pooled, size)
        h, hs, feats = x_in, [], []
        last = len(u.input_blocks) - 1
        for i, module in enumerate(u.input_blocks):
            h = self._block(module, h, emb, context)
            if i == 0 and input_residual is not None:
                h = h + input_residual.to(h.dtype)
            hs.append(h)
            if (i > 0 and isinstance(module[0], Downsample)) or i == last:
                feats.append(h)
        h = self._block(u.middle_block, h, emb, context)
        feats.append(h)
        return h, emb, hs, feats

    def encoder_features(self, x_in: torch.Tensor, t: torch.Tensor, context: torch.Tensor, input_residual: torch.Tensor | None = None,
                         pooled: torch.Tensor | None = None, size: torch.Tensor | None = None) -> list[torch.Tensor]:
        """The output of each resolution level (after its downsample) and of the middle block."""
        return self._encode(x_in, t, context, input_residual, pooled, size)[3]

    def decoder_features(self, x_in: torch.Tensor, t: torch.Tensor, context: torch.Tensor, input_residual: torch.Tensor | None = None,
                         pooled: torch.Tensor | None = None, size: torch.Tensor | None = None) -> list[torch.Tensor]:
        """The output of each decoder resolution level (after its upsample; coarsest first), skips as UNetModel takes them."""
        h, emb, hs, _ = self._encode(x_in, t, context, input_residual, pooled, size)
        feats, blocks = [], self.unet.output_blocks
        for i, module in enumerate(blocks):
            width = h.shape[-1]
            h = torch.cat([h, hs.pop()], dim=1)
            h = self._block(module, h, emb, context, output_shape=hs[-1].shape if hs else None)
            if h.shape[-1] != width or i == len(blocks) - 1:  # a level ends where its block upsamples
                feats.append(h)
        return feats

    def encoder_copy(self, share_weights: bool = False) -> ComfyUNet:
        """A deep copy without the decoder (output blocks and out); share_weights: on this UNet's tensors."""
        return ComfyUNet(copy_without(self.unet, ("output_blocks", "out"), share_weights), self.info, self._encode_adm)

    def decoder_copy(self, share_weights: bool = False) -> ComfyUNet:
        """A deep copy without the output layers (`out`), which decoder_features never reaches: D's decoder readouts
        train no parameter without a gradient."""
        return ComfyUNet(copy_without(self.unet, ("out",), share_weights), self.info, self._encode_adm)

    def full_copy(self, share_weights: bool = False) -> ComfyUNet:
        """A deep copy of the whole UNet (SiD-LSG's fake score ψ and teacher φ); share_weights: on this UNet's tensors.
        The model's encode_adm is shared, not copied (deep-copying the bound method would copy the whole model)."""
        return ComfyUNet(copy_module(self.unet, share_weights), self.info, self._encode_adm)

    @property
    def output_conv(self) -> nn.Module:
        """The last layer (kept in float32 under autocast: onestep/precision.py)."""
        return self.unet.out[-1]

    @property
    def input_features(self) -> int:
        return self.unet.model_channels

    @property
    def feature_channels(self) -> list[int]:
        mult = [m * self.unet.model_channels for m in self.unet.channel_mult]
        return [*mult, mult[-1]]

    @property
    def decoder_channels(self) -> list[int]:
        return [m * self.unet.model_channels for m in reversed(self.unet.channel_mult)]

    def blocks(self) -> list[nn.Module]:
        """Input, middle and output blocks (an encoder copy has no output blocks): what TrainConfig.compile_blocks compiles."""
        u = self.unet
        return [*u.input_blocks, u.middle_block, *(u.output_blocks or [])]

    def set_gradient_checkpointing(self, enabled: bool) -> None:
        """Recompute each block's activations in backward."""
        self.checkpointing = enabled

    def lora_targets(self) -> list[str]:
        return default_lora_targets(self)

    def export_state_dict(self, sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Adapter state dict → ldm keys without prefix (the generator format's layout)."""
        return {k[len("unet."):]: v for k, v in sd.items() if k.startswith("unet.")}
