"""Nodes: One-Step Sampler → SAMPLER and One-Step Sigmas → SIGMAS, for core SamplerCustom(Advanced)."""
from __future__ import annotations

import comfy.samplers
from comfy_api.latest import io

from onestep.sampling import sample_onestep
from .generate import onestep_sigmas
from .constants import CATEGORY


class OneStepSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="OneStepSampler", display_name="One-Step Sampler", category=CATEGORY,
            description="A SAMPLER that makes one model call at the first sigma and returns its x0 (needs two sigmas [σ, 0]).",
            inputs=[],
            outputs=[io.Sampler.Output(tooltip="Connect to SamplerCustom / SamplerCustomAdvanced.")],
        )

    @classmethod
    def execute(cls) -> io.NodeOutput:
        return io.NodeOutput(comfy.samplers.KSAMPLER(sample_onestep))


class OneStepSigmas(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="OneStepSigmas", display_name="One-Step Sigmas", category=CATEGORY,
            description="The two sigmas [σ_t, 0] of a one-step generator's single call, read from its metadata.",
            inputs=[
                io.Model.Input("model", tooltip="The generator (or any MODEL: then σ_max, t=999)."),
                io.Float.Input("denoise", default=1.0, min=0.01, max=1.0, step=0.01, tooltip="Below 1: start from timestep × denoise (img2img)."),
            ],
            outputs=[io.Sigmas.Output(tooltip="Sigmas for SamplerCustom with the One-Step Sampler (or euler).")],
        )

    @classmethod
    def execute(cls, model, denoise: float) -> io.NodeOutput:
        return io.NodeOutput(onestep_sigmas(model, denoise))


NODES = [OneStepSampler, OneStepSigmas]
