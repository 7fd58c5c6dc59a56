"""Nodes: One-Step Sampler → SAMPLER and One-Step Sigmas → SIGMAS, for core SamplerCustom(Advanced)."""
from __future__ import annotations

import comfy.samplers

from onestep.sampling import sample_onestep
from .generate import onestep_sigmas
from .constants import CATEGORY


class OneStepSampler:
    DESCRIPTION = "A SAMPLER that makes one model call at the first sigma and returns its x0 (needs two sigmas [σ, 0])."
    CATEGORY = CATEGORY
    RETURN_TYPES = ("SAMPLER",)
    OUTPUT_TOOLTIPS = ("Connect to SamplerCustom / SamplerCustomAdvanced.",)
    FUNCTION = "get_sampler"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}

    def get_sampler(self):
        return (comfy.samplers.KSAMPLER(sample_onestep),)


class OneStepSigmas:
    DESCRIPTION = "The two sigmas [σ_t, 0] of a one-step generator's single call, read from its metadata."
    CATEGORY = CATEGORY
    RETURN_TYPES = ("SIGMAS",)
    OUTPUT_TOOLTIPS = ("Sigmas for SamplerCustom with the One-Step Sampler (or euler).",)
    FUNCTION = "get_sigmas"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("MODEL", {"tooltip": "The generator (or any MODEL: then σ_max, t=999)."}),
                "denoise": ("FLOAT", {"default": 1.0, "min": 0.01, "max": 1.0, "step": 0.01, "tooltip": "Below 1: start from timestep × denoise (img2img)."}),
            }
        }

    def get_sigmas(self, model, denoise):
        return (onestep_sigmas(model, denoise),)


NODE_CLASS_MAPPINGS = {"OneStepSampler": OneStepSampler, "OneStepSigmas": OneStepSigmas}
NODE_DISPLAY_NAME_MAPPINGS = {"OneStepSampler": "One-Step Sampler", "OneStepSigmas": "One-Step Sigmas"}
