"""Node: Train SiD-LSG — data-free one-step distillation of a teacher MODEL from prompts only (score identity
distillation with long-and-short guidance, training/methods/sid_lsg.py): the prompts and "" encoded with the CLIP, the
generator G, the fake score ψ and the frozen teacher φ all from the MODEL's UNet. Resumable, cancel-safe; writes a
generator file (method sid-lsg) into models/onestep that Load One-Step Generator and One-Step Generate run. G may
start from a one-step generator file instead (init_from: e.g. a Train Diffusion2GAN student), ψ and φ stay the teacher's;
anchor_pairs adds the recall anchor (a teacher-pairs dataset's regression, SidConfig.anchor_weight)."""
from __future__ import annotations

import os

import comfy.model_management as mm
import torch
from comfy_api.latest import io

from onestep import format
from onestep.atomic import atomic_write
from onestep.pairs.dataset import repeat_to_common_length
from onestep.pairs.manifest import Manifest, size_notes
from onestep.pairs.prompts import read_prompts
from onestep.parameterization import OneStepSpec
from onestep.ranges import check_declared
from training.config import default_lr_warmup, GeneratorConfig, LossConfig, OptimConfig, SidConfig, TrainConfig, low_memory
from training.export import native_weights
from training.methods.sid_lsg import PREDICTIONS, SidLSG
from training.prompts import PromptDataset
from training.session import TrainingSession
from . import model_folder
from .comfy_unet import ComfyUNet
from .constants import TRAINING_CATEGORY, check_choices
from .generator_model import check_conditioning, load_generator_model
from .inputs import optional_run_inputs, prompt_inputs, run_inputs, run_outputs
from .pair_collection import model_fingerprint, needs_pooled, sdxl_size_setting
from .training_node import check_training_fits, export_metadata, resolve_dataset, run_paths, run_with_progress, training_outputs

LATENT_DOWNSCALE = 8  # pixels per latent cell (the SD family's VAE), as Empty Latent Image assumes
INIT_RECORD = "init_from.txt"  # in the run folder: the file G started from ("" = the teacher), which a resume continues


def teacher_prediction(model) -> str:
    """"eps" or "v": what the teacher MODEL predicts on its discrete VP schedule; anything else (flow, x0, EDM, a
    continuous schedule) is refused by name."""
    import comfy.model_sampling as ms

    sampling = model.get_model_object("model_sampling")
    own = getattr(sampling, "onestep_spec", None)  # a generator file loaded as the teacher says what it predicts
    kind = None
    if isinstance(sampling, ms.ModelSamplingDiscrete) and not isinstance(sampling, (ms.X0, ms.EDM)):
        kind = "v" if isinstance(sampling, ms.V_PREDICTION) else "eps" if isinstance(sampling, ms.EPS) else None
    if own is not None and own.prediction not in PREDICTIONS:
        kind = None
    if kind is None:
        what = repr(own.prediction) if own is not None else "/".join(c.__name__ for c in type(sampling).__bases__)
        raise ValueError(f"SiD-LSG distills ε- or v-prediction teachers on a discrete noise schedule (SD1.x, SD2.x, SDXL); "
                         f"this MODEL predicts {what} (e.g. a flow model): connect such a teacher")
    return kind


def check_init_file(path: str, spec: OneStepSpec, lora_rank: int) -> str:
    """The name of the generator file G starts from, refused by name unless it is readable and makes this run's single
    call (prediction, timestep, input): G's weights then mean the same thing to the SiD losses as the teacher's."""
    name = os.path.basename(path)
    if lora_rank:
        raise ValueError(f"init_from {name} needs a full fine-tune (lora_rank 0): a LoRA run trains factors on the teacher's "
                         "weights, which the fake score and the teacher share")
    try:
        own = format.read_metadata(path).spec()
    except (OSError, ValueError) as e:
        raise ValueError(f"init_from {name} is not a readable generator file: {str(e).splitlines()[0]}") from None
    field = own.mismatch(spec)
    if field is None:
        return name
    fix = {"prediction": "start from a generator of this teacher's prediction (e.g. a Train Diffusion2GAN student of this teacher)",
           "input_convention": "SiD-LSG trains a σ·z-input generator: start from one (e.g. a full-fine-tune Train Diffusion2GAN student)",
           "timestep": f"set t_init to {own.timestep:g}, or start from a generator at t={spec.timestep:g}"}[field]
    raise ValueError(f"init_from {name} is a generator for {own.describe()}; this run trains {spec.describe()}: {fix}")


def start_generator(session: TrainingSession, run_dir: str, init_path: str | None, init_name: str | None) -> str | None:
    """A fresh run: G and its EMA from the init file (if any), recorded in the run folder. A resumed run has G (trained on)
    in its checkpoint: it refuses another init file than its own and returns the one it started from (provenance)."""
    record = os.path.join(run_dir, INIT_RECORD)
    if session.step == 0:
        if init_path:
            sd, _ = format.load_generator(init_path)
            try:
                session.trainer.start_generator_from(native_weights(session.trainer.unet, sd))
            except ValueError as e:
                raise ValueError(f"init_from {init_name} does not fit this MODEL's UNet (another architecture): {e}") from None
        def write(tmp: str) -> None:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(init_name or "")

        atomic_write(record, write)  # a crash mid-write must not leave a half name that a resume would trust
        return init_name
    started = ""
    if os.path.isfile(record):
        with open(record, encoding="utf-8") as f:
            started = f.read().strip()
    if init_name and init_name != started:
        raise ValueError(f"init_from {init_name}: this run resumes at step {session.step}, started from {started or 'the teacher'}; "
                         "init_from applies to a fresh run: choose another generator_name, or turn resume off")
    return started or None


def anchor_folder(anchor_pairs: str, anchor_weight: float) -> str | None:
    """The recall anchor's pairs folder, or None (data-free: no dataset, or a weight of 0)."""
    if not anchor_pairs.strip() or anchor_weight == 0:
        return None
    return resolve_dataset(anchor_pairs)


def check_anchor_pairs(folder: str, model, latent: tuple[int, int, int]) -> None:
    """Refuse, by name, anchor pairs whose latents are not this run's: another latent space or another size."""
    name = os.path.basename(folder)
    settings = Manifest.load(folder).settings
    latent_format = type(model.get_model_object("latent_format")).__name__
    if settings.latent_format != latent_format:
        raise ValueError(f"anchor_pairs {name} holds {settings.latent_format} latents but the teacher makes {latent_format} latents")
    if tuple(settings.latent_shape) != tuple(latent):
        c, h, w = settings.latent_shape
        raise ValueError(f"anchor_pairs {name} holds {w * LATENT_DOWNSCALE}×{h * LATENT_DOWNSCALE} pairs; this run trains "
                         f"{latent[2] * LATENT_DOWNSCALE}×{latent[1] * LATENT_DOWNSCALE}: set width and height to the dataset's")


def encode_prompts(model, clip, prompts: list[str], batch_size: int, sdxl_size: tuple[int, ...] = ()) -> PromptDataset:
    """The prompts and "" encoded with the CLIP as CLIP Text Encode does (pooled kept where the model uses it), with
    SDXL size conditioning where `sdxl_size` gives it (PairSettings.sdxl_size: the prompts' 6 values, the empty
    prompt's 6), cycled to fill a batch when there are fewer prompts than the batch."""
    pooled_needed = needs_pooled(model)

    def encode(text: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        out = clip.encode_from_tokens(clip.tokenize(text), return_pooled=True, return_dict=True)
        cond, pooled = out["cond"].float().cpu(), out.get("pooled_output")
        check_conditioning(model, [[cond, {"pooled_output": pooled}]])  # a CLIP of another base: named, before training
        return cond[0], pooled.float().cpu()[0] if pooled_needed and pooled is not None else None

    empty = encode("")
    encoded = [encode(p) for p in prompts]
    context = repeat_to_common_length([c for c, _ in encoded])
    pooled = torch.stack([p for _, p in encoded]) if pooled_needed else None
    unconditional = {"context": empty[0], **({"pooled": empty[1]} if pooled_needed else {})}
    size = None
    if sdxl_size:
        size = torch.tensor([list(sdxl_size[:6])] * len(prompts))
        unconditional["size"] = torch.tensor(sdxl_size[6:])
    data = PromptDataset(context, unconditional, pooled, size=size)
    if len(data) < batch_size:
        data = data.repeated(-(-batch_size // len(data)) * len(data))
    return data


class OneStepTrainSiDLSG(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        sid, kappa = SidConfig(), {"min": 0.0, "max": 100.0, "step": 0.1, "round": 0.01}
        lr = io.Float.Input("lr", default=SidLSG.optim_defaults["lr_g"], min=0.0, max=1.0, step=1e-7, round=1e-9, tooltip=(
            "Learning rate of the generator and the fake score (Adam β = (0, 0.999); 1e-6 the official at batch 512; small runs "
            "and LoRA like ~1e-5 to 1e-4)."))
        return io.Schema(
            node_id="OneStepTrainSiDLSG", display_name="Train SiD-LSG", category=TRAINING_CATEGORY, is_output_node=True,
            description=(
                "Distill the teacher into a one-step generator with SiD-LSG (score identity distillation with long-and-short "
                "guidance): data-free, from prompts only — no teacher pairs, no images. Trains the generator and a fake score "
                "network, both started from the teacher (or G from init_from, e.g. a Train Diffusion2GAN student), against "
                "the frozen teacher. Run it again to resume (weights, optimisers, EMA, step and random state); cancel keeps a "
                "checkpoint and writes no generator file."
            ),
            inputs=[
                io.Model.Input("model", tooltip=(
                    "The teacher (ε or v prediction: SD1.x, SD2.x, SDXL): the generator, the fake score and the frozen teacher all "
                    "start from its UNet.")),
                io.Clip.Input("clip", tooltip="The teacher's text encoder: it encodes the prompts and the empty prompt of the guidance."),
                *prompt_inputs("Training prompts, one per line (added before the prompt file's). The only data SiD-LSG needs.", (
                    "Optional prompt file in ComfyUI's input folder: .txt one per line, .tsv/.csv with a prompt column (e.g. "
                    "PartiPrompts.tsv, column Prompt).")),
                io.Float.Input("kappa1", default=sid.kappa1, **kappa, tooltip=(
                    "κ1: guidance scale of the fake score's own training prediction (LSG; 1.5 the released best FID, 2 FID/CLIP "
                    "balance, 4.5 best CLIP).")),
                io.Float.Input("kappa2", default=sid.kappa2, **kappa, tooltip=(
                    "κ2 = κ3: guidance scale of the fake score in the generator loss. With kappa1 = kappa2 = 1 the guidance is "
                    "in the teacher only (kappa4): at proof scale, with the recall anchor, the best student (1.01× the teacher's FD).")),
                io.Float.Input("kappa4", default=sid.kappa4, **kappa, tooltip=(
                    "κ4: guidance scale of the frozen teacher in the generator loss (the CFG the student learns; written into the "
                    "file as its guidance).")),
                io.Float.Input("alpha", default=sid.alpha, min=-10.0, max=10.0, step=0.1, round=0.01, tooltip=(
                    "α of the SiD generator loss (1: the released SD scripts; 1.2: EDM-SiD).")),
                io.Int.Input("t_init", default=625, min=1, max=999, tooltip=(
                    "The generator's timestep: it sees sqrt(1−ᾱ_t)·z at this t (625: σ ≈ 2.5, the paper's).")),
                io.Int.Input("width", default=512, min=64, max=4096, step=8, tooltip=(
                    "Width in pixels of the images the generator learns to make (its noise is width/8 latent cells).")),
                io.Int.Input("height", default=512, min=64, max=4096, step=8, tooltip="Height in pixels (the noise is height/8 latent cells)."),
                *run_inputs(
                    "my-sid-lsg", [lr],
                    steps=("Total optimiser steps (a resumed run continues to this count); each step trains the fake score, then "
                           "the generator."),
                    batch_size="Prompts per step (fewer prompts than this are cycled).",
                    lora_rank=("0: full fine-tune of the generator and the fake score; >0: LoRA adapters of this rank on the generator "
                               "(low memory; the teacher then shares its frozen weights)."),
                    seed="Seeds the prompt order, the noise, the timesteps and the prompt dropout.",
                    gradient_checkpointing="Recompute activations in backward (generator, fake score and teacher): less memory, slower.",
                ),
                io.Conditioning.Input("size_conditioning", optional=True, tooltip=(
                    "SDXL only, optional: a CLIP Text Encode SDXL whose size settings (width, height, crop_w, crop_h, target_width, "
                    "target_height) every UNet call uses, for the prompts and the empty prompt alike; its text is not used. "
                    "Without it: original = target = width × height, no crop.")),
                *optional_run_inputs(memory=(
                    "low: the low-memory levers of the Diffusion2GAN trainer for SiD's three UNets: bf16 compute; a full fine-tune "
                    "trains with Adafactor, stores the fake score and the EMA in bf16 (stochastic rounding) and the teacher's frozen copy in bf16; a LoRA run keeps "
                    "one bf16 copy of the teacher that the generator, the fake score (LoRA factors of the same rank) and the "
                    "teacher share.")),
                io.String.Input("init_from", default="", optional=True, tooltip=(
                    "Empty: the generator starts from the teacher. Otherwise a one-step generator file in models/onestep (or "
                    "connect a training node's generator_path) that the generator and its EMA start from, e.g. a Train "
                    "Diffusion2GAN student; the fake score and the frozen teacher stay the teacher's. It must make this run's "
                    "call (the teacher's prediction at t_init, σ·z input) and have the MODEL's architecture; full fine-tune "
                    "only. Read by a fresh run (a resumed one continues from its checkpoint).")),
                io.String.Input("anchor_pairs", default="", optional=True, tooltip=(
                    "Empty: data-free (prompts only). Otherwise a teacher-pairs dataset of this teacher (its name under "
                    "models/onestep_pairs, or connect Collect Teacher Pairs' dataset output) at this width × height: the recall "
                    "anchor. The run then trains on the dataset's prompts (prompts and prompt_file are not used) and pulls the "
                    "generator toward the teacher's pairs (latent MSE), which keeps the variety SiD's mode-seeking loses: at "
                    "proof scale it took the student from 1.24× to 1.04× the teacher's FD, and to 1.01× with kappa1 = kappa2 = 1.")),
                io.Float.Input("anchor_weight", default=0.25, min=0.0, max=10.0, step=0.05, round=0.001, optional=True, tooltip=(
                    "With anchor_pairs: the anchor's gradient at the generator's output as a share of the SiD gradient's "
                    "(0.25 measured at proof scale; 0 turns the anchor off).")),
            ],
            outputs=run_outputs("The trained one-step generator, loaded (connect it to One-Step Generate).", "Where the generator file was written.",
                                "Loss terms over the steps (fake score, SiD generator loss, ...).", "The student's samples for the first prompts (fixed noise)."),
        )

    @classmethod
    def validate_inputs(cls, memory=None) -> bool | str:
        return check_choices(cls, memory=memory)

    @classmethod
    def execute(cls, model, clip, prompts: str, prompt_file: str, prompt_column: str, kappa1: float, kappa2: float, kappa4: float, alpha: float,
                t_init: int, width: int, height: int, steps: int, batch_size: int, lr: float, lora_rank: int, save_every: int, seed: int,
                generator_name: str, resume: bool, gradient_checkpointing: bool, vae=None, memory: str = "standard",
                size_conditioning=None, init_from: str = "", anchor_pairs: str = "", anchor_weight: float = 0.25) -> io.NodeOutput:
        check_declared(cls.INPUT_TYPES(), locals())  # ranges again: a linked value skips ComfyUI's, NaN passes it
        out_path, run_dir = run_paths(generator_name)
        anchor = anchor_folder(anchor_pairs, anchor_weight)
        prompt_list = [] if anchor else read_prompts(prompts, model_folder.resolve_input(prompt_file) if prompt_file.strip() else None, prompt_column)
        spec = OneStepSpec(teacher_prediction(model), t_init, "sigma_z")
        init_path = model_folder.resolve_generator(init_from) if init_from.strip() else None
        init_name = check_init_file(init_path, spec, lora_rank) if init_path else None
        multiple = LATENT_DOWNSCALE * 2 ** (len(model.model.model_config.unet_config.get("channel_mult", (1, 2, 4, 4))) - 1)
        if width % multiple or height % multiple:
            raise ValueError(f"width and height must be multiples of {multiple} for this teacher's UNet, not {width}×{height}")
        latent = (model.get_model_object("latent_format").latent_channels, height // LATENT_DOWNSCALE, width // LATENT_DOWNSCALE)
        if anchor:
            check_anchor_pairs(anchor, model, latent)
        check_training_fits(model, batch_size, latent, f"width {width} × height {height} at batch_size {batch_size}",
                            "lower width, height or batch_size")
        device = mm.get_torch_device()
        o = SidLSG.optim_defaults
        sid = SidConfig(kappa1=kappa1, kappa2=kappa2, kappa4=kappa4, alpha=alpha, latent_height=height // LATENT_DOWNSCALE,
                        latent_width=width // LATENT_DOWNSCALE, anchor_weight=anchor_weight if anchor else 0.0)
        config = TrainConfig(
            method=SidLSG.name,
            generator=GeneratorConfig(spec=spec, lora_rank=lora_rank, gradient_checkpointing=gradient_checkpointing),
            optim=OptimConfig(lr_g=lr, lr_d=lr, betas=tuple(o["betas"]), grad_clip=o["grad_clip"], lr_warmup=default_lr_warmup(steps)),
            sid=sid, loss=LossConfig(**SidLSG.loss_defaults), batch_size=batch_size, bf16=device.type == "cuda", seed=seed, save_every=save_every,
            log_every=max(1, min(50, steps // 20)),
        )
        if memory == "low":
            config = low_memory(config)  # ψ as bf16 (full) or LoRA factors of G's rank; φ's copy in bf16
        sdxl_size = sdxl_size_setting(model, width, height, size_conditioning, size_conditioning)
        prompt_data = encode_prompts(model, clip, prompt_list or [""], batch_size, sdxl_size)
        # the anchor's pairs bring their own prompts (and a negative prompt, which is not SiD's unconditional branch: "" is)
        data, unconditional = (anchor, prompt_data.unconditional()) if anchor else (prompt_data, None)
        with torch.inference_mode(False), torch.enable_grad():
            unet = ComfyUNet.from_model(model, device=device)
            mm.unload_all_models()  # the trainable copy (and ψ, φ copied from it) are independent of the teacher's weights
            session = TrainingSession(unet, config, data, run_dir, None, device, resume, unconditional=unconditional)
            init_name = start_generator(session, run_dir, init_path, init_name)
            result = run_with_progress(session, model, steps, vae)
            base, file_format, unet_config = export_metadata(model)
            notes = {**(size_notes(sdxl_size) if sdxl_size else {}), **({"init_from": init_name} if init_name else {})}
            session.export(out_path, base, file_format, unet_config=unet_config, teacher_hash=model_fingerprint(model)[:16],
                           source=(f"Train SiD-LSG node: {len(prompt_list)} prompts" if not anchor else
                                   f"Train SiD-LSG node: the prompts of {os.path.basename(anchor)} + its pairs as recall anchor ({anchor_weight:g})")
                           + (f", G from {init_name}" if init_name else ""),
                           notes=notes or None)
            curve, images = training_outputs(session, model, 4, vae)
        return io.NodeOutput(load_generator_model(out_path), out_path, curve, images, ui={"text": [f"{result.step} steps → {out_path}"]})


NODES = [OneStepTrainSiDLSG]
