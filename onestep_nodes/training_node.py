"""What the training nodes share (Train Diffusion2GAN, Train Rectified Flow, Train InstaFlow, Train SiD-LSG): the dataset and the
run folder from the node's inputs, the E-LatentLPIPS choice, and one run — session, resume, progress with previews,
cancel → checkpoint and no generator file, export, loss curve and previews. Each node builds its TrainConfig and
calls `train_run`. The inputs they share are declared once, in inputs.py."""
from __future__ import annotations

import copy
import os
from collections.abc import Callable

import comfy.model_management as mm
import comfy.utils
import folder_paths
import torch
from comfy_api.latest import io

from onestep.latent_lpips import ELatentLPIPS
from onestep.latent_lpips.datasets import save_labelled
from onestep.latent_spaces import latent_space
from onestep.pairs.manifest import DatasetError, Manifest
from training.config import TrainConfig
from training.real_images import check_real_images, prompt_indices
from training.session import TrainingSession
from . import model_folder
from .comfy_unet import ComfyUNet, normal_tensors
from .constants import to_pil
from .generator_model import load_generator_model
from .inputs import MSE
from .latent_diff import check_latent_space, load_weights
from .memory_budget import check_model_call
from .pair_collection import latent_preview

BASES = {"SD15": "sd15", "SD20": "sd21", "SD21UnclipL": "sd21", "SD21UnclipH": "sd21", "SDXL": "sdxl"}


def write_real_images(latent: dict, prompts_text: str, dataset: str, run_dir: str, discriminator: bool, z_conditioning: bool) -> str:
    """The node's real images as the labelled-latents file D reads (in the run folder, written atomically), after the
    checks that name what a user must change."""
    if not discriminator:
        raise ValueError("real_images feed the discriminator: turn discriminator on, or disconnect real_images")
    if z_conditioning:
        raise ValueError("real_images need z_conditioning off (real images have no noise z): set z_conditioning to false")
    samples = latent["samples"].float().cpu()
    labels = prompt_indices(prompts_text, samples.shape[0])
    manifest = Manifest.load(dataset)
    check_real_images(samples, labels, manifest.prompts, manifest.settings.latent_shape)
    path = os.path.join(run_dir, "real_images.safetensors")
    os.makedirs(run_dir, exist_ok=True)
    save_labelled(path, samples, labels)
    return path


def resolve_dataset(value: str) -> str:
    """A dataset given by name or by the path Collect Teacher Pairs outputs; it must be under models/onestep_pairs."""
    value = value.strip()
    if model_folder.has_control_characters(value):
        raise ValueError(f"invalid dataset {value!r}: give a dataset name (a folder under models/onestep_pairs)")
    if os.path.isabs(value):
        full = os.path.realpath(value)
        roots = [os.path.realpath(p) for p in folder_paths.get_folder_paths(model_folder.PAIRS_FOLDER)]
        if not any(full.startswith(r + os.sep) for r in roots):
            raise ValueError(f"dataset {value!r} is outside models/onestep_pairs; give a dataset name")
        return full
    return model_folder.dataset_folder(value)


def run_paths(generator_name: str) -> tuple[str, str]:
    """(generator file in models/onestep, run folder in models/onestep_runs) of a run; refuses to overwrite a file
    another run or a user put there."""
    out_path = model_folder.output_path(generator_name, overwrite=True)
    run_dir = os.path.join(folder_paths.models_dir, "onestep_runs", os.path.splitext(os.path.basename(out_path))[0])
    if os.path.exists(out_path) and not os.path.isdir(run_dir):
        raise ValueError(f"{os.path.basename(out_path)} exists and was not made by this training run; choose another generator_name")
    return out_path, run_dir


def regression_elpips(model, latent_lpips: str, regression: str) -> ELatentLPIPS | None:
    """The E-LatentLPIPS of the regression loss (None: latent MSE), checked against the MODEL's latent space."""
    if latent_lpips == MSE:
        if regression != "mse":
            raise ValueError(f"the {regression} regression needs E-LatentLPIPS weights: pick a file in latent_lpips or set regression to mse")
        return None
    net, encoder, _ = load_weights(latent_lpips)
    check_latent_space(model, encoder.name)
    return ELatentLPIPS(normal_tensors(copy.deepcopy(net)), encoder)  # a private copy: the trainer moves and freezes it


def check_training_fits(model, batch_size: int, latent_shape: tuple[int, int, int], what: str, advice: str = "lower batch_size") -> None:
    """Refuse a batch whose forward pass alone (ComfyUI's estimate; training keeps its activations for the backward
    pass and needs more) exceeds the device's memory, before the UNet is copied."""
    check_model_call(model, [batch_size, *latent_shape], what, "one forward pass of the UNet alone (training needs several times that)", advice)


def train_run(model, config: TrainConfig, dataset: str, generator_name: str, steps: int, resume: bool, vae=None,
              elpips: ELatentLPIPS | None = None, lora: bool = False, start: Callable[[TrainingSession], None] | None = None) -> io.NodeOutput:
    """Train `model`'s UNet copy with `config` on the pairs `dataset` to `steps` (resuming the run's checkpoint), then
    write the generator (and for a LoRA run its LoRA) and return the node's result: (MODEL, path, loss curve, previews).
    `start(session)` runs before the first step of a fresh run (not of a resumed one): e.g. G starting from a file."""
    out_path, run_dir = run_paths(generator_name)
    device = mm.get_torch_device()
    folder = resolve_dataset(dataset)
    c, h, w = Manifest.load(folder).settings.latent_shape
    check_training_fits(model, config.batch_size, (c, h, w), f"batch_size {config.batch_size} of the dataset's {w * 8}×{h * 8} pairs")
    with torch.inference_mode(False), torch.enable_grad():
        unet = ComfyUNet.from_model(model, device=device)
        mm.unload_all_models()  # the trainable copy is independent of the teacher's weights
        session = TrainingSession(unet, config, folder, run_dir, elpips, device, resume)
        latent_format = type(model.get_model_object("latent_format")).__name__
        if session.dataset.settings.latent_format != latent_format:
            raise DatasetError(f"the dataset holds {session.dataset.settings.latent_format} latents but the teacher makes {latent_format} latents")
        if start is not None and session.step == 0:
            start(session)
        result = run_with_progress(session, model, steps, vae)
        base, file_format, unet_config = export_metadata(model)
        lora_path = os.path.join(folder_paths.get_folder_paths("loras")[0], os.path.basename(out_path)) if lora else None
        session.export(out_path, base, file_format, lora_path, unet_config=unet_config)
        curve, images = training_outputs(session, model, 4, vae)
    return io.NodeOutput(load_generator_model(out_path), out_path, curve, images, ui={"text": [f"{result.step} steps → {out_path}", *session.warnings]})


def run_with_progress(session: TrainingSession, model, steps: int, vae=None):
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
    """(base, latent space as generator files name it, unet_config for a non-standard width) of the teacher MODEL, for
    TrainingSession.export. A latent format the pack's table does not know keeps ComfyUI's class name in lower case.
    The attention heads are recorded for a custom base and for a standard family at another width (e.g. a reduced SDXL):
    the loader cannot read them from the weights and would otherwise give such a file SD1.x's heads."""
    config = model.model.model_config
    base = BASES.get(type(config).__name__, "custom")
    comfy_format = type(model.get_model_object("latent_format")).__name__
    try:
        file_format = latent_space(comfy_format).name
    except ValueError:
        file_format = comfy_format.lower()
    heads = {k: v for k, v in config.unet_config.items() if k in ("num_heads", "num_head_channels")}
    return base, file_format, heads if base == "custom" or not type(config).matches(config.unet_config) else None


def training_outputs(session: TrainingSession, model, count: int = 4, vae=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss curve IMAGE [1, H, W, 3], previews IMAGE: the student's latents on the data's first items, then the
    teacher's where the data has them)."""
    student, teacher = session.previews(count)
    curve = torch.from_numpy(session.loss_curve())[None]
    latents = student if teacher is None else torch.cat([student, teacher])
    return curve, latent_preview(model, latents, vae)
