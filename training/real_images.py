"""Real images for the discriminator's real side (DiscriminatorConfig.real_images): a file of VAE latents and the prompt
index of each, drawn per item to match the prompt of the fake it stands beside.

The paper's D calls the teacher's outputs real, so a student can at best become its teacher's samples (and inherit
their offset from the data). With real images on D's real side (as DMD2 and SiDA do) the GAN pulls G towards the data
while the regression keeps it on the teacher's pairs. Each fake's real partner has the fake's own prompt (drawn
uniformly among the images of that prompt index), so real and fake sides carry the same prompts and D cannot learn
the prompts' frequencies instead of the images.

File: a labelled-latents file (onestep/latent_lpips/datasets.py: "latents" [N, C, H, W] in VAE units, "labels" [N]),
its labels the prompt indices of the pairs dataset's prompt table (cond.{j}) — for class prompts, the classes; written by
`save_labelled`.
"""
from __future__ import annotations

import re

import torch

from onestep.latent_lpips.datasets import load_labelled

from .host_to_device import to_device
from .unet_interface import ModelInfo


class RealImages:
    """The images in the UNet's x0 space on one device, grouped by prompt index."""

    def __init__(self, latent: torch.Tensor, prompt_index: torch.Tensor, info: ModelInfo, device: torch.device | str):
        if latent.ndim != 4 or latent.shape[1] != info.latent_channels:
            raise ValueError(f"real images: latents of shape {tuple(latent.shape)} do not fit a UNet with {info.latent_channels} latent channels")
        if prompt_index.shape != (latent.shape[0],) or len(prompt_index) == 0:
            raise ValueError(f"real images: need one prompt index per latent, got {tuple(prompt_index.shape)} for {latent.shape[0]} latents")
        order = torch.argsort(prompt_index.long(), stable=True)
        prompts = prompt_index.long()[order]
        self.counts = torch.bincount(prompts, minlength=int(prompts.max()) + 1)  # images per prompt index (CPU)
        self.offsets = torch.cumsum(self.counts, 0) - self.counts  # first image of each prompt index in `x0`
        self.x0 = info.to_unet_space(to_device(latent[order], device, torch.float32))

    @classmethod
    def load(cls, path: str, info: ModelInfo, device: torch.device | str) -> RealImages:
        """A labelled-latents file's images, its labels read as prompt indices."""
        latents, labels = load_labelled(path)
        return cls(latents, labels, info, device)

    def __len__(self) -> int:
        return int(self.x0.shape[0])

    def draw(self, prompt_index: torch.Tensor | None, generator: torch.Generator) -> torch.Tensor:
        """One real image per item [B, C, H, W] (x0 space), each of its item's prompt index; raises ValueError naming
        a prompt index that has no image."""
        if prompt_index is None:
            raise ValueError("real images are drawn by prompt: the pairs' items need their prompt index")
        wanted = prompt_index.detach().long().cpu()
        known = (wanted >= 0) & (wanted < len(self.counts))
        have = torch.zeros_like(wanted)
        have[known] = self.counts[wanted[known]]
        if bool((have == 0).any()):
            missing = sorted(set(wanted[have == 0].tolist()))
            raise ValueError(f"the real images have none for prompt index(es) {missing}: every prompt of the pairs needs real images")
        u = torch.rand(wanted.shape, generator=generator, dtype=torch.float64)
        pick = self.offsets[wanted] + (u * have).long().clamp(max=have - 1)
        return self.x0.index_select(0, to_device(pick, self.x0.device))


def prompt_indices(text: str, count: int) -> torch.Tensor:
    """The prompt index of each of `count` images from a user's text: one index for all of them, or one per image
    separated by commas or spaces (the Train Diffusion2GAN node's real_image_prompts)."""
    parts = [p for p in re.split(r"[\s,]+", text.strip()) if p]
    if not parts or not all(p.isascii() and p.isdigit() for p in parts):
        raise ValueError(f"real_image_prompts must be prompt indices (0 = the pairs' first prompt) separated by commas or spaces, not {text!r}")
    if len(parts) not in (1, count):
        raise ValueError(f"real_image_prompts gives {len(parts)} prompt indices for {count} real images: give one for all of them or one per image")
    values = torch.tensor([int(p) for p in parts], dtype=torch.long)
    return values.expand(count).clone() if len(parts) == 1 else values


def check_real_images(latent: torch.Tensor, prompt_index: torch.Tensor, prompts: list[str], latent_shape: tuple[int, ...]) -> None:
    """Refuse, by name, real images that cannot stand beside the pairs: another latent size, a prompt index past the
    pairs' prompts, or a prompt of the pairs without an image (D draws each fake's real partner from its prompt's)."""
    if latent.ndim != 4 or tuple(latent.shape[1:]) != tuple(latent_shape):
        c, h, w = latent_shape
        raise ValueError(f"real images: latents {tuple(latent.shape[1:])} but the pairs are {tuple(latent_shape)} "
                         f"({w * 8}×{h * 8} images with {c} latent channels): VAE Encode images of the pairs' size")
    past = sorted({int(i) for i in prompt_index if int(i) >= len(prompts)})
    if past:
        raise ValueError(f"real images: prompt index(es) {past} but the pairs have {len(prompts)} prompt(s) (0 to {len(prompts) - 1})")
    missing = sorted(set(range(len(prompts))) - {int(i) for i in prompt_index})
    if missing:
        named = ", ".join(f"{j} ({prompts[j][:40]!r})" for j in missing[:5]) + (" …" if len(missing) > 5 else "")
        raise ValueError(f"real images: none for prompt(s) {named}; every prompt of the pairs needs at least one real image")
