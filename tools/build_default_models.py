"""The pack's embedded default models, built locally (nothing is downloaded).

Until the proof-scale teacher and student exist (a later issue), the default is a RANDOM-WEIGHT model set of
the real SD1.5 architecture: a one-step generator (ε at t=999), CLIP-L, the SD VAE, an SD1.5 ControlNet and
E-LatentLPIPS weights for SD1.5 latents, a plain SD1.5 UNet as teacher, plus a hint image. Its images are noise; it exercises every code path a real SD1.5 generator takes.
Usage (ComfyUI tree on PYTHONPATH): python -m tools.build_default_models COMFY_BASE_DIR
"""
from __future__ import annotations

import argparse
import logging
import os
import shutil

import torch
from PIL import Image, ImageDraw

from onestep.atomic import atomic_write, file_sha256
from onestep.latent_lpips import LatentLPIPS, get_encoder
from onestep.latent_lpips.weights import save as save_latent_lpips
from tools import fixtures as F
from tools import ship_proof_scale

GENERATOR = "onestep-default-sd15-random.safetensors"
CLIP = "onestep-default-clip-l-random.safetensors"
VAE = "onestep-default-sd-vae-random.safetensors"
CONTROLNET = "onestep-default-controlnet-sd15-random.safetensors"
HINT = "onestep-hint.png"
LATENT_LPIPS = "onestep-default-latent-lpips-sd15-random.safetensors"
TEACHER = "onestep-default-teacher-sd15-random.safetensors"  # a plain SD1.5 UNet: the teacher of the pairs workflow
TINY_TEACHER = "onestep-default-teacher-tiny-random.safetensors"  # a small SD1.5-family teacher the distillation workflow trains on CPU


def build_defaults(base_dir: str) -> None:
    """Write the default models into <base_dir>/models and the hint into <base_dir>/input (skips existing)."""
    models = os.path.join(base_dir, "models")
    jobs = {
        f"onestep/{GENERATOR}": lambda p: F.write_generator(p, F.SD15_UNET, seed=5, dtype=torch.float16, source="random-weight SD1.5 placeholder"),
        f"text_encoders/{CLIP}": F.write_clip_l,
        f"vae/{VAE}": F.write_vae,
        f"controlnet/{CONTROLNET}": F.write_controlnet,
        f"latent_lpips/{LATENT_LPIPS}": write_random_latent_lpips,
        f"diffusion_models/{TEACHER}": F.write_unet,
        f"onestep/{TINY_TEACHER}": lambda p: F.write_generator(p, F.TINY_UNET, seed=8, method="teacher", source="random-weight tiny teacher"),
    }
    for rel, make in jobs.items():
        path = os.path.join(models, rel)
        if not os.path.exists(path):
            logging.info("building %s", rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            make(path)
    install_proof_scale(models)
    hint = os.path.join(base_dir, "input", HINT)
    if not os.path.exists(hint):
        os.makedirs(os.path.dirname(hint), exist_ok=True)
        write_hint(hint)


def install_proof_scale(models: str, dest: str | None = None) -> dict[str, str]:
    """Copy the shipped proof-scale set (default_models/proof_scale, tools/ship_proof_scale.py) into models/onestep;
    role → installed path ({} while none is shipped). A file already there with other contents is replaced."""
    shipped = ship_proof_scale.shipped_set(dest or ship_proof_scale.DEFAULT_DEST)
    if shipped is None:
        logging.info("no proof-scale model set is shipped in this checkout yet (default_models/proof_scale)")
        return {}
    out = {}
    for role, src in shipped.items():
        dst = os.path.join(models, "onestep", os.path.basename(src))
        if not os.path.isfile(dst) or file_sha256(dst) != file_sha256(src):
            logging.info("installing %s", os.path.basename(src))
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            atomic_write(dst, lambda tmp, src=src: shutil.copyfile(src, tmp))
        out[role] = dst
    return out


def write_random_latent_lpips(path: str, seed: int = 6) -> None:
    """Placeholder E-LatentLPIPS weights for SD1.5 latents: random trunk, uniform heads (not a perceptual metric)."""
    torch.manual_seed(seed)
    net = LatentLPIPS(4)
    for lin in net.lins:
        torch.nn.init.constant_(lin.model[1].weight, 1.0 / lin.model[1].weight.shape[1])
    save_latent_lpips(path, net, get_encoder("sd15"), "uniform (random placeholder)", "random-weight placeholder")


def write_hint(path: str, size: int = 512) -> None:
    """A line drawing (circle and cross) as a ControlNet hint."""
    img = Image.new("RGB", (size, size), "black")
    d = ImageDraw.Draw(img)
    d.ellipse([size * 0.2, size * 0.2, size * 0.8, size * 0.8], outline="white", width=size // 32)
    d.line([0, 0, size, size], fill="white", width=size // 48)
    img.save(path)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    ap = argparse.ArgumentParser()
    ap.add_argument("base_dir", help="ComfyUI base directory (holds models/ and input/)")
    build_defaults(ap.parse_args().base_dir)
