"""Inputs (and outputs) that several nodes declare, written once as V3 schema pieces (comfy_api.latest.io).

The frontend fills a node's widgets by position (a saved workflow's `widgets_values`), so each helper returns its
inputs in the order the nodes have always had; a node splices them in where they stood. The training nodes (Train
Diffusion2GAN, Train Rectified Flow, Train InstaFlow, Train SiD-LSG) share a run block, an optional tail and their
outputs; Collect Teacher Pairs and Train SiD-LSG share the prompt inputs. Where a node says more about an input, it
passes its own tooltip; the defaults here are the wording most nodes use."""
from __future__ import annotations

from collections.abc import Sequence

import folder_paths
from comfy_api.latest import io

from . import model_folder

MSE = "(none: latent MSE regression)"  # the latent_lpips choice that trains with latent MSE instead
SEED_MAX = 2**64 - 1  # torch.Generator.manual_seed takes 0..2^64 − 1, as core's seed widgets declare (KSampler)


def seed_input(tooltip: str, most: int = SEED_MAX, **options) -> io.Int.Input:
    """The `seed` widget (default 0) from 0 to `most`: every seed torch's generators take, unless the node records its
    seeds somewhere narrower (Collect Teacher Pairs: int64 shards). `options`: more io.Int.Input options."""
    return io.Int.Input("seed", default=0, min=0, max=most, tooltip=tooltip, **options)


def prompt_inputs(prompts: str, prompt_file: str) -> list[io.Input]:
    """prompts, prompt_file, prompt_column: typed prompts and a prompt file in ComfyUI's input folder (tooltips of the
    first two given by the node)."""
    return [
        io.String.Input("prompts", multiline=True, default="", tooltip=prompts),
        io.String.Input("prompt_file", default="", tooltip=prompt_file),
        io.String.Input("prompt_column", default="prompt", tooltip="Column of a .tsv/.csv prompt file (any case)."),
    ]


def dataset_input(default: str, tooltip: str) -> io.String.Input:
    """The teacher-pairs dataset a training node reads: a name under models/onestep_pairs, or Collect Teacher Pairs' output."""
    return io.String.Input("dataset", default=default, tooltip=tooltip)


def latent_lpips_input() -> io.Combo.Input:
    """The E-LatentLPIPS weights of a regression loss; the first choice (MSE) trains with latent MSE instead."""
    return io.Combo.Input("latent_lpips", options=[MSE] + folder_paths.get_filename_list(model_folder.LATENT_LPIPS_FOLDER), tooltip=(
        "E-LatentLPIPS weights for this latent space (models/latent_lpips); the first entry trains with latent MSE instead."))


def run_inputs(
    generator_name: str, optimisation: list[io.Input], *, lora_rank: str, seed: str,
    steps: str = "Total optimiser steps (a resumed run continues to this count).",
    batch_size: str = "Pairs per step.",
    resume: str = "Continue this run from its checkpoint if it has one.",
    gradient_checkpointing: str = "Recompute activations in backward: less memory, ~30 % slower.",
) -> list[io.Input]:
    """The run block of every training node, in this order: steps, batch_size, the method's `optimisation` inputs
    (learning rates, loss weights), lora_rank, save_every, seed, generator_name (default `generator_name`), resume,
    gradient_checkpointing. Keyword arguments named after an input are its tooltip."""
    return [
        io.Int.Input("steps", default=2000, min=1, max=10_000_000, tooltip=steps),
        io.Int.Input("batch_size", default=4, min=1, max=1024, tooltip=batch_size),
        *optimisation,
        io.Int.Input("lora_rank", default=0, min=0, max=1024, tooltip=lora_rank),
        io.Int.Input("save_every", default=500, min=0, max=10_000_000, tooltip="Checkpoint every N steps (0: only at the end and on cancel)."),
        seed_input(seed),
        io.String.Input("generator_name", default=generator_name, tooltip="Name of the run and of the generator file in models/onestep."),
        io.Boolean.Input("resume", default=True, tooltip=resume),
        io.Boolean.Input("gradient_checkpointing", default=True, tooltip=gradient_checkpointing),
    ]


def optional_run_inputs(memory: str, switches: Sequence[io.Input] = ()) -> list[io.Input]:
    """The optional tail of every training node: vae (for the previews), the method's optional `switches` (ablations),
    memory (tooltip `memory`: what "low" does for this method)."""
    return [
        io.Vae.Input("vae", optional=True, tooltip="Decode the previews (otherwise a latent→RGB projection)."),
        *switches,
        io.Combo.Input("memory", options=["standard", "low"], default="standard", optional=True, tooltip=memory),
    ]


def run_outputs(generator: str, generator_path: str, loss_curve: str, previews: str) -> list[io.Output]:
    """The outputs of every training node, in this order; each argument is that output's tooltip."""
    return [
        io.Model.Output(display_name="generator", tooltip=generator),
        io.String.Output(display_name="generator_path", tooltip=generator_path),
        io.Image.Output(display_name="loss_curve", tooltip=loss_curve),
        io.Image.Output(display_name="previews", tooltip=previews),
    ]


def real_images_inputs(use: str) -> list[io.Input]:
    """real_images + real_image_prompts (Train Diffusion2GAN, Train InstaFlow): real images on D's real side."""
    return [
        io.Latent.Input("real_images", optional=True, tooltip=(
            f"Real images for the discriminator's real side instead of the teacher's outputs (DMD2-style; {use}): VAE "
            "Encode's LATENT of images at the pairs' size.")),
        io.String.Input("real_image_prompts", default="0", optional=True, tooltip=(
            "Which of the pairs' prompts each real image shows (0 = the first prompt): one index for all the images, or "
            "one per image separated by commas or spaces. Every prompt needs at least one image.")),
    ]
