"""What the training nodes (Train Diffusion2GAN, Train SiD-LSG) share around a training.session.TrainingSession: the
generator file and run folder of a generator name, the progress bar with student previews and cancel (→ checkpoint,
no generator file), the export's base/UNet metadata, and the loss-curve and preview outputs."""
from __future__ import annotations

import os

import comfy.model_management as mm
import comfy.utils
import folder_paths
import torch

from . import model_folder
from .constants import to_pil
from .pair_collection import latent_preview

BASES = {"SD15": "sd15", "SD20": "sd21", "SD21UnclipL": "sd21", "SD21UnclipH": "sd21", "SDXL": "sdxl"}


def run_paths(generator_name: str) -> tuple[str, str]:
    """(generator file in models/onestep, run folder in models/onestep_runs) of a run; refuses to overwrite a generator
    file that no training run of this name made."""
    out_path = model_folder.output_path(generator_name, overwrite=True)
    run_dir = os.path.join(folder_paths.models_dir, "onestep_runs", os.path.splitext(os.path.basename(out_path))[0])
    if os.path.exists(out_path) and not os.path.isdir(run_dir):
        raise ValueError(f"{os.path.basename(out_path)} exists and was not made by this training run; choose another generator_name")
    return out_path, run_dir


def run_with_progress(session, model, steps: int, vae=None):
    """Train the session to `steps` with ComfyUI's progress bar and a student preview ~20 times; a cancel (the queue's
    interrupt) stops at the end of the step, after the engine wrote its checkpoint, and is re-raised as ComfyUI's
    interrupt, so no generator file is written. Returns the engine's RunResult."""
    bar = comfy.utils.ProgressBar(steps)
    every = max(1, steps // 20)

    def on_step(step: int, logs: dict) -> bool:
        if mm.processing_interrupted():
            return True  # the trainer writes a checkpoint, then we report the cancel
        preview = None
        if step % every == 0 or step == steps:
            student, _ = session.previews(1)
            preview = ("JPEG", to_pil(latent_preview(model, student, vae)), 512)
        try:
            bar.update_absolute(step, steps, preview)
        except mm.InterruptProcessingException:
            return True
        return False

    result = session.run(steps, on_step)
    if result.stopped:
        raise mm.InterruptProcessingException()
    return result


def export_metadata(model) -> tuple[str, str, dict | None]:
    """(base, latent format name, unet_config for a custom base) of the teacher MODEL, for TrainingSession.export."""
    base = BASES.get(type(model.model.model_config).__name__, "custom")
    latent_format = type(model.get_model_object("latent_format")).__name__
    heads = {k: v for k, v in model.model.model_config.unet_config.items() if k in ("num_heads", "num_head_channels")}
    return base, latent_format, heads if base == "custom" else None


def training_outputs(session, model, count: int = 4, vae=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss curve IMAGE [1, H, W, 3], previews IMAGE: the student's latents on the data's first items, then the
    teacher's where the data has them)."""
    student, teacher = session.previews(count)
    curve = torch.from_numpy(session.loss_curve())[None]
    latents = student if teacher is None else torch.cat([student, teacher])
    return curve, latent_preview(model, latents, vae)
