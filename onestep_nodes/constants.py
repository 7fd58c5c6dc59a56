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
