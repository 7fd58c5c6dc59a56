"""Node: Collect Teacher Pairs — record (noise, prompt, teacher latent) datasets from any MODEL + CLIP with core's
sampling, resumable and cancel-safe (finished shards are kept; see onestep/pairs)."""
from __future__ import annotations

import os

import comfy.model_management as mm
import comfy.samplers
import comfy.utils
import torch
from comfy_api.latest import io

from onestep.pairs.collect import collect, open_dataset
from onestep.pairs.dataset import PairDataset
from onestep.pairs.manifest import SEED_MAX
from onestep.pairs.prompts import read_prompts
from onestep.ranges import check_declared
from . import model_folder
from .constants import TRAINING_CATEGORY, check_choices, to_pil
from .inputs import prompt_inputs, seed_input
from .unet_graphs import MODES, OFF
from .pair_collection import ComfyTeacher, latent_preview, sdxl_size_setting, settings_for


class OneStepCollectTeacherPairs(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="OneStepCollectTeacherPairs", display_name="Collect Teacher Pairs", category=TRAINING_CATEGORY, is_output_node=True,
            description=(
                "Record teacher pairs (noise, prompt, teacher latent) with a deterministic ODE sampler, the data Diffusion2GAN "
                "distills from. Writes a resumable dataset under models/onestep_pairs/<name>: run it again with the same "
                "settings to finish an interrupted or cancelled collection."
            ),
            inputs=[
                io.Model.Input("model", tooltip="The teacher model (SD1.5, SDXL, ...; LoRAs applied are part of it)."),
                io.Clip.Input("clip", tooltip="The teacher's text encoder: it encodes the prompts."),
                *prompt_inputs("Prompts, one per line (added before the prompt file's).",
                               "Optional prompt file in ComfyUI's input folder: .txt one per line, .tsv/.csv with a prompt column."),
                io.String.Input("negative", multiline=True, default="", tooltip="Negative prompt (the unconditional branch of CFG)."),
                io.Combo.Input("sampler_name", options=comfy.samplers.KSampler.SAMPLERS, default="euler", tooltip=(
                    "Deterministic ODE sampler; ancestral/SDE samplers are refused (they add noise the pairs cannot record).")),
                io.Combo.Input("scheduler", options=comfy.samplers.KSampler.SCHEDULERS, tooltip="Noise schedule, as in KSampler."),
                io.Int.Input("steps", default=25, min=1, max=1000, tooltip="Teacher sampling steps."),
                io.Float.Input("cfg", default=7.5, min=0.0, max=100.0, step=0.1, round=0.01, tooltip="Guidance scale baked into the pairs (and into the distilled generator)."),
                seed_input("Seed of the first pair; pair i uses seed + i (replay it in KSampler with that seed), at most 2^63 − 1 "
                           "(shards record seeds as signed 64-bit integers).", most=SEED_MAX),
                io.Int.Input("count", default=64, min=1, max=100_000_000, tooltip="Number of pairs; prompts are used in turn."),
                io.Int.Input("width", default=512, min=64, max=4096, step=8, tooltip="Image width in pixels."),
                io.Int.Input("height", default=512, min=64, max=4096, step=8, tooltip="Image height in pixels."),
                io.Int.Input("batch_size", default=8, min=1, max=256, tooltip="Pairs per teacher call (part of the dataset's settings)."),
                io.Int.Input("shard_size", default=64, min=1, max=65536, tooltip=(
                    "Pairs per file (rounded up to a multiple of the batch size); a cancel loses at most the shard in progress.")),
                io.String.Input("dataset_name", default="teacher-pairs", tooltip=(
                    "Folder under models/onestep_pairs; an existing dataset with the same settings is resumed.")),
                io.ControlNet.Input("control_net", optional=True, tooltip="Optional ControlNet applied while collecting, to distill a one-step ControlNet generator."),
                io.Image.Input("hint", optional=True, tooltip="ControlNet hint images; pair i uses hint i mod batch size of this input."),
                io.Float.Input("control_strength", default=1.0, min=0.0, max=10.0, step=0.01, optional=True, tooltip="ControlNet strength."),
                io.Vae.Input("vae", optional=True, tooltip="Optional VAE to decode the previews (without it: a quick latent→RGB projection)."),
                io.Conditioning.Input("size_conditioning", optional=True, tooltip=(
                    "SDXL only, optional: a CLIP Text Encode SDXL whose size settings (width, height, crop_w, crop_h, target_width, "
                    "target_height) the teacher uses for every prompt; its text is not used. Without it: original = target = "
                    "the image size, no crop, as with a plain CLIP Text Encode. The pairs record it and training uses it.")),
                io.Conditioning.Input("negative_size_conditioning", optional=True, tooltip=(
                    "SDXL only, optional: the negative prompt's size settings, as size_conditioning (default: size_conditioning's; "
                    "a plain CLIP Text Encode here gives the negative the image-size default).")),
                io.Combo.Input("fast_teacher", options=list(MODES), default=OFF, optional=True, tooltip=(
                    "Replay the teacher's UNet calls from CUDA graphs inside core's sampling (same sampler, schedule and CFG): "
                    "'cuda graph' runs the same kernels without Python's launch overhead; 'compile + cuda graph' also compiles the "
                    "UNet (minutes once per machine, then cached in ComfyUI's user folder; results within float rounding of "
                    "core's). Used only on CUDA with the model fully loaded and plain prompts (SD1.x/2.x, or SDXL with its pooled "
                    "text and size settings; no ControlNet, SDXL refiner, patches or wrappers); otherwise core's path. Off by "
                    "default: core's path is the reference the pairs must equal.")),
            ],
            outputs=[
                io.String.Output(display_name="dataset", tooltip="Path of the dataset folder."),
                io.Image.Output(display_name="previews", tooltip="The teacher's latest outputs (VAE-decoded if a VAE is connected)."),
            ],
        )

    @classmethod
    def validate_inputs(cls, sampler_name=None, scheduler=None, fast_teacher=None) -> bool | str:
        return check_choices(cls, sampler_name=sampler_name, scheduler=scheduler, fast_teacher=fast_teacher)

    @classmethod
    def fingerprint_inputs(cls, dataset_name=None, **_) -> str | float:
        """Run again whenever the dataset folder changed (e.g. deleted or cancelled), else reuse the cached result. A linked
        name (None here) is not known before the run: always run (NaN never equals itself; resuming is cheap)."""
        if dataset_name is None:
            return float("nan")
        try:
            manifest = os.path.join(model_folder.dataset_folder(dataset_name), "manifest.json")
            return f"{os.path.getmtime(manifest)}:{os.path.getsize(manifest)}"
        except (OSError, ValueError):
            return "absent"

    @classmethod
    def execute(cls, model, clip, prompts: str, prompt_file: str, prompt_column: str, negative: str, sampler_name: str, scheduler: str,
                steps: int, cfg: float, seed: int, count: int, width: int, height: int, batch_size: int, shard_size: int, dataset_name: str,
                control_net=None, hint=None, control_strength: float = 1.0, vae=None, size_conditioning=None,
                negative_size_conditioning=None, fast_teacher: str = OFF) -> io.NodeOutput:
        check_declared(cls.INPUT_TYPES(), locals())  # ranges again: a linked value skips ComfyUI's, NaN passes it
        prompt_list = read_prompts(prompts, model_folder.resolve_input(prompt_file) if prompt_file.strip() else None, prompt_column)
        settings = settings_for(model, clip, prompt_list, negative, sampler_name, scheduler, steps, cfg, seed, count, width, height,
                                batch_size, shard_size, control_net, hint, control_strength,
                                sdxl_size_setting(model, width, height, size_conditioning, negative_size_conditioning))
        folder = model_folder.dataset_folder(dataset_name)
        manifest = open_dataset(folder, settings, prompt_list, {"teacher_name": "ComfyUI MODEL", "made_by": "Collect Teacher Pairs node"})
        teacher = ComfyTeacher(model, clip, prompt_list, negative, settings, control_net, hint, vae)
        teacher.step_callback = lambda *a: mm.throw_exception_if_processing_interrupted()
        teacher.fast_teacher = fast_teacher
        already = sum(int(e["count"]) for e in manifest.shards.values())
        bar = comfy.utils.ProgressBar(count)
        bar.update_absolute(already, count)
        latest = []

        def progress(done, total, latents):
            latest[:] = [latents]
            bar.update_absolute(already + done, count, ("JPEG", to_pil(latent_preview(model, latents[:1].cpu(), vae)), 512))

        collect(folder, manifest, teacher, num_hints=len(hint) if control_net is not None else 0, progress=progress)
        latents = latest[0].cpu() if latest else torch.stack([PairDataset(folder)[i]["latent"] for i in range(min(batch_size, count))])
        text = [f"{len(manifest.shards)}/{settings.num_shards} shards in {folder}"]
        if teacher.fast_teacher_summary():  # None when off, or when every shard was already there
            text.append(teacher.fast_teacher_summary())
        return io.NodeOutput(folder, latent_preview(model, latents, vae), ui={"text": text})


NODES = [OneStepCollectTeacherPairs]
