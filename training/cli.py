"""Headless one-step distillation: `python -m training.cli train --pairs DIR --teacher UNET_DIR --out
generator.safetensors` (Diffusion2GAN, Kang et al., ECCV 2024, and its regression ablation) or `--method sid-lsg
--prompts FILE --teacher PIPELINE_DIR` (SiD-LSG, Zhou et al.: data-free, prompts only), also under `torchrun
--nproc-per-node N` (one process per GPU). `--method reflow` trains a 2-rectified flow on pairs and `--method
instaflow` its one-step distillation (their flow generator spec is the default for them).

--pairs is a teacher-pairs dataset folder (onestep/pairs); --prompts a .txt (one prompt per line) or .tsv/.csv
(column --prompt-column) file, encoded by the CLIP text encoder of a diffusers pipeline folder (--text-encoder,
by default --teacher). --teacher is a diffusers UNet2DConditionModel folder (`unet/` of a pipeline works too). The
result is a one-step generator file (onestep/format.py) of G's EMA weights. --checkpoint keeps a resumable state
(every --save-every steps, at the end, and on Ctrl-C).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import statistics
import time

import torch
import torch.distributed as dist

from onestep.schedule import SPACINGS

from .config import (
    D_READOUTS,
    DEFAULT_SPEC,
    GAN_LOSSES,
    LIVE_ANCHOR_SAMPLERS,
    DiscriminatorConfig,
    GeneratorConfig,
    LossConfig,
    OptimConfig,
    ReflowConfig,
    SidConfig,
    TrainConfig,
    default_lr_warmup,
    low_memory,
)
from .core import ELatentLPIPS, LATENT_SPACES, OneStepSpec, atomic, atomic_write, bases, format, latent_space
from .methods import METHODS, PAIRS, method_class

log = logging.getLogger("onestep")


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    """The `train` command's options: inputs, outputs, then one flag per config field."""
    d, o, lo, g, sid, r = DiscriminatorConfig(), OptimConfig(), LossConfig(), TrainConfig(), SidConfig(), ReflowConfig()
    p.add_argument("--method", default=g.method, choices=sorted(METHODS), help="training method (training/methods/)")
    p.add_argument("--pairs", default=None, help="teacher-pairs dataset folder (diffusion2gan, regression)")
    p.add_argument("--prompts", default=None, help="prompt file (.txt one per line, .tsv/.csv with --prompt-column) of a prompts-only method (sid-lsg)")
    p.add_argument("--prompt-column", default="prompt", help="the prompt column of a .tsv/.csv prompt file (any case; PartiPrompts.tsv: Prompt)")
    p.add_argument("--text-encoder", default=None, help="diffusers pipeline folder with tokenizer/ and text_encoder/ for --prompts (default: --teacher)")
    p.add_argument("--latent-format", default="SD15", choices=[s.comfy_format for s in LATENT_SPACES.values()],
                   help="the teacher's latent format with --prompts (pairs record their own; onestep/latent_spaces.py)")
    p.add_argument("--teacher", required=True, help="diffusers UNet2DConditionModel folder (or a pipeline folder with unet/)")
    p.add_argument("--out", required=True, help="generator file to write (.safetensors)")
    p.add_argument("--latent-lpips", default=None, help="E-LatentLPIPS weights (.safetensors/.pth); not needed with --regression mse")
    p.add_argument("--augment", default="bg", help="E-LatentLPIPS augmentation preset")
    p.add_argument("--checkpoint", default=None, help="trainer checkpoint to write and resume from")
    p.add_argument("--init-from", default=None, help="a generator file G (and its EMA) start from, e.g. the 2-rectified flow for --method instaflow "
                   "(the --teacher folder then gives the architecture; D, if any, is still built from it)")
    p.add_argument("--steps", type=int, required=True, help="optimiser steps in all (a resumed run continues to this count)")
    p.add_argument("--base", default=None, help="generator base written to the file (default: recognised from the UNet's shape)")
    p.add_argument("--num-workers", type=int, default=2, help="DataLoader worker processes")
    p.add_argument("--stats", default=None, help="write the run's speed (ms/step, images/s, peak GPU memory) to this JSON file")
    p.add_argument("--prediction", default=None, help=f"generator output: eps | v | x0 | flow (default: the method's, else {DEFAULT_SPEC.prediction})")
    p.add_argument("--timestep", type=float, default=None, help=f"UNet time input of the single call (default: the method's, else {DEFAULT_SPEC.timestep:g})")
    p.add_argument("--input-convention", default=None, help=f"sigma_z | raw_z (default: the method's, else {DEFAULT_SPEC.input_convention})")
    p.add_argument("--lora-rank", type=int, default=0, help="0: full fine-tune; >0: LoRA rank")
    p.add_argument("--lora-alpha", type=float, default=0.0, help="LoRA alpha (0: = rank)")
    p.add_argument("--gradient-checkpointing", action="store_true", help="recompute activations in backward")
    p.add_argument("--optimizer", default=o.optimizer, choices=["adamw", "adafactor"])
    p.add_argument("--optimizer-d", default=o.optimizer_d, choices=["", "adamw", "adafactor"], help="D's optimiser (default: --optimizer)")
    p.add_argument("--no-foreach", action="store_true", help="AdamW: update one tensor at a time (less peak memory, slower step; Adafactor always works in bounded chunks)")
    p.add_argument("--ema-dtype", default=g.ema_dtype, choices=["float32", "bfloat16"], help="EMA storage (bfloat16: stochastic rounding)")
    p.add_argument("--frozen-dtype", default=GeneratorConfig().frozen_dtype, choices=["float32", "bfloat16"],
                   help="storage of frozen weights: G's base in a LoRA run, sid-lsg's teacher copy (bfloat16 needs --bf16)")
    p.add_argument("--generator-dtype", default=GeneratorConfig().storage_dtype, choices=["float32", "bfloat16"],
                   help="storage of G's trained weights and gradients (bfloat16: stochastic-rounding updates; needs --bf16)")
    p.add_argument("--d-dtype", default=d.storage_dtype, choices=["float32", "bfloat16"],
                   help="storage of D's weights and gradients (bfloat16: stochastic-rounding updates; needs --bf16)")
    p.add_argument("--d-backbone", default=d.backbone, choices=["full", "lora"],
                   help="full: D's copy of the teacher encoder trains (the paper); lora: frozen, with LoRA factors (shares a LoRA G's frozen base)")
    p.add_argument("--d-lora-rank", type=int, default=d.lora_rank, help="D's LoRA rank with --d-backbone lora")
    p.add_argument("--low-memory", action="store_true", help="the measured low-memory settings (training.config.low_memory), over the flags above")
    p.add_argument("--lr-g", type=float, default=None, help=f"generator lr (default {o.lr_g:g}; sid-lsg: 1e-6, the official)")
    p.add_argument("--lr-d", type=float, default=None, help=f"lr of the method's other network, D or ψ (default {o.lr_d:g}; sid-lsg: 1e-6)")
    p.add_argument("--betas", type=float, nargs=2, default=None, help=f"Adam β1 β2 (default {o.betas[0]:g} {o.betas[1]:g}; sid-lsg: 0 0.999)")
    p.add_argument("--weight-decay", type=float, default=o.weight_decay)
    p.add_argument("--grad-accumulation", type=int, default=o.grad_accumulation)
    p.add_argument("--grad-clip", type=float, default=None, help=f"max gradient norm, 0: none (default {o.grad_clip:g}; sid-lsg: 0)")
    p.add_argument("--lr-warmup", type=int, default=None, help=f"linear lr warm-up steps (default: {o.lr_warmup}, or a tenth of a shorter run)")
    p.add_argument("--lr-decay", default="cosine", choices=["constant", "cosine"], help="after the warm-up: cosine to --lr-floor at --steps (as the node), or constant")
    p.add_argument("--lr-floor", type=float, default=o.lr_floor, help="cosine decay's final lr, as a fraction of the lr")
    p.add_argument("--regression", default=None, choices=["elatentlpips", "latentlpips", "mse"],
                   help=f"the regression loss (default: the method's — sid-lsg's recall anchor: mse — else {lo.regression})")
    p.add_argument("--gan-weight", type=float, default=lo.gan_weight, help="λ_GAN (fixed), or the GAN's share of the regression's gradient (adaptive)")
    p.add_argument("--gan-balance", default=lo.gan_balance, choices=["fixed", "adaptive"], help="how --gan-weight weighs the GAN term")
    p.add_argument("--gan-loss", default=lo.gan_loss, choices=list(GAN_LOSSES),
                   help="standard: non-saturating per logit (the paper); relativistic: each fake against its own real pair (same z, c, t, ε)")
    p.add_argument("--d-lead", type=int, default=lo.d_lead_steps, help="D trains alone for this many steps before --warmup-steps ends")
    p.add_argument("--gan-scale-max", type=float, default=lo.gan_scale_max, help="cap of the adaptive GAN weight (proof-scale run 34's best row: 1)")
    p.add_argument("--hold-generator", action="store_true", help="G takes no steps before --warmup-steps (D leads against the start weights; for a run from --init-from weights)")
    p.add_argument("--gan-ramp", type=int, default=lo.gan_ramp_steps, help="G's GAN weight rises from 0 over this many steps after --warmup-steps")
    p.add_argument("--eps-d", type=float, default=o.eps_d, help="Adam ε of D (and SiD's ψ): larger damps the steps of a network whose gradient fell to noise")
    p.add_argument("--betas-d", type=float, nargs=2, default=None, help="D's Adam β1 β2 when they should differ from --betas (default: the method's; diffusion2gan 0.9 0.99)")
    p.add_argument("--lr-d-schedule", default=o.lr_d_schedule, choices=["shared", "constant"],
                   help="D's lr: G's warm-up and decay (shared) or --lr-d from D's first step (constant)")
    p.add_argument("--t-eps", type=float, default=r.t_eps, help="reflow: σ ~ U(t_eps, 1) (the data end left out)")
    p.add_argument("--text-dropout", type=float, default=r.text_dropout, help="reflow: probability of the negative (empty) prompt per item, for CFG on velocities")
    p.add_argument("--data-on-device", default=g.data_on_device, choices=["auto", "always", "never"], help="keep the pairs on the GPU")
    p.add_argument("--warmup-steps", type=int, default=lo.warmup_steps, help="regression-only steps before the GAN")
    p.add_argument("--no-discriminator", action="store_true", help="regression only")
    p.add_argument("--no-z-conditioning", action="store_true")
    p.add_argument("--r1-gamma", type=float, default=d.r1_gamma)
    p.add_argument("--r1-every", type=int, default=d.r1_every)
    p.add_argument("--r1-mode", default=d.r1_mode, choices=["exact", "approx"], help="exact (double backward) or approx (finite differences, low memory)")
    p.add_argument("--single-scale", action="store_true", help="one readout head (the middle block's, or the finest decoder level's)")
    p.add_argument("--d-readout", default=d.readout, choices=list(D_READOUTS),
                   help="D's heads read the teacher encoder's levels, or the whole UNet's decoder levels (the paper's)")
    p.add_argument("--d-mbstd-group", type=int, default=d.mbstd_group,
                   help="D's heads also read the minibatch std of their features over groups of this many samples (0: off)")
    p.add_argument("--no-mix-and-match", action="store_true")
    p.add_argument("--d-real-images", default=d.real_images, metavar="FILE",
                   help="D's real side: real images (a labelled-latents file, its labels the pairs' prompt indices; training/real_images.py) "
                        "instead of the teacher's outputs; needs --no-z-conditioning")
    p.add_argument("--d-t-range", type=int, nargs=2, default=[d.d_t_min, d.d_t_max])
    p.add_argument("--kappa1", type=float, default=sid.kappa1, help="sid-lsg κ1: CFG of the fake score ψ's training prediction")
    p.add_argument("--kappa2", type=float, default=sid.kappa2, help="sid-lsg κ2 = κ3: CFG of ψ in the generator loss")
    p.add_argument("--kappa4", type=float, default=sid.kappa4, help="sid-lsg κ4: CFG of the teacher in the generator loss")
    p.add_argument("--kappa4-t-min", type=int, default=sid.kappa4_t_min,
                   help="sid-lsg: κ4 only at t ≥ this, the teacher unguided below (0: every t, the official)")
    p.add_argument("--alpha", type=float, default=sid.alpha, help="sid-lsg α of the generator loss (1: the released SD runs)")
    p.add_argument("--sid-t-range", type=int, nargs=2, default=[sid.t_min, sid.t_max], help="sid-lsg: ψ and the generator loss diffuse to t in this range")
    p.add_argument("--prompt-dropout", type=float, default=sid.prompt_dropout, help="sid-lsg: ψ's blanked prompts when κ1 or κ2 ≠ 1")
    p.add_argument("--latent-size", type=int, nargs=2, default=[sid.latent_height, sid.latent_width],
                   help="sid-lsg: the generator's noise height and width in latent cells (SD1.5 512²: 64 64)")
    p.add_argument("--fake-lora-rank", type=int, default=sid.fake_lora_rank, help="sid-lsg: 0 trains all of ψ; >0 LoRA on a frozen copy")
    p.add_argument("--fake-dtype", default=sid.fake_dtype, choices=["float32", "bfloat16"], help="sid-lsg: storage of ψ's trained weights (bfloat16 needs --bf16)")
    p.add_argument("--sid-reduction", default=sid.reduction, choices=["sum", "mean"], help="sid-lsg: losses summed over pixels (the official) or averaged")
    p.add_argument("--fake-steps", type=int, default=sid.fake_steps,
                   help="sid-lsg: the fake score ψ's optimiser steps per generator step (1: the official loop)")
    p.add_argument("--sid-anchor", type=float, default=sid.anchor_weight,
                   help="sid-lsg recall anchor: > 0 trains on --pairs too, adding a --regression term to G's output gradient at this fraction of SiD's norm")
    p.add_argument("--sid-live-anchor", type=float, default=sid.live_anchor_weight,
                   help="sid-lsg live recall anchor (prompts only): > 0 adds the MSE of G to the teacher's own samples, drawn in the loop "
                        "at CFG --kappa4 (or --sid-live-anchor-cfg) from fresh noise, to G's output gradient at this fraction of SiD's norm (not with --sid-anchor)")
    p.add_argument("--sid-live-anchor-items", type=int, default=sid.live_anchor_items,
                   help="sid-lsg live anchor: the first this many prompts of each micro-batch get a teacher sample")
    p.add_argument("--sid-live-anchor-steps", type=int, default=sid.live_anchor_steps,
                   help="sid-lsg live anchor: the teacher sampler's steps (each ×2 teacher calls under CFG, no gradient)")
    p.add_argument("--sid-live-anchor-sampler", default=sid.live_anchor_sampler, choices=LIVE_ANCHOR_SAMPLERS,
                   help="sid-lsg live anchor: the teacher's sampler (dpmpp_2m: second order, fewer steps for the same samples)")
    p.add_argument("--sid-live-anchor-spacing", default=sid.live_anchor_spacing, choices=SPACINGS,
                   help="sid-lsg live anchor: the sampler's timesteps (linspace: DDIM's; exponential: uniform in log sigma)")
    p.add_argument("--sid-live-anchor-cfg", type=float, default=sid.live_anchor_cfg,
                   help="sid-lsg live anchor: the teacher sampler's CFG (0: --kappa4), so SiD's guidance can be set apart from it")
    p.add_argument("--sid-live-gan", type=float, default=sid.live_gan_weight,
                   help="sid-lsg live GAN (prompts only): > 0 trains a discriminator on the live anchor's teacher samples as real and "
                        "adds its loss on G to G's output gradient at this fraction of SiD's norm (D's settings: the --d-* flags)")
    p.add_argument("--sid-live-gan-lr", type=float, default=sid.live_gan_lr, help="sid-lsg live GAN: D's learning rate (0: --lr-d)")
    p.add_argument("--sid-live-gan-start", type=int, default=sid.live_gan_start,
                   help="sid-lsg live GAN: G hears D from this step on (D trains from the first)")
    p.add_argument("--sid-live-gan-hold", action="store_true",
                   help="sid-lsg live GAN: G and the fake score stand still before --sid-live-gan-start, each step then only the "
                        "teacher's samples and D's update, so D leads cheaply")
    p.add_argument("--cuda-graph", action="store_true",
                   help="replay each step as one CUDA graph (one GPU, AdamW, float32 weights; sid-lsg): for small UNets whose step waits on kernel launches")
    p.add_argument("--batch-size", type=int, default=g.batch_size, help="global batch per optimiser step")
    p.add_argument("--ema-decay", type=float, default=g.ema_decay)
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast")
    p.add_argument("--seed", type=int, default=g.seed)
    p.add_argument("--save-every", type=int, default=g.save_every)
    p.add_argument("--log-every", type=int, default=g.log_every)


def config_from_args(a: argparse.Namespace) -> TrainConfig:
    """The typed config the flags describe."""
    config = _config_from_flags(a)
    return low_memory(config) if a.low_memory else config


def generator_spec(a: argparse.Namespace) -> OneStepSpec:
    """The flags' spec; what they leave out comes from the method's own spec (a flow method's x0 = z + v at 1000), else DEFAULT_SPEC."""
    base = getattr(method_class(a.method), "generator_spec", DEFAULT_SPEC)
    pick = lambda flag, default: default if flag is None else flag
    return OneStepSpec(pick(a.prediction, base.prediction), pick(a.timestep, base.timestep), pick(a.input_convention, base.input_convention))


def _config_from_flags(a: argparse.Namespace) -> TrainConfig:
    o, lo, m = OptimConfig(), LossConfig(), METHODS[a.method]
    method = m.optim_defaults  # a flag left out: the method's default (optim_defaults, loss_defaults), else the config's
    lr_g, lr_d, clip = (v if v is not None else method.get(k, getattr(o, k)) for k, v in (("lr_g", a.lr_g), ("lr_d", a.lr_d), ("grad_clip", a.grad_clip)))
    betas = tuple(a.betas) if a.betas is not None else tuple(method.get("betas", o.betas))
    return TrainConfig(
        method=a.method,
        generator=GeneratorConfig(generator_spec(a), a.lora_rank, a.lora_alpha, a.gradient_checkpointing, frozen_dtype=a.frozen_dtype,
                                  storage_dtype=a.generator_dtype),
        optim=OptimConfig(a.optimizer, lr_g, lr_d, betas, a.weight_decay, a.grad_accumulation, clip,
                          optimizer_d=a.optimizer_d, foreach=False if a.no_foreach else None, lr_warmup=default_lr_warmup(a.steps) if a.lr_warmup is None else a.lr_warmup, lr_decay=a.lr_decay,
                          lr_decay_steps=a.steps, lr_floor=a.lr_floor, lr_d_schedule=a.lr_d_schedule,
                          betas_d=tuple(a.betas_d) if a.betas_d is not None else method.get("betas_d"), eps_d=a.eps_d),
        loss=LossConfig(a.regression or m.loss_defaults.get("regression", lo.regression), a.gan_weight, a.warmup_steps, a.gan_balance, d_lead_steps=a.d_lead, gan_loss=a.gan_loss, gan_ramp_steps=a.gan_ramp,
                        gan_scale_max=a.gan_scale_max, hold_generator=a.hold_generator),
        discriminator=DiscriminatorConfig(
            enabled=not a.no_discriminator, z_conditioning=not a.no_z_conditioning, r1_gamma=a.r1_gamma, r1_every=a.r1_every, r1_mode=a.r1_mode,
            multiscale=not a.single_scale, mix_and_match=not a.no_mix_and_match, d_t_min=a.d_t_range[0], d_t_max=a.d_t_range[1],
            storage_dtype=a.d_dtype, backbone=a.d_backbone, lora_rank=a.d_lora_rank, readout=a.d_readout, mbstd_group=a.d_mbstd_group,
            real_images=a.d_real_images,
        ),
        sid=SidConfig(kappa1=a.kappa1, kappa2=a.kappa2, kappa4=a.kappa4, alpha=a.alpha, t_min=a.sid_t_range[0], t_max=a.sid_t_range[1],
                      prompt_dropout=a.prompt_dropout, latent_height=a.latent_size[0], latent_width=a.latent_size[1],
                      fake_lora_rank=a.fake_lora_rank, fake_dtype=a.fake_dtype, reduction=a.sid_reduction,
                      anchor_weight=a.sid_anchor, fake_steps=a.fake_steps, kappa4_t_min=a.kappa4_t_min,
                      live_anchor_weight=a.sid_live_anchor, live_anchor_items=a.sid_live_anchor_items,
                      live_anchor_steps=a.sid_live_anchor_steps, live_anchor_sampler=a.sid_live_anchor_sampler,
                      live_anchor_spacing=a.sid_live_anchor_spacing, live_anchor_cfg=a.sid_live_anchor_cfg,
                      live_gan_weight=a.sid_live_gan, live_gan_lr=a.sid_live_gan_lr,
                      live_gan_start=a.sid_live_gan_start, live_gan_hold=a.sid_live_gan_hold),
        reflow=ReflowConfig(a.t_eps, a.text_dropout),
        batch_size=a.batch_size, ema_decay=a.ema_decay, ema_dtype=a.ema_dtype, bf16=a.bf16, seed=a.seed, save_every=a.save_every, log_every=a.log_every,
        data_on_device=a.data_on_device, cuda_graph=a.cuda_graph,
    )


def start_from_file(trainer, path: str) -> None:
    """G and its EMA start from a generator file's weights; its single call must be the run's: the prediction (a flow for
    InstaFlow), and outside flow specs also the timestep and input convention (e.g. SiD-LSG from a Diffusion2GAN student)."""
    from .export import native_weights

    try:
        sd, meta = format.load_generator(path)
    except (OSError, ValueError) as e:
        raise SystemExit(f"--init-from {path} is not a readable generator file: {str(e).splitlines()[0]}") from None
    spec, name = trainer.config.generator.spec, os.path.basename(path)
    own = meta.spec()
    field = spec.mismatch(own)
    if field == "prediction":
        raise SystemExit(f"--init-from {name} predicts {meta.prediction!r}, this run trains a {spec.prediction!r} generator")
    if field and spec.prediction != "flow":
        raise SystemExit(f"--init-from {name} is a generator for {own.describe()}; this run trains {spec.describe()}: give "
                         f"--timestep {own.timestep:g} --input-convention {own.input_convention}, or start from a file of this run's spec")
    try:
        trainer.start_generator_from(native_weights(trainer.unet, sd))
    except ValueError as e:
        raise SystemExit(f"--init-from {name}: {e}") from None  # e.g. weights of another architecture than --teacher's
    log.info("[onestep] G starts from %s (%s, %d training steps)", os.path.basename(path), meta.method, meta.training_steps)


def load_teacher(path: str):
    """A diffusers UNet2DConditionModel from a UNet folder or a pipeline folder."""
    from diffusers import UNet2DConditionModel

    sub = os.path.join(path, "unet")
    return UNet2DConditionModel.from_pretrained(sub if os.path.isdir(sub) else path)


class StepTimer:
    """Wall time between completed steps (each ends with loss values read back, so the GPU has finished it)."""

    SKIP = 3  # the first steps allocate, autotune and fill the data loader's workers

    def __init__(self):
        self.marks: list[float] = [time.perf_counter()]

    def tick(self) -> None:
        self.marks.append(time.perf_counter())

    def summary(self, global_batch: int, world_size: int) -> dict | None:
        """ms/step (median after SKIP steps), images/s and this process's peak GPU memory; None if too few steps."""
        times = [(b - a) * 1000 for a, b in zip(self.marks, self.marks[1:])][self.SKIP:]
        if not times:
            return None
        ms = statistics.median(times)
        peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else 0.0
        return {"ms_per_step": round(ms, 1), "timed_steps": len(times), "global_batch": global_batch, "world_size": world_size,
                "images_per_s": round(global_batch / ms * 1000, 2), "peak_alloc_gib_rank0": round(peak, 2),
                "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu", "torch": torch.__version__}


def _write_json(path: str, obj: dict) -> None:
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)


def _init_distributed() -> torch.device:
    if "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        return torch.device("cuda")
    return torch.device("cpu")


def _training_data(a: argparse.Namespace, config: TrainConfig, device: torch.device):
    """(dataset, latent format, teacher fingerprint or None, source): teacher pairs, or prompts encoded by the teacher's
    text encoder (cycled to fill a batch when there are fewer)."""
    from .core import PairDataset, atomic, read_prompts
    from .text_encoder import TextEncoderError, encode_prompts, weights_file

    if METHODS[config.method].data_for(config) == PAIRS:
        if not a.pairs:
            raise SystemExit(f"--method {config.method} trains on teacher pairs: give --pairs DIR")
        data = PairDataset(a.pairs)
        return data, data.settings.latent_format, None, os.path.basename(a.pairs.rstrip("/"))
    if not a.prompts:
        raise SystemExit(f"--method {config.method} trains from prompts only: give --prompts FILE (.txt, .tsv or .csv)")
    try:
        data = encode_prompts(a.text_encoder or a.teacher, read_prompts(path=a.prompts, column=a.prompt_column), device)
        teacher_hash = atomic.file_sha256(weights_file(a.teacher))[:16]
    except (TextEncoderError, ValueError) as e:
        raise SystemExit(str(e)) from None
    if len(data) < config.batch_size:
        data = data.repeated(-(-config.batch_size // len(data)) * len(data))
    return data, a.latent_format, teacher_hash, os.path.basename(a.prompts)


def train(a: argparse.Namespace) -> int:
    """Build the run from the flags (training/session.py, as the node does), train (resuming from --checkpoint),
    write the generator (with the teacher's fingerprint from the pairs, or of its weights file)."""
    from .core import latent_lpips_weights
    from .diffusers_unet import DiffusersUNet
    from .session import TrainingSession

    config = config_from_args(a)
    device = _init_distributed()
    data, fmt, teacher_hash, source = _training_data(a, config, device)
    try:
        space = latent_space(fmt)
    except ValueError as e:
        raise SystemExit(f"the training data's latent format: {e}") from None
    unet = DiffusersUNet(load_teacher(a.teacher), latent_scale=space.scale, latent_shift=space.shift)
    elpips = None
    if method_class(config.method).needs_elpips(config):  # methods (or settings) with a LatentLPIPS regression
        if not a.latent_lpips:
            raise SystemExit(f"--regression {config.loss.regression} needs --latent-lpips weights")
        net, encoder, _ = latent_lpips_weights.load(a.latent_lpips)
        elpips = ELatentLPIPS(net, encoder, preset=a.augment)
    session = TrainingSession(unet, config, data, None, elpips, device, resume=True, checkpoint=a.checkpoint)
    trainer = session.trainer
    if a.init_from and trainer.step == 0:  # a resumed run has these weights (trained on) in its checkpoint
        start_from_file(trainer, a.init_from)
    stop = {"now": False}
    timer = StepTimer()
    previous = signal.signal(signal.SIGINT, lambda *_: stop.update(now=True))  # Ctrl-C: checkpoint, then exit
    try:
        result = session.run(a.steps, on_step=lambda step, logs: timer.tick() or stop["now"], num_workers=a.num_workers)
    finally:
        signal.signal(signal.SIGINT, previous)
    speed = timer.summary(config.batch_size, trainer.dist.world_size)
    if speed and trainer.dist.is_main:
        log.info("[onestep] speed: %.1f ms/step (median of %d steps after the first %d), %.2f images/s on %d process(es)",
                 speed["ms_per_step"], speed["timed_steps"], StepTimer.SKIP, speed["images_per_s"], speed["world_size"])
        if a.stats:
            atomic_write(a.stats, lambda tmp: _write_json(tmp, {**speed, "config": config.to_dict(), "steps": result.step}))
    if result.stopped:
        log.info("[onestep] stopped at step %d; run again with the same --checkpoint to resume", result.step)
        return 130
    if trainer.dist.is_main:
        sd = trainer.generator_state_dict()
        base = a.base or bases.base_from_shape(bases.inspect_ldm_unet(sd))
        init = os.path.basename(a.init_from) if a.init_from else None  # provenance: the file G started from
        session.export(a.out, base, space.name, weights=sd, teacher_hash=teacher_hash, notes={"init_from": init} if init else None,
                       source=f"training.cli:{source}" + (f", G from {init}" if init else ""))
        log.info("[onestep] wrote %s after %d steps", a.out, result.step)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(prog="python -m training.cli", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    add_train_arguments(sub.add_parser("train", help="distil a teacher into a one-step generator"))
    a = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        return train(a)
    except atomic.DiskFullError as e:  # the last checkpoint and generator on disk are the previous good ones
        log.error("[onestep] %s", e.strerror)
        return 1
    finally:
        # torchrun: a process group left for the interpreter's exit to tear down can abort the rank (gloo's threads
        # destroyed while joinable: "terminate called without an active exception", SIGABRT after a finished run)
        if dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":
    raise SystemExit(main())
