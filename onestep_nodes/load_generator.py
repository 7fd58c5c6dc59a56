"""Node: Load One-Step Generator → MODEL."""
from __future__ import annotations

import folder_paths
from comfy_api.latest import io

from . import model_folder
from .constants import CATEGORY, check_choices
from .generator_model import load_generator_model


class OneStepLoadGenerator(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="OneStepLoadGenerator", display_name="Load One-Step Generator", category=CATEGORY,
            description="Loads a one-step generator (.safetensors from models/onestep) as a MODEL whose sampling follows its metadata.",
            inputs=[io.Combo.Input("generator", options=model_folder.generator_files(), tooltip="A generator file in models/onestep.")],
            outputs=[io.Model.Output(tooltip="The generator as a MODEL: use it with One-Step Generate, core LoRA loaders and ControlNet.")],
        )

    @classmethod
    def validate_inputs(cls, generator=None) -> bool | str:
        return check_choices(cls, generator=generator)

    @classmethod
    def fingerprint_inputs(cls, generator=None) -> str:
        return model_folder.file_fingerprint(model_folder.FOLDER, generator)

    @classmethod
    def execute(cls, generator: str) -> io.NodeOutput:
        return io.NodeOutput(load_generator_model(folder_paths.get_full_path_or_raise(model_folder.FOLDER, generator)))


NODES = [OneStepLoadGenerator]
