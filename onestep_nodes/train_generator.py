"""Node: Train Diffusion2GAN — distill a teacher MODEL into a one-step generator from a teacher-pairs dataset
(E-LatentLPIPS regression + conditional diffusion GAN; training/). Resumable, cancel-safe; writes the generator
into models/onestep (and a LoRA into models/loras for LoRA runs)."""
from __future__ import annotations

import comfy.model_management as mm
from comfy_api.latest import io

from onestep.parameterization import OneStepSpec
from onestep.ranges import check_declared
from training.config import DEFAULT_SPEC, DiscriminatorConfig, default_lr_warmup, GeneratorConfig, LossConfig, OptimConfig, TrainConfig, low_memory
from training.methods.diffusion2gan import Diffusion2GAN
from .constants import TRAINING_CATEGORY, check_choices
from .inputs import dataset_input, latent_lpips_input, optional_run_inputs, real_images_inputs, run_inputs, run_outputs
from .training_node import regression_elpips, resolve_dataset, run_paths, train_run, write_real_images


def generator_spec(model, lora: bool = False) -> OneStepSpec:
    """The student's single call, after the teacher's prediction type (flow teachers are not supported yet): ε or v at
    the trainer's default timestep (DEFAULT_SPEC: t=625, measured) on σ_t·z. A LoRA run instead trains at the one-step
    call One-Step Generate makes with the teacher MODEL itself — its file's spec, or for a plain model core's start at
    σ_max (t=999) from sqrt(σ²+1)·z, where the UNet sees z itself (raw_z) — because its LoRA is applied to that MODEL
    by core's loaders and run there."""
    import comfy.model_sampling as ms

    sampling = model.get_model_object("model_sampling")
    own = getattr(sampling, "onestep_spec", None)
    if lora and own is not None and own.prediction in ("eps", "v"):
        return own
    t, convention = (999, "raw_z") if lora else (DEFAULT_SPEC.timestep, "sigma_z")
    if isinstance(sampling, ms.V_PREDICTION):
        return OneStepSpec("v", t, convention)
    if isinstance(sampling, ms.EPS):
        return OneStepSpec("eps", t, convention)
    raise ValueError(f"teachers with {type(sampling).__name__} sampling (e.g. flow models) cannot be distilled with Diffusion2GAN here: distil a flow with Train InstaFlow")


class OneStepTrainDiffusion2GAN(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        optimisation = [
            io.Float.Input("lr_g", default=1e-5, min=0.0, max=1.0, step=1e-6, round=1e-8, tooltip="Generator learning rate (LoRA runs like ~1e-4)."),
            io.Float.Input("lr_d", default=1e-5, min=0.0, max=1.0, step=1e-6, round=1e-8, tooltip="Discriminator learning rate."),
            io.Float.Input("gan_weight", default=0.3, min=0.0, max=100.0, step=0.01, tooltip=(
                "The GAN's pull on the generator as a share of the regression's (adaptive weight: its gradient at the output is "
                "scaled to this fraction; 0.3 by default, see README).")),
            io.Float.Input("r1_gamma", default=1.0, min=0.0, max=1000.0, step=0.1, tooltip="Single-sample R1 weight, applied every 16 steps (0: off)."),
            io.Int.Input("warmup_steps", default=1000, min=0, max=10_000_000, tooltip="Regression-only steps before the GAN starts."),
        ]
        ablations = [
            io.Boolean.Input("discriminator", default=True, optional=True, tooltip="Ablation: train the GAN at all."),
            io.Boolean.Input("z_conditioning", default=True, optional=True, tooltip="Ablation: the discriminator sees the noise z."),
            io.Boolean.Input("multiscale", default=True, optional=True, tooltip="Ablation: readout heads on every encoder scale."),
            io.Boolean.Input("mix_and_match", default=True, optional=True, tooltip="Ablation: extra fakes pairing real latents with the wrong z or prompt."),
        ]
        return io.Schema(
            node_id="OneStepTrainDiffusion2GAN", display_name="Train Diffusion2GAN", category=TRAINING_CATEGORY, is_output_node=True,
            description=(
                "Distill the teacher into a one-step generator with Diffusion2GAN: E-LatentLPIPS regression of the teacher pairs, "
                "then a conditional diffusion GAN whose discriminator starts from the teacher's UNet encoder. Run it again to "
                "resume (weights, optimisers, EMA, step and random state); cancel keeps a checkpoint."
            ),
            inputs=[
                io.Model.Input("model", tooltip="The teacher the pairs came from: the generator and the discriminator start from its UNet."),
                dataset_input("teacher-pairs", "Teacher-pairs dataset: its name under models/onestep_pairs, or connect Collect Teacher Pairs' dataset output."),
                latent_lpips_input(),
                io.Combo.Input("regression", options=["elatentlpips", "latentlpips", "mse"], tooltip=(
                    "Regression loss: E-LatentLPIPS (augmented, the paper's), LatentLPIPS without ensemble, or latent MSE.")),
                *run_inputs(
                    "my-diffusion2gan", optimisation,
                    lora_rank=("0: full fine-tune; >0: train LoRA adapters of this rank (low memory) and also save them as a LoRA "
                               "(trained at the one-step call One-Step Generate makes with this teacher MODEL, so core's LoRA loaders "
                               "apply it there). SDXL at 1024² with memory=low on a 16 GB card: 32 (64 needs ~17 GiB)."),
                    seed="Seeds the data order, noise draws and augmentations.",
                ),
                *optional_run_inputs(switches=ablations, memory=(
                    "low: the settings measured for small GPUs (Adafactor, approximated R1, bf16 compute; a full fine-tune stores D and "
                    "the EMA in bf16; a LoRA run keeps one bf16 copy of the teacher that D shares, with its own LoRA factors): SD1.5 at "
                    "512² full fine-tuning at batch 2 in ~14 GB without gradient checkpointing (faster than standard) or ~12 GB with "
                    "it, LoRA in ~5 GB at batch 4. See docs/benchmarks.md.")),
                # last, after memory: saved workflows give widgets by position, so new widgets go at the end
                *real_images_inputs("the best proof-scale rows, with gan_weight 1: see README; needs z_conditioning off"),
            ],
            outputs=run_outputs("The trained one-step generator, loaded (connect it to One-Step Generate).", "Where the generator file was written.",
                                "Loss terms over the steps.", "Student (top) and teacher (bottom) latents on the dataset's first seeds."),
        )

    @classmethod
    def validate_inputs(cls, latent_lpips=None, regression=None, memory=None) -> bool | str:
        return check_choices(cls, latent_lpips=latent_lpips, regression=regression, memory=memory)

    @classmethod
    def execute(cls, model, dataset: str, latent_lpips: str, regression: str, steps: int, batch_size: int, lr_g: float, lr_d: float,
                gan_weight: float, r1_gamma: float, warmup_steps: int, lora_rank: int, save_every: int, seed: int, generator_name: str,
                resume: bool, gradient_checkpointing: bool, vae=None, discriminator: bool = True, z_conditioning: bool = True,
                multiscale: bool = True, mix_and_match: bool = True, memory: str = "standard", real_images=None,
                real_image_prompts: str = "0") -> io.NodeOutput:
        check_declared(cls.INPUT_TYPES(), locals())  # ranges again: a linked value skips ComfyUI's, NaN passes it
        _, run_dir = run_paths(generator_name)  # a bad name is named before the E-LatentLPIPS weights load
        real_path = ""
        if real_images is not None:
            real_path = write_real_images(real_images, real_image_prompts, resolve_dataset(dataset), run_dir, discriminator, z_conditioning)
        device = mm.get_torch_device()
        elpips = regression_elpips(model, latent_lpips, regression)
        config = TrainConfig(
            generator=GeneratorConfig(spec=generator_spec(model, lora_rank > 0), lora_rank=lora_rank, gradient_checkpointing=gradient_checkpointing),
            optim=OptimConfig(lr_g=lr_g, lr_d=lr_d, lr_warmup=default_lr_warmup(steps), lr_decay="cosine", lr_decay_steps=steps,
                              betas_d=Diffusion2GAN.optim_defaults["betas_d"]),
            loss=LossConfig(regression=regression, gan_weight=gan_weight, warmup_steps=warmup_steps),
            discriminator=DiscriminatorConfig(enabled=discriminator, z_conditioning=z_conditioning, r1_gamma=r1_gamma, multiscale=multiscale,
                                              mix_and_match=mix_and_match, real_images=real_path),
            batch_size=batch_size, bf16=device.type == "cuda", seed=seed, save_every=save_every, log_every=max(1, min(50, steps // 20)),
        )
        if memory == "low":
            config = low_memory(config)
        return train_run(model, config, dataset, generator_name, steps, resume, vae, elpips, lora=lora_rank > 0)


NODES = [OneStepTrainDiffusion2GAN]
