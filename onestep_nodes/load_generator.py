"""Node: Load One-Step Generator → MODEL."""
from __future__ import annotations

import folder_paths

from . import model_folder
from .constants import CATEGORY
from .generator_model import load_generator_model


class OneStepLoadGenerator:
    DESCRIPTION = "Loads a one-step generator (.safetensors from models/onestep) as a MODEL whose sampling follows its metadata."
    CATEGORY = CATEGORY
    RETURN_TYPES = ("MODEL",)
    OUTPUT_TOOLTIPS = ("The generator as a MODEL: use it with One-Step Generate, core LoRA loaders and ControlNet.",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"generator": (model_folder.generator_files(), {"tooltip": "A generator file in models/onestep."})}}

    def load(self, generator):
        return (load_generator_model(folder_paths.get_full_path_or_raise(model_folder.FOLDER, generator)),)


NODE_CLASS_MAPPINGS = {"OneStepLoadGenerator": OneStepLoadGenerator}
NODE_DISPLAY_NAME_MAPPINGS = {"OneStepLoadGenerator": "Load One-Step Generator"}
