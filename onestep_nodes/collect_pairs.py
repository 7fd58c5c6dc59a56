"""Node: Collect Teacher Pairs — record (noise, prompt, teacher latent) datasets from any MODEL + CLIP with core's
sampling, resumable and cancel-safe (finished shards are kept; see onestep/pairs)."""
from __future__ import annotations

import os

import comfy.model_management as mm
import comfy.samplers
import comfy.utils
import torch

from onestep.pairs.collect import collect, open_dataset
from onestep.pairs.dataset import PairDataset
from onestep.pairs.prompts import read_prompts
from onestep.ranges import check_declared
from . import model_folder
from .constants import TRAINING_CATEGORY, to_pil
from .pair_collection import ComfyTeacher, latent_preview, settings_for



class OneStepCollectTeacherPairs:
    DESCRIPTION = (
        "Record teacher pairs (noise, prompt, teacher latent) with a deterministic ODE sampler, the data Diffusion2GAN "
        "distills from. Writes a resumable dataset under models/onestep_pairs/<name>: run it again with the same "
        "settings to finish an interrupted or cancelled collection."
    )
    CATEGORY = TRAINING_CATEGORY
    RETURN_TYPES = ("STRING", "IMAGE")
    RETURN_NAMES = ("dataset", "previews")
    OUTPUT_TOOLTIPS = ("Path of the dataset folder.", "The teacher's latest outputs (VAE-decoded if a VAE is connected).")
    FUNCTION = "collect"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("MODEL", {"tooltip": "The teacher model (SD1.5, SDXL, ...; LoRAs applied are part of it)."}),
                "clip": ("CLIP", {"tooltip": "The teacher's text encoder: it encodes the prompts."}),
                "prompts": ("STRING", {"multiline": True, "default": "", "tooltip": "Prompts, one per line (added before the prompt file's)."}),
                "prompt_file": ("STRING", {"default": "", "tooltip": "Optional prompt file in ComfyUI's input folder: .txt one per line, .tsv/.csv with a prompt column."}),
                "prompt_column": ("STRING", {"default": "prompt", "tooltip": "Column of a .tsv/.csv prompt file (any case)."}),
                "negative": ("STRING", {"multiline": True, "default": "", "tooltip": "Negative prompt (the unconditional branch of CFG)."}),
                "sampler_name": (comfy.samplers.KSampler.SAMPLERS, {"default": "euler", "tooltip": "Deterministic ODE sampler; ancestral/SDE samplers are refused (they add noise the pairs cannot record)."}),
                "scheduler": (comfy.samplers.KSampler.SCHEDULERS, {"tooltip": "Noise schedule, as in KSampler."}),
                "steps": ("INT", {"default": 25, "min": 1, "max": 1000, "tooltip": "Teacher sampling steps."}),
                "cfg": ("FLOAT", {"default": 7.5, "min": 0.0, "max": 100.0, "step": 0.1, "round": 0.01, "tooltip": "Guidance scale baked into the pairs (and into the distilled generator)."}),
                "seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF, "tooltip": "Seed of the first pair; pair i uses seed + i (replay it in KSampler with that seed)."}),
                "count": ("INT", {"default": 64, "min": 1, "max": 100_000_000, "tooltip": "Number of pairs; prompts are used in turn."}),
                "width": ("INT", {"default": 512, "min": 64, "max": 4096, "step": 8, "tooltip": "Image width in pixels."}),
                "height": ("INT", {"default": 512, "min": 64, "max": 4096, "step": 8, "tooltip": "Image height in pixels."}),
                "batch_size": ("INT", {"default": 8, "min": 1, "max": 256, "tooltip": "Pairs per teacher call (part of the dataset's settings)."}),
                "shard_size": ("INT", {"default": 64, "min": 1, "max": 65536, "tooltip": "Pairs per file (rounded up to a multiple of the batch size); a cancel loses at most the shard in progress."}),
                "dataset_name": ("STRING", {"default": "teacher-pairs", "tooltip": "Folder under models/onestep_pairs; an existing dataset with the same settings is resumed."}),
            },
            "optional": {
                "control_net": ("CONTROL_NET", {"tooltip": "Optional ControlNet applied while collecting, to distill a one-step ControlNet generator."}),
                "hint": ("IMAGE", {"tooltip": "ControlNet hint images; pair i uses hint i mod batch size of this input."}),
                "control_strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 10.0, "step": 0.01, "tooltip": "ControlNet strength."}),
                "vae": ("VAE", {"tooltip": "Optional VAE to decode the previews (without it: a quick latent→RGB projection)."}),
            },
        }

    @classmethod
    def IS_CHANGED(cls, dataset_name, **_):
        """Run again whenever the dataset folder changed (e.g. deleted or cancelled), else reuse the cached result."""
        try:
            manifest = os.path.join(model_folder.dataset_folder(dataset_name), "manifest.json")
            return f"{os.path.getmtime(manifest)}:{os.path.getsize(manifest)}"
        except (OSError, ValueError):
            return "absent"

    def collect(self, model, clip, prompts, prompt_file, prompt_column, negative, sampler_name, scheduler, steps, cfg, seed, count,
                width, height, batch_size, shard_size, dataset_name, control_net=None, hint=None, control_strength=1.0, vae=None):
        check_declared(self.INPUT_TYPES(), locals())  # ranges again: a linked value skips ComfyUI's, NaN passes it
        prompt_list = read_prompts(prompts, model_folder.resolve_input(prompt_file) if prompt_file.strip() else None, prompt_column)
        settings = settings_for(model, clip, prompt_list, negative, sampler_name, scheduler, steps, cfg, seed, count, width, height,
                                batch_size, shard_size, control_net, hint, control_strength)
        folder = model_folder.dataset_folder(dataset_name)
        manifest = open_dataset(folder, settings, prompt_list, {"teacher_name": "ComfyUI MODEL", "made_by": "Collect Teacher Pairs node"})
        teacher = ComfyTeacher(model, clip, prompt_list, negative, settings, control_net, hint, vae)
        teacher.step_callback = lambda *a: mm.throw_exception_if_processing_interrupted()
        already = sum(int(e["count"]) for e in manifest.shards.values())
        bar = comfy.utils.ProgressBar(count)
        bar.update_absolute(already, count)
        latest = []

        def progress(done, total, latents):
            latest[:] = [latents]
            bar.update_absolute(already + done, count, ("JPEG", to_pil(latent_preview(model, latents[:1].cpu(), vae)), 512))

        collect(folder, manifest, teacher, num_hints=len(hint) if control_net is not None else 0, progress=progress)
        latents = latest[0].cpu() if latest else torch.stack([PairDataset(folder)[i]["latent"] for i in range(min(batch_size, count))])
        return {"ui": {"text": [f"{len(manifest.shards)}/{settings.num_shards} shards in {folder}"]}, "result": (folder, latent_preview(model, latents, vae))}


NODE_CLASS_MAPPINGS = {"OneStepCollectTeacherPairs": OneStepCollectTeacherPairs}
NODE_DISPLAY_NAME_MAPPINGS = {"OneStepCollectTeacherPairs": "Collect Teacher Pairs"}
