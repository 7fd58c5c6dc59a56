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
