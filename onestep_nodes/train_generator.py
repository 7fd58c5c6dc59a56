"""Node: Train Diffusion2GAN — distill a teacher MODEL into a one-step generator from a teacher-pairs dataset
(E-LatentLPIPS regression + conditional diffusion GAN; training/). Resumable, cancel-safe; writes the generator
into models/onestep (and a LoRA into models/loras for LoRA runs)."""
from __future__ import annotations

import comfy.model_management as mm
import folder_paths

from onestep.parameterization import OneStepSpec
from onestep.ranges import check_declared
from training.config import DEFAULT_SPEC, DiscriminatorConfig, default_lr_warmup, GeneratorConfig, LossConfig, OptimConfig, TrainConfig, low_memory
from . import model_folder
from .constants import TRAINING_CATEGORY
from .training_node import MSE, regression_elpips, run_paths, train_run


def generator_spec(model, lora: bool = False) -> OneStepSpec:
    """The student's single call, after the teacher's prediction type (flow teachers are not supported yet): ε or v at
    the trainer's default timestep (DEFAULT_SPEC: t=625, measured) on σ_t·z. A LoRA run instead trains at the one-step
    call One-Step Generate makes with the teacher MODEL itself — its file's spec, or σ_max (t=999) for a plain model —
    because its LoRA is applied to that MODEL by core's loaders and run there."""
    import comfy.model_sampling as ms

    sampling = model.get_model_object("model_sampling")
    own = getattr(sampling, "onestep_spec", None)
    if lora and own is not None and own.prediction in ("eps", "v"):
        return own
    t = 999 if lora else DEFAULT_SPEC.timestep
    if isinstance(sampling, ms.V_PREDICTION):
        return OneStepSpec("v", t, "sigma_z")
    if isinstance(sampling, ms.EPS):
        return OneStepSpec("eps", t, "sigma_z")
    raise ValueError(f"teachers with {type(sampling).__name__} sampling (e.g. flow models) cannot be distilled with Diffusion2GAN here: distil a flow with Train InstaFlow")


class OneStepTrainDiffusion2GAN:
    DESCRIPTION = (
        "Distill the teacher into a one-step generator with Diffusion2GAN: E-LatentLPIPS regression of the teacher pairs, "
        "then a conditional diffusion GAN whose discriminator starts from the teacher's UNet encoder. Run it again to "
        "resume (weights, optimisers, EMA, step and random state); cancel keeps a checkpoint."
    )
    CATEGORY = TRAINING_CATEGORY
    RETURN_TYPES = ("MODEL", "STRING", "IMAGE", "IMAGE")
    RETURN_NAMES = ("generator", "generator_path", "loss_curve", "previews")
    OUTPUT_TOOLTIPS = ("The trained one-step generator, loaded (connect it to One-Step Generate).", "Where the generator file was written.",
                       "Loss terms over the steps.", "Student (top) and teacher (bottom) latents on the dataset's first seeds.")
    FUNCTION = "train"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        weights = [MSE] + folder_paths.get_filename_list(model_folder.LATENT_LPIPS_FOLDER)
        return {
            "required": {
                "model": ("MODEL", {"tooltip": "The teacher the pairs came from: the generator and the discriminator start from its UNet."}),
                "dataset": ("STRING", {"default": "teacher-pairs", "tooltip": "Teacher-pairs dataset: its name under models/onestep_pairs, or connect Collect Teacher Pairs' dataset output."}),
                "latent_lpips": (weights, {"tooltip": "E-LatentLPIPS weights for this latent space (models/latent_lpips); the first entry trains with latent MSE instead."}),
                "regression": (["elatentlpips", "latentlpips", "mse"], {"tooltip": "Regression loss: E-LatentLPIPS (augmented, the paper's), LatentLPIPS without ensemble, or latent MSE."}),
                "steps": ("INT", {"default": 2000, "min": 1, "max": 10_000_000, "tooltip": "Total optimiser steps (a resumed run continues to this count)."}),
                "batch_size": ("INT", {"default": 4, "min": 1, "max": 1024, "tooltip": "Pairs per step."}),
                "lr_g": ("FLOAT", {"default": 1e-5, "min": 0.0, "max": 1.0, "step": 1e-6, "round": 1e-8, "tooltip": "Generator learning rate (LoRA runs like ~1e-4)."}),
                "lr_d": ("FLOAT", {"default": 1e-5, "min": 0.0, "max": 1.0, "step": 1e-6, "round": 1e-8, "tooltip": "Discriminator learning rate."}),
                "gan_weight": ("FLOAT", {"default": 0.3, "min": 0.0, "max": 100.0, "step": 0.01, "tooltip": "The GAN's pull on the generator as a share of the regression's (adaptive weight: its gradient at the output is scaled to this fraction; 0.3 by default, see README)."}),
                "r1_gamma": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1000.0, "step": 0.1, "tooltip": "Single-sample R1 weight, applied every 16 steps (0: off)."}),
                "warmup_steps": ("INT", {"default": 1000, "min": 0, "max": 10_000_000, "tooltip": "Regression-only steps before the GAN starts."}),
                "lora_rank": ("INT", {"default": 0, "min": 0, "max": 1024, "tooltip": "0: full fine-tune; >0: train LoRA adapters of this rank (low memory) and also save them as a LoRA (trained at the one-step call One-Step Generate makes with this teacher MODEL, so core's LoRA loaders apply it there)."}),
                "save_every": ("INT", {"default": 500, "min": 0, "max": 10_000_000, "tooltip": "Checkpoint every N steps (0: only at the end and on cancel)."}),
                "seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF, "tooltip": "Seeds the data order, noise draws and augmentations."}),
                "generator_name": ("STRING", {"default": "my-diffusion2gan", "tooltip": "Name of the run and of the generator file in models/onestep."}),
                "resume": ("BOOLEAN", {"default": True, "tooltip": "Continue this run from its checkpoint if it has one."}),
                "gradient_checkpointing": ("BOOLEAN", {"default": True, "tooltip": "Recompute activations in backward: less memory, ~30 % slower."}),
            },
            "optional": {
                "vae": ("VAE", {"tooltip": "Decode the previews (otherwise a latent→RGB projection)."}),
                "discriminator": ("BOOLEAN", {"default": True, "tooltip": "Ablation: train the GAN at all."}),
                "z_conditioning": ("BOOLEAN", {"default": True, "tooltip": "Ablation: the discriminator sees the noise z."}),
                "multiscale": ("BOOLEAN", {"default": True, "tooltip": "Ablation: readout heads on every encoder scale."}),
                "mix_and_match": ("BOOLEAN", {"default": True, "tooltip": "Ablation: extra fakes pairing real latents with the wrong z or prompt."}),
                "memory": (["standard", "low"], {"default": "standard", "tooltip": (
                    "low: the settings measured for small GPUs (Adafactor, approximated R1, bf16 compute; a full fine-tune stores D and "
                    "the EMA in bf16; a LoRA run keeps one bf16 copy of the teacher that D shares, with its own LoRA factors): SD1.5 at "
                    "512² full fine-tuning at batch 2 in ~14 GB without gradient checkpointing (faster than standard) or ~12 GB with "
                    "it, LoRA in ~5 GB at batch 4. See docs/benchmarks.md.")}),
            },
        }

    def train(self, model, dataset, latent_lpips, regression, steps, batch_size, lr_g, lr_d, gan_weight, r1_gamma, warmup_steps, lora_rank,
              save_every, seed, generator_name, resume, gradient_checkpointing, vae=None, discriminator=True, z_conditioning=True,
              multiscale=True, mix_and_match=True, memory="standard"):
        check_declared(self.INPUT_TYPES(), locals())  # ranges again: a linked value skips ComfyUI's, NaN passes it
        run_paths(generator_name)  # a bad name is named before the E-LatentLPIPS weights load
        device = mm.get_torch_device()
        elpips = regression_elpips(model, latent_lpips, regression)
        config = TrainConfig(
            generator=GeneratorConfig(spec=generator_spec(model, lora_rank > 0), lora_rank=lora_rank, gradient_checkpointing=gradient_checkpointing),
            optim=OptimConfig(lr_g=lr_g, lr_d=lr_d, lr_warmup=default_lr_warmup(steps), lr_decay="cosine", lr_decay_steps=steps),
            loss=LossConfig(regression=regression, gan_weight=gan_weight, warmup_steps=warmup_steps),
            discriminator=DiscriminatorConfig(enabled=discriminator, z_conditioning=z_conditioning, r1_gamma=r1_gamma, multiscale=multiscale, mix_and_match=mix_and_match),
            batch_size=batch_size, bf16=device.type == "cuda", seed=seed, save_every=save_every, log_every=max(1, min(50, steps // 20)),
        )
        if memory == "low":
            config = low_memory(config)
        return train_run(model, config, dataset, generator_name, steps, resume, vae, elpips, lora=lora_rank > 0)


NODE_CLASS_MAPPINGS = {"OneStepTrainDiffusion2GAN": OneStepTrainDiffusion2GAN}
NODE_DISPLAY_NAME_MAPPINGS = {"OneStepTrainDiffusion2GAN": "Train Diffusion2GAN"}
