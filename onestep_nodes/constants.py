"""What the node modules share, with no host imports: one node module that cannot import (a renamed core internal
in a future ComfyUI) takes only its own nodes down, never the category names the others need."""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

CATEGORY = "Diffusion2GAN/one-step"  # generation, loading, the latent diff
TRAINING_CATEGORY = "Diffusion2GAN/distillation"  # pair collection and training


def to_pil(image: torch.Tensor) -> Image.Image:
    """The first image of a ComfyUI IMAGE batch ([B, H, W, 3] in [0, 1]) as a PIL image (previews)."""
    return Image.fromarray((image[0].clamp(0, 1).numpy() * 255).astype(np.uint8))


def check_choices(node, **values) -> bool | str:
    """A V3 node's `validate_inputs` for its combo inputs: True, or a message naming the input, the value and the choices.

    ComfyUI 0.3.75 checks a V1 combo's value against its list at validation, but not a V3 combo's (0.8 checks both), so
    each node names its combos in `validate_inputs` and calls this: a value not on the list is refused before the prompt
    runs, on every host. A linked input is None while the prompt is validated and is not checked."""
    options = {i.id: i.options for i in node.define_schema().inputs if getattr(i, "options", None) is not None}
    for name, value in values.items():
        choices = options[name]
        if value is not None and value not in choices:
            shown = ", ".join(map(str, choices[:20])) + (f", … ({len(choices)} in all)" if len(choices) > 20 else "")
            return f"{name} {value!r} is not one of the choices ({shown or 'none: the list is empty'})"
    return True
