"""The latent spaces the pack knows, in one table: what generator files and pair datasets name, the scale and shift
that take a VAE latent into the space the UNet denoises (the same numbers as ComfyUI's latent formats), and which
E-LatentLPIPS weights were made for it. The training CLI, the E-LatentLPIPS encoders and the ComfyUI nodes read it."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LatentSpace:
    name: str  # as generator files write it (metadata onestep.latent_format)
    comfy_format: str  # ComfyUI's latent format class name, as pair datasets record it
    channels: int
    scale: float  # UNet space = (VAE latent − shift) · scale: ComfyUI's LatentFormat.scale_factor / shift_factor
    shift: float = 0.0
    encoders: tuple[str, ...] | None = None  # E-LatentLPIPS weights made for these latents; None: not checked


LATENT_SPACES: dict[str, LatentSpace] = {s.name: s for s in (
    LatentSpace("sd15", "SD15", 4, 0.18215, encoders=("sd15", "sd21")),  # SD1.x and SD2.x share the VAE
    LatentSpace("sdxl", "SDXL", 4, 0.13025, encoders=("sdxl",)),
    LatentSpace("sd3", "SD3", 16, 1.5305, 0.0609, encoders=("sd3",)),
    LatentSpace("flux", "Flux", 16, 0.3611, 0.1159, encoders=("flux",)),
    # The proof-scale benchmark's identity space: 1×32×32 images in [−1, 1] (onestep_nodes/generator_model.py).
    LatentSpace("fmnist32", "FashionMNIST32", 1, 1.0),
)}


def latent_space(name: str) -> LatentSpace:
    """The space called `name` in a generator file (sd15) or by ComfyUI (SD15), as pair datasets record it."""
    for space in LATENT_SPACES.values():
        if name.lower() in (space.name, space.comfy_format.lower()):
            return space
    known = ", ".join(f"{s.name}/{s.comfy_format}" for s in LATENT_SPACES.values())
    raise ValueError(f"unknown latent space {name!r}; known: {known}")
