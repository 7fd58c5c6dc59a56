"""Node: Import One-Step Generator — writes the pack's format from a released model into models/onestep."""
from __future__ import annotations

import os

from onestep.importers import IMPORTERS
from . import model_folder
from .constants import CATEGORY


class OneStepImportGenerator:
    DESCRIPTION = (
        "Converts a released one-step model (InstaFlow/2-RF diffusers folder, DMD2 UNet state dict, SiD-LSG pickle) "
        "into a generator file in models/onestep."
    )
    CATEGORY = CATEGORY
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("generator",)
    OUTPUT_TOOLTIPS = ("File name of the new generator, as Load One-Step Generator lists it.",)
    FUNCTION = "convert"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "kind": (sorted(IMPORTERS), {"tooltip": "instaflow: diffusers pipeline folder; dmd2: UNet state dict; sid-lsg: pickle."}),
                "source": ("STRING", {"default": "diffusers/instaflow_0_9B", "tooltip": "Path relative to ComfyUI's models folder."}),
                "name": ("STRING", {"default": "imported", "tooltip": "Output file name in models/onestep (.safetensors is added)."}),
                "base": (["auto", "sd15", "sd21", "sdxl"], {"tooltip": "Base architecture; auto reads it off the weights."}),
                "guidance": ("FLOAT", {"default": -1.0, "min": -1.0, "max": 100.0, "step": 0.05, "tooltip": "CFG baked into the model, for the record (-1: unknown)."}),
                "allow_pickle": ("BOOLEAN", {"default": False, "tooltip": "sid-lsg only: read the pickle with the restricted unpickler. Enable only for files you trust."}),
                "overwrite": ("BOOLEAN", {"default": False, "tooltip": "Replace an existing generator of that name."}),
            }
        }

    def convert(self, kind, source, name, base, guidance, allow_pickle, overwrite):
        src = model_folder.resolve_source(source)
        dest = model_folder.output_path(name, overwrite)
        IMPORTERS[kind](src, dest, base=base, guidance=None if guidance < 0 else guidance, allow_pickle=allow_pickle)
        written = os.path.basename(dest)
        return {"ui": {"text": [written]}, "result": (written,)}


NODE_CLASS_MAPPINGS = {"OneStepImportGenerator": OneStepImportGenerator}
NODE_DISPLAY_NAME_MAPPINGS = {"OneStepImportGenerator": "Import One-Step Generator"}
