"""Node: Import One-Step Generator — writes the pack's format from a released model into models/onestep."""
from __future__ import annotations

import os

from comfy_api.latest import io

from onestep.importers import IMPORTERS
from . import model_folder
from .constants import CATEGORY, check_choices


class OneStepImportGenerator(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="OneStepImportGenerator", display_name="Import One-Step Generator", category=CATEGORY, is_output_node=True,
            description=("Converts a released one-step model (InstaFlow/2-RF diffusers folder, DMD2 UNet state dict, SiD-LSG pickle) "
                         "into a generator file in models/onestep."),
            inputs=[
                io.Combo.Input("kind", options=sorted(IMPORTERS), tooltip="instaflow: diffusers pipeline folder; dmd2: UNet state dict; sid-lsg: pickle."),
                io.String.Input("source", default="diffusers/instaflow_0_9B", tooltip="Path relative to ComfyUI's models folder."),
                io.String.Input("name", default="imported", tooltip="Output file name in models/onestep (.safetensors is added)."),
                io.Combo.Input("base", options=["auto", "sd15", "sd21", "sdxl"], tooltip="Base architecture; auto reads it off the weights."),
                io.Float.Input("guidance", default=-1.0, min=-1.0, max=100.0, step=0.05, tooltip="CFG baked into the model, for the record (-1: unknown)."),
                io.Boolean.Input("allow_pickle", default=False, tooltip="sid-lsg only: read the pickle with the restricted unpickler. Enable only for files you trust."),
                io.Boolean.Input("overwrite", default=False, tooltip="Replace an existing generator of that name."),
            ],
            outputs=[io.String.Output(display_name="generator", tooltip="File name of the new generator, as Load One-Step Generator lists it.")],
        )

    @classmethod
    def validate_inputs(cls, kind=None, base=None) -> bool | str:
        return check_choices(cls, kind=kind, base=base)

    @classmethod
    def execute(cls, kind: str, source: str, name: str, base: str, guidance: float, allow_pickle: bool, overwrite: bool) -> io.NodeOutput:
        src = model_folder.resolve_source(source)
        dest = model_folder.output_path(name, overwrite)
        IMPORTERS[kind](src, dest, base=base, guidance=None if guidance < 0 else guidance, allow_pickle=allow_pickle)
        written = os.path.basename(dest)
        return io.NodeOutput(written, ui={"text": [written]})


NODES = [OneStepImportGenerator]
