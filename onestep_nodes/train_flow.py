"""Nodes: Train Rectified Flow (reflow) and Train InstaFlow — InstaFlow's two stages (Liu et al., ICLR 2024) on
teacher-pairs datasets: reflow turns the teacher's UNet into a velocity model on the teacher's ODE couplings (→ a
2-rectified flow file, sampled with 1–8 Euler steps), InstaFlow distils that flow into one step x0 = z + v(z, 1000)
on pairs of the flow's own Euler ODE (→ an instaflow file). Formulas: docs/methods.md, "Rectified flow";
engine methods: training/methods/reflow.py. Same run contract as Train Diffusion2GAN (onestep_nodes/training_node.py)."""
from __future__ import annotations

import os

import comfy.model_management as mm
from comfy_api.latest import io

from onestep import format
from onestep.ranges import check_declared
from training.config import DiscriminatorConfig, GeneratorConfig, LossConfig, OptimConfig, ReflowConfig, TrainConfig, default_lr_warmup, low_memory
from training.export import native_weights
from training.methods.reflow import FLOW_SPEC
from . import model_folder
from .constants import TRAINING_CATEGORY, check_choices
from .inputs import dataset_input, latent_lpips_input, optional_run_inputs, real_images_inputs, run_inputs, run_outputs
from .training_node import regression_elpips, resolve_dataset, run_paths, train_run, write_real_images

PREVIEWS = "Student (top, one Euler step) and the pairs' latents (bottom) on the dataset's first seeds."
MEMORY = ("low: the settings measured for small GPUs (a full fine-tune: Adafactor and a bf16 EMA; a LoRA run: the frozen "
          "base in bf16; bf16 compute in both). See docs/benchmarks.md.")


def flow_run_inputs(generator_name: str) -> list[io.Input]:
    """The run block of both flow nodes (inputs.run_inputs with one learning rate), in Train Diffusion2GAN's order and wording."""
    lr = io.Float.Input("lr", default=1e-5, min=0.0, max=1.0, step=1e-6, round=1e-8, tooltip=(
        "Learning rate (AdamW; cosine decay after a warm-up of min(500, steps/10) steps; LoRA runs like ~1e-4)."))
    return run_inputs(
        generator_name, [lr], seed="Seeds the data order and the noise draws.",
        lora_rank=("0: full fine-tune; >0: train LoRA adapters of this rank (low memory). The generator file holds the merged weights "
                   "(a flow generator predicts velocities, so its LoRA alone would not fit the teacher's sampling)."),
        resume="Continue this run from its checkpoint if it has one (weights, optimiser, EMA, step and random state: exact).",
    )


def flow_config(method: str, steps: int, batch_size: int, lr: float, lora_rank: int, save_every: int, seed: int, gradient_checkpointing: bool,
                memory: str, **sections) -> TrainConfig:
    """The engine config of a flow node: the flow generator spec (x0 = z + v(z, 1000)), AdamW with warm-up and cosine decay."""
    config = TrainConfig(
        method=method, generator=GeneratorConfig(spec=FLOW_SPEC, lora_rank=lora_rank, gradient_checkpointing=gradient_checkpointing),
        optim=OptimConfig(lr_g=lr, lr_d=lr, lr_warmup=default_lr_warmup(steps), lr_decay="cosine", lr_decay_steps=steps),
        batch_size=batch_size, bf16=mm.get_torch_device().type == "cuda", seed=seed, save_every=save_every,
        log_every=max(1, min(50, steps // 20)), **sections,
    )
    return low_memory(config) if memory == "low" else config


def check_flow_file(path: str, what: str = "init_from") -> format.GeneratorMetadata:
    """The metadata of a flow generator file; a file of another prediction (an ε/v generator or teacher) is refused by name."""
    name = os.path.basename(path)
    try:
        meta = format.read_metadata(path)
    except (OSError, ValueError) as e:
        raise ValueError(f"{what} {name} is not a readable generator file: {str(e).splitlines()[0]}") from None
    if meta.prediction != "flow":
        raise ValueError(f"{what} {name} is a {meta.prediction!r}-prediction {meta.method} file; InstaFlow starts from a flow generator "
                         "(method 2-rectified-flow, made by Train Rectified Flow, or instaflow)")
    return meta


class OneStepTrainReflow(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="OneStepTrainReflow", display_name="Train Rectified Flow (reflow)", category=TRAINING_CATEGORY, is_output_node=True,
            description=(
                "Reflow (InstaFlow's first stage): train the teacher's UNet as a velocity model v(X_σ, 1000σ | c) on the teacher's "
                "pairs, L = ‖v − (x − z)‖² on X_σ = (1 − σ)·x + σ·z, σ ~ U(t_eps, 1), with text dropout for CFG on velocities. The "
                "result is a 2-rectified flow: sample it with KSampler (sampler euler, scheduler simple, 1–8 steps), collect its own "
                "pairs with Collect Teacher Pairs (euler, simple) and distil those into one step with Train InstaFlow. Its own node, "
                "not a mode of Train Diffusion2GAN: it makes a multi-step model, has no discriminator and no regression loss. Run it "
                "again to resume (exact); cancel keeps a checkpoint and writes no generator."
            ),
            inputs=[
                io.Model.Input("model", tooltip="The teacher the pairs came from (ε or v): the velocity model starts from its UNet, the same weights."),
                dataset_input("teacher-pairs", (
                    "Teacher-pairs dataset (the teacher's ODE couplings): its name under models/onestep_pairs, or connect Collect "
                    "Teacher Pairs' dataset output.")),
                *flow_run_inputs("my-2-rectified-flow"),
                io.Float.Input("t_eps", default=1e-3, min=0.0, max=0.999, step=1e-4, round=1e-6, tooltip=(
                    "σ ~ U(t_eps, 1): the data end [0, t_eps) is left out (Liu et al.'s 1e-3).")),
                io.Float.Input("text_dropout", default=0.1, min=0.0, max=0.999, step=0.01, tooltip=(
                    "Share of items trained on the pairs' negative (empty) prompt, so the flow learns v(·|∅) for CFG (0: off).")),
                *optional_run_inputs(MEMORY),
            ],
            outputs=run_outputs(
                "The trained flow generator, loaded (One-Step Generate, or KSampler/SamplerCustom with euler + simple).",
                "Where the generator file was written (connect it to Train InstaFlow's init_from).", "Loss terms over the steps.", PREVIEWS),
        )

    @classmethod
    def validate_inputs(cls, memory=None) -> bool | str:
        return check_choices(cls, memory=memory)

    @classmethod
    def execute(cls, model, dataset: str, steps: int, batch_size: int, lr: float, lora_rank: int, save_every: int, seed: int,
                generator_name: str, resume: bool, gradient_checkpointing: bool, t_eps: float, text_dropout: float, vae=None,
                memory: str = "standard") -> io.NodeOutput:
        check_declared(cls.INPUT_TYPES(), locals())  # ranges again: a linked value skips ComfyUI's, NaN passes it
        run_paths(generator_name)
        config = flow_config("reflow", steps, batch_size, lr, lora_rank, save_every, seed, gradient_checkpointing, memory,
                             reflow=ReflowConfig(t_eps=t_eps, text_dropout=text_dropout))
        return train_run(model, config, dataset, generator_name, steps, resume, vae)


class OneStepTrainInstaFlow(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="OneStepTrainInstaFlow", display_name="Train InstaFlow (one step from a flow)", category=TRAINING_CATEGORY,
            is_output_node=True,
            description=(
                "InstaFlow (the second stage): distil a 2-rectified flow into one step, x0 = z + v(z, 1000 | c), by regression "
                "on pairs of the flow's own Euler ODE (Collect Teacher Pairs on the 2-RF's MODEL with euler + simple). G and its "
                "EMA start from init_from (the 2-RF file). The recipe: a run with latent MSE, then one with E-LatentLPIPS started "
                "from the first's file. Its own node rather than Train Diffusion2GAN: it starts from a flow file, and its "
                "discriminator is optional (gan_weight). Resume and cancel as the other training nodes."
            ),
            inputs=[
                io.Model.Input("model", tooltip="The 2-RF or its teacher: gives the UNet architecture and latent space (the weights come from init_from)."),
                io.String.Input("init_from", default="my-2-rectified-flow", tooltip=(
                    "The flow generator G starts from: a file name in models/onestep (a 2-rectified-flow or instaflow file), or "
                    "connect Train Rectified Flow's generator_path.")),
                dataset_input("2rf-pairs", (
                    "Pairs of the 2-RF's own Euler ODE: a name under models/onestep_pairs, or connect Collect Teacher Pairs' dataset output.")),
                latent_lpips_input(),
                io.Combo.Input("regression", options=["mse", "elatentlpips", "latentlpips"], tooltip=(
                    "Regression loss: latent MSE (InstaFlow's first run), E-LatentLPIPS (augmented) or LatentLPIPS without ensemble.")),
                *flow_run_inputs("my-instaflow"),
                *optional_run_inputs(MEMORY),
                # last, so saved workflows keep their widget order
                io.Float.Input("gan_weight", default=0.0, min=0.0, max=100.0, step=0.01, optional=True, tooltip=(
                    "InstaFlow's optional GAN term (0: off, pure regression as the paper): Diffusion2GAN's conditional "
                    "discriminator (a copy of MODEL's encoder, re-noising on the flow path) from a quarter of the steps on, "
                    "its gradient at the generator's output this share of the regression's (0.3 is Train Diffusion2GAN's "
                    "default); D learns at lr. The file is still an instaflow file.")),
                io.Combo.Input("gan_balance", options=["adaptive", "fixed"], default="adaptive", optional=True, tooltip=(
                    "How gan_weight weighs the GAN term. adaptive: its gradient at G's output is gan_weight × the regression's; "
                    "fixed: λ_GAN = gan_weight. The proof-scale InstaFlow that reached 1.21× the teacher used fixed 0.1 with "
                    "real_images (README); it collapsed ~100 steps past its best, when D overpowered G: the node then warns under its "
                    "result, naming a step to resume from — keep such runs short and watch the previews.")),
                *real_images_inputs("the proof-scale recipe: see gan_balance; needs gan_weight > 0"),
            ],
            outputs=run_outputs("The trained one-step generator, loaded (connect it to One-Step Generate).", "Where the generator file was written.",
                                "Loss terms over the steps.", PREVIEWS),
        )

    @classmethod
    def validate_inputs(cls, latent_lpips=None, regression=None, memory=None, gan_balance=None) -> bool | str:
        return check_choices(cls, latent_lpips=latent_lpips, regression=regression, memory=memory, gan_balance=gan_balance)

    @classmethod
    def execute(cls, model, init_from: str, dataset: str, latent_lpips: str, regression: str, steps: int, batch_size: int, lr: float,
                lora_rank: int, save_every: int, seed: int, generator_name: str, resume: bool, gradient_checkpointing: bool, vae=None,
                memory: str = "standard", gan_weight: float = 0.0, gan_balance: str = "adaptive", real_images=None,
                real_image_prompts: str = "0") -> io.NodeOutput:
        check_declared(cls.INPUT_TYPES(), locals())  # ranges again: a linked value skips ComfyUI's, NaN passes it
        _, run_dir = run_paths(generator_name)
        source = model_folder.resolve_generator(init_from)
        check_flow_file(source)
        gan = gan_weight > 0  # instaflow-gan: D is built from MODEL's encoder before G starts from init_from
        real_path = ""
        if real_images is not None:  # real images carry no noise z: D is then not z-conditioned
            if not gan:
                raise ValueError("real_images feed the discriminator: set gan_weight above 0, or disconnect real_images")
            real_path = write_real_images(real_images, real_image_prompts, resolve_dataset(dataset), run_dir,
                                          discriminator=True, z_conditioning=False)
        elpips = regression_elpips(model, latent_lpips, regression)
        config = flow_config("instaflow-gan" if gan else "instaflow", steps, batch_size, lr, lora_rank, save_every, seed, gradient_checkpointing,
                             memory, loss=LossConfig(regression=regression, gan_weight=gan_weight, warmup_steps=steps // 4, gan_balance=gan_balance),
                             discriminator=DiscriminatorConfig(enabled=gan, z_conditioning=not real_path, real_images=real_path))

        def start(session) -> None:
            sd, _ = format.load_generator(source)
            try:
                session.trainer.start_generator_from(native_weights(session.trainer.unet, sd))
            except ValueError as e:
                raise ValueError(f"init_from {os.path.basename(source)}: {e}") from None

        return train_run(model, config, dataset, generator_name, steps, resume, vae, elpips, start=start)


NODES = [OneStepTrainReflow, OneStepTrainInstaFlow]
