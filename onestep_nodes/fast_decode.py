"""Node: VAE Decode (fast) — core's VAE decode, or on a GPU the decoder replayed from a CUDA graph,
optionally compiled first (inductor fuses the decoder's many small kernels: ~3× faster at 512², batch 1,
on an H100; see docs/benchmarks.md). Falls back to core's VAE.decode whenever the fast path cannot run.

The compiled modes also run each "nearest ×2, then 3×3 convolution" of the decoder as one 2×2 convolution on the
low-resolution input (onestep/subpixel.py: the same values up to the order of the sums, 4/9 of those convolutions'
work — ~15 % of the decoder's); the plain CUDA-graph mode runs core's modules but for the GroupNorms on large maps,
whose statistics come from wide reductions (onestep/group_norm.py: torch's kernel keeps most of the GPU idle there)."""
from __future__ import annotations

import logging

import torch
from comfy_api.latest import io

from onestep.cuda_graph import GraphCache
from .fast_path import FAST_MODES, OFF, replay_key, weights_key
from .subpixel_views import current_view, vae_graph_view, vae_view
from .constants import CATEGORY, check_choices

log = logging.getLogger("onestep")
_CACHE = GraphCache(max_entries=4)
# The decoder also offers inductor's max-autotune (~3 min to compile at 512² on an H100, then ~1/3 faster than
# the default compile); for the UNet that mode took over 9 minutes, so One-Step Generate does not offer it.
DECODE_MODES = {**FAST_MODES, "max-autotune compile + cuda graph (minutes on first run)": "max-autotune-no-cudagraphs"}


def fast_decode(vae, samples: torch.Tensor, mode: str) -> torch.Tensor | None:
    """Images [B, H, W, C] in 0..1 like VAE.decode, by graph replay; None when not possible."""
    if mode == OFF or not torch.cuda.is_available() or getattr(vae.device, "type", "cpu") != "cuda" or samples.ndim != 4:
        return None
    decoder = vae.first_stage_model
    key = replay_key(vae.patcher, _CACHE, lambda: (id(decoder), weights_key(decoder), tuple(samples.shape), vae.vae_dtype, mode),
                     vae.memory_used_decode(samples.shape, vae.vae_dtype))
    if key is None:
        return None
    z = samples.to(vae.device, vae.vae_dtype)
    try:
        model = current_view(decoder, vae_view if DECODE_MODES[mode] else vae_graph_view)

        def decode(z):
            return vae.process_output(model.decode(z).float())

        with torch.inference_mode():
            out = _CACHE.run(key, decode, {"z": z}, DECODE_MODES[mode])
    except Exception as e:  # unsupported capture or compile: core's decode is always there
        log.warning("[onestep] fast VAE decode failed (%s); using core's decode", str(e).splitlines()[0])
        _CACHE.clear()
        return None
    return to_host(out, vae.output_device).movedim(1, -1)


def to_host(t: torch.Tensor, device) -> torch.Tensor:
    """t moved to `device` as core's decode moves its images; from the GPU to the CPU through page-locked memory, which
    copies at the bus's speed (a pageable copy is staged through a driver buffer: ~2× slower for a decoded batch)."""
    if not (t.is_cuda and torch.device(device).type == "cpu"):
        return t.to(device)
    host = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
    host.copy_(t, non_blocking=True)
    torch.cuda.current_stream(t.device).synchronize()  # the images are complete before anyone reads them
    return host


class OneStepVAEDecode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="OneStepVAEDecode", display_name="VAE Decode (fast)", category=CATEGORY,
            description="VAE Decode with a GPU fast path (CUDA graph, optionally torch.compile); identical to core's VAE Decode otherwise.",
            inputs=[
                io.Latent.Input("samples", tooltip="Latents to decode."),
                io.Vae.Input("vae", tooltip="The VAE of the generator's base."),
                io.Combo.Input("fast", options=[*DECODE_MODES, OFF], default="cuda graph", tooltip=(
                    "GPU fast path; the compiled modes spend a minute (default) or minutes (max-autotune) on their first run per image size.")),
            ],
            outputs=[io.Image.Output(tooltip="The decoded images.")],
        )

    @classmethod
    def validate_inputs(cls, fast=None) -> bool | str:
        return check_choices(cls, fast=fast)

    @classmethod
    def execute(cls, samples, vae, fast: str) -> io.NodeOutput:
        images = fast_decode(vae, samples["samples"], fast)
        if images is None:
            images = vae.decode(samples["samples"])
        if images.ndim == 5:  # video VAEs: fold frames into the batch, as core's VAE Decode does
            images = images.reshape(-1, *images.shape[-3:])
        return io.NodeOutput(images)


NODES = [OneStepVAEDecode]
