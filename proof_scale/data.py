"""Fashion-MNIST (Xiao et al. 2017) in the benchmark's latent space, and the ten class prompts.

The "VAE" is the identity: a 28×28 uint8 image is padded to 32×32 with its background value (0, black) and
scaled to [−1, 1], so a latent is [1, 32, 32] with background −1. `to_images` is the exact inverse.
"""
from __future__ import annotations

import torch

from onestep.latent_lpips.datasets import FASHION_MNIST_CLASSES, FASHION_MNIST_DIR, fashion_mnist

SIZE = 32  # latent height and width
PAD = 2  # pixels of background added on each side (28 + 2·2 = 32)
BACKGROUND = 0  # uint8 background of Fashion-MNIST (black)
PROMPTS: tuple[str, ...] = FASHION_MNIST_CLASSES  # Fashion-MNIST's class i's prompt is its name; the empty prompt is ""
NUM_CLASSES = len(PROMPTS)  # Fashion-MNIST's; other data sets bring their own count (num_classes)


def num_classes(labels: torch.Tensor) -> int:
    """Classes of a labelled set (labels 0..K−1)."""
    return int(labels.max()) + 1


def empty_row(table: torch.Tensor) -> int:
    """The context table's row of the empty prompt (CFG's unconditional branch): the last, after one row per class."""
    return int(table.shape[0]) - 1


def prompt_names(classes: int, names: list[str] | None = None) -> list[str]:
    """The class prompts of a data set: `names` when given (the prompts a context table was encoded from, recorded in
    its file), else neutral "class i" (any distinct texts condition a teacher trained on them)."""
    if names is not None:
        if len(names) != classes:
            raise ValueError(f"{len(names)} prompt names for {classes} classes")
        return list(names)
    return [f"class {i}" for i in range(classes)]


def to_latents(images: torch.Tensor) -> torch.Tensor:
    """uint8 [N, 28, 28] → float [N, 1, 32, 32] in [−1, 1], padded with the background."""
    x = torch.nn.functional.pad(images.unsqueeze(1), (PAD, PAD, PAD, PAD), value=BACKGROUND)
    return x.float().div(127.5).sub(1.0)


def to_images(latents: torch.Tensor) -> torch.Tensor:
    """float [N, 1, 32, 32] → uint8 [N, 28, 28]: crop the padding, clamp to [−1, 1], round."""
    x = latents[:, 0, PAD:SIZE - PAD, PAD:SIZE - PAD].float()
    return x.clamp(-1.0, 1.0).add(1.0).mul(127.5).round().to(torch.uint8)


def load_split(split: str = "train", limit: int | None = None, root: str = FASHION_MNIST_DIR) -> tuple[torch.Tensor, torch.Tensor]:
    """(latents [N, 1, 32, 32] in [−1, 1], labels int64 [N]) of the train or test split (first `limit` items)."""
    images, labels = fashion_mnist(split, root)
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return to_latents(images), labels
