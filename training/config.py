"""Typed configuration of the Diffusion2GAN trainer (Kang et al., ECCV 2024, "Distilling Diffusion Models into
Conditional GANs"): one frozen dataclass per component, a comment per field, filled in by the CLI and the node.

Defaults the paper does not publish, and why they were chosen:
  - GAN weight, adaptive 0.3: E-LatentLPIPS carries the teacher's ODE mapping (alone it already reaches FID 14.72 in
    the paper's ablation) and the GAN only sharpens it (→ 9.45). A fixed λ_GAN = 0.1 let a confident D pull twice as
    hard as the regression in the proof-scale run of session 4 (the GAN made that student worse, FD 90 → 104); the
    adaptive weight scales the GAN's gradient at G's output to 0.3 × the regression's, whatever D's confidence.
  - lr warm-up 500 steps (lr_schedule.py): without it Adam's first full-size steps undo the teacher initialisation.
  - ε at t=625 (DEFAULT_SPEC below), measured against t=999.
  - R1 γ = 1.0: StyleGAN2's heuristic γ ≈ 2e-4·H·W/batch gives 0.8 for a 64×64 SD1.5 latent with the single
    R1 sample; rounded up, and lazily applied (every 16 steps, the penalty scaled by 16 as in StyleGAN2).
  - D timestep: D sees the latent (in the UNet's x0 space) re-noised to a random t ~ U{d_t_min..d_t_max} =
    U{0..499}, real and fake of a pair with the same t and ε. The teacher UNet that D starts from was trained
    on exactly such x_t, so its features mean something from step one; the random level is Diffusion-GAN's
    instance noise (Wang et al. 2022), which keeps D from separating the distributions trivially; capping at
    t=499 keeps fine detail (what the GAN is for) visible.
  - Warm-up 1,000 regression-only steps: D's first fakes are then already near the data, so D does not win
    trivially at the start.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from onestep.ranges import check_choice, check_range

from .core import DiscreteSchedule, OneStepSpec
from .lr_schedule import DECAYS
from .sid_config import LIVE_ANCHOR_SAMPLERS, STORAGE_DTYPES, SidConfig  # noqa: F401 (re-exported: the trainer's configs in one place)

SEED_MAX = 2**64 - 1  # seeds are what torch.Generator.manual_seed takes (ComfyUI's seed widgets: 0..2^64 − 1)
REGRESSION_LOSSES = ("elatentlpips", "latentlpips", "mse")
GAN_LOSSES = ("standard", "relativistic")  # LossConfig.gan_loss
OPTIMIZERS = ("adamw", "adafactor")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune-no-cudagraphs")  # TrainConfig.compile_mode (torch.compile's)
D_BACKBONES = ("full", "lora")  # discriminator backbone: trained copy of the teacher encoder, or frozen + LoRA
D_READOUTS = ("encoder", "decoder")  # where D's heads read: the encoder's levels, or the whole UNet's decoder levels
FULL_D_STORAGE = "bfloat16"  # low_memory(): storage of a full fine-tune's D (measured in docs/benchmarks.md)
# The generator: ε-prediction at t=625 (σ≈2.5) on sqrt(1−ᾱ)·z, the input ComfyUI's Euler step from σ_625 gives (as
# SiD-LSG runs one step). Measured on the proof-scale benchmark (docs/benchmarks.md, run 5): at t=999 x0 = σ·(z − ε̂)
# multiplies every error of ε̂ by σ≈14.6 and the student reached FD 114.6 after 230 k samples; at t=625 (×2.5) it
# reached 30.2 / 30.4 (two training seeds) after 128–154 k. docs/methods.md has the formulas.
DEFAULT_SPEC = OneStepSpec("eps", 625, "sigma_z")


@dataclass(frozen=True)
class GeneratorConfig:
    """The one-step generator G(z, c): the teacher's UNet run once at the spec's timestep."""

    spec: OneStepSpec = DEFAULT_SPEC  # prediction type, timestep and input convention of the single call
    lora_rank: int = 0  # 0: full fine-tune; >0: train LoRA adapters of this rank on attention/ff, base frozen
    lora_alpha: float = 0.0  # LoRA scale numerator (scale = alpha/rank); 0 means alpha = rank (scale 1)
    gradient_checkpointing: bool = False  # recompute activations in backward (less memory, ~30 % slower)
    # Storage of G's frozen weights (a LoRA run's base): "bfloat16" halves them (1.7 GB instead of 3.4 for SD1.5);
    # the forward then computes in bf16 anyway, so it needs bf16 autocast (TrainConfig.bf16). Trained weights stay fp32.
    frozen_dtype: str = "float32"
    # Storage of G's trained weights and gradients: "bfloat16" halves them (1.7 + 1.7 GB instead of 3.4 + 3.4 for a
    # full SD1.5 fine-tune); each optimiser update is computed in float32 a chunk at a time and rounded back
    # stochastically (training/rounding.py), as a bf16 D or fake score. Needs bf16 autocast.
    storage_dtype: str = "float32"

    def __post_init__(self) -> None:
        check_range("lora_rank", self.lora_rank, 0, integer=True)
        check_range("lora_alpha", self.lora_alpha, 0.0)
        for name in ("frozen_dtype", "storage_dtype"):
            if getattr(self, name) not in STORAGE_DTYPES:
                raise ValueError(f"{name} must be one of {STORAGE_DTYPES}, not {getattr(self, name)!r}")


@dataclass(frozen=True)
class OptimConfig:
    """Optimisers of G and D."""

    optimizer: str = "adamw"  # "adamw" | "adafactor" (torch's Adafactor update: factored second moments, low memory; adafactor.py)
    lr_g: float = 1e-5  # generator learning rate (full fine-tune; LoRA wants ~1e-4)
    lr_d: float = 1e-5  # learning rate of the method's other networks (Diffusion2GAN's discriminator)
    betas: tuple[float, float] = (0.9, 0.999)  # Adam β1, β2 (Adafactor uses only β2 as its decay floor; ignored)
    weight_decay: float = 0.0  # decoupled weight decay of both optimisers
    grad_accumulation: int = 1  # micro-batches per optimiser step on each rank
    grad_clip: float = 1.0  # max global gradient norm per optimiser step (0: no clipping)
    optimizer_d: str = ""  # the other networks' optimiser when it should differ from G's ("": the same as `optimizer`)
    # AdamW's multi-tensor ("foreach") update: None lets torch choose (fastest on a GPU, but it holds about one extra
    # copy of the trained weights during the step); False updates one tensor at a time (low memory). Adafactor always
    # updates in bounded chunks of multi-tensor kernels (training/adafactor.py) and ignores it.
    foreach: bool | None = None
    # Schedule of both learning rates (lr_schedule.py): linear warm-up over lr_warmup steps, then "constant" or a
    # "cosine" decay to lr_floor·lr at lr_decay_steps (the node and the CLI set it to the run's step count).
    lr_warmup: int = 500
    lr_decay: str = "constant"
    lr_decay_steps: int = 0
    lr_floor: float = 0.1
    # "shared": the other networks' lr follows G's schedule (warm-up and decay). "constant": theirs stays at lr_d from
    # their first step — a discriminator that starts late (LossConfig.warmup_steps − d_lead_steps) would otherwise
    # start on G's decayed lr, and one that starts with G would spend G's warm-up barely moving.
    lr_d_schedule: str = "shared"
    # Adam β1, β2 of the other networks when they should differ from G's (None: `betas`). With β2 = 0.999 the second
    # moments of D's large early gradients shrink its steps for thousands of steps after its gradients fall
    # (proof-scale run 10: ‖∇D‖ 5–11 while it led, 0.005 after G caught up): Diffusion2GAN's default is (0.9, 0.99)
    # (its optim_defaults, which the CLI and the node apply).
    betas_d: tuple[float, float] | None = None
    # Adam ε of the other networks (D, SiD's ψ). torch's 1e-8 turns even a vanishing gradient into lr-sized steps; a
    # larger ε makes a network whose gradient has fallen to noise step little instead of wandering. Run 24 measured
    # run 22's hypothesis that this keeps a fooled D alive: at 1e-5 D died at the same step (docs/benchmarks.md).
    eps_d: float = 1e-8

    def __post_init__(self) -> None:
        if self.lr_d_schedule not in ("shared", "constant"):
            raise ValueError(f"lr_d_schedule must be 'shared' or 'constant', not {self.lr_d_schedule!r}")
        if self.lr_warmup < 0 or self.lr_decay not in DECAYS or not 0.0 <= self.lr_floor <= 1.0:
            raise ValueError(f"need lr_warmup ≥ 0, lr_decay in {DECAYS} and 0 ≤ lr_floor ≤ 1; got {self.lr_warmup}, {self.lr_decay!r}, {self.lr_floor}")
        for name in (self.optimizer, self.optimizer_d or self.optimizer):
            if name not in OPTIMIZERS:
                raise ValueError(f"optimizer must be one of {OPTIMIZERS}, not {name!r}")
        if self.grad_accumulation < 1:
            raise ValueError(f"grad_accumulation must be ≥ 1, not {self.grad_accumulation}")
        # NaN and negative rates reached torch's optimisers ("Invalid learning rate: nan") or trained on silently
        if not self.eps_d > 0:  # also NaN
            raise ValueError(f"eps_d must be > 0, not {self.eps_d}")
        for name in ("lr_g", "lr_d", "weight_decay", "grad_clip"):
            check_range(name, getattr(self, name), 0.0)
        for name in ("betas", "betas_d"):
            if any(not 0.0 <= beta < 1.0 for beta in getattr(self, name) or ()):
                raise ValueError(f"{name} must be two numbers in [0, 1), not {getattr(self, name)}")


@dataclass(frozen=True)
class LossConfig:
    """L_G = regression(G(z,c), x) + λ_GAN · softplus(−D(c, z, G(z,c))) after the warm-up (paper Eq. 5)."""

    regression: str = "elatentlpips"  # "elatentlpips" | "latentlpips" (one un-augmented draw) | "mse" (latent MSE)
    gan_weight: float = 0.3  # "adaptive": the GAN's share of the regression's gradient at G's output; "fixed": λ_GAN
    warmup_steps: int = 1000  # regression-only steps before the GAN terms (and D updates) start
    # "fixed": λ_GAN = gan_weight. "adaptive": the GAN's gradient at G's output is scaled to gan_weight × the
    # regression's (losses.GeneratorLoss), so a confident D cannot pull G off the teacher's pairs.
    gan_balance: str = "adaptive"
    # G's GAN weight rises linearly from 0 to its value over this many steps after warmup_steps: in proof-scale run
    # 10 a D that had led for 200 steps was fooled within 25 steps of a GAN term switched on at full weight.
    gan_ramp_steps: int = 0
    # D's updates start this many steps before its GAN term reaches G (at warmup_steps − d_lead_steps). A D started
    # together with G's GAN term sat at the constant "everything is fake" answer for hundreds of steps in proof-scale
    # run 6 (d_real = ln 3, d_fake = ln 1.5, ‖∇D‖ ≈ 0.005) while the adaptive weight amplified its noise into G.
    d_lead_steps: int = 0
    # Upper bound of the adaptive weight w (gan_balance "adaptive"): a D whose logits go flat has a near-zero gradient
    # at G's output, and w = gan_weight·‖∇d‖/‖∇GAN‖ then multiplies its noise without bound (2,900 in proof-scale
    # run 9 after D collapsed, the regression loss ×8). 10 never bound in the runs where D was alive (w ≤ 4).
    gan_scale_max: float = 10.0
    # G takes no optimiser steps before warmup_steps (its lr is 0 until then and its schedule counts from there), so D
    # leads against a still G. For a run that starts from a GAN-trained student (init weights): trained on the
    # regression alone while D led, proof-scale run 34's continuation lost its GAN gain (val FD 9.8 → 14.2 in 200 steps).
    hold_generator: bool = False
    # "standard": the paper's non-saturating loss on each logit. "relativistic": the paired relativistic loss (RpGAN,
    # Jolicoeur-Martineau 2019; R3GAN, Huang et al. 2024) on the same (z, c, t, ε) — D: softplus(D(x̂_t) − D(x_t)),
    # G: softplus(D(x_t) − D(x̂_t)), position by position. A one-step student's sample differs from its teacher's pair
    # by far less than samples differ from each other: in the proof-scale probe a D ranked the pair right 99.6 % of
    # the time at t = 0 while a threshold on its logit was right 83 %, so the pairwise margin is the signal to train.
    gan_loss: str = "standard"

    def __post_init__(self) -> None:
        check_choice("gan_loss", self.gan_loss, GAN_LOSSES)
        if self.gan_ramp_steps < 0:
            raise ValueError(f"gan_ramp_steps must be ≥ 0, not {self.gan_ramp_steps}")
        if not self.gan_scale_max > 0:  # (NaN too)
            raise ValueError(f"gan_scale_max must be > 0, not {self.gan_scale_max}")
        check_range("gan_weight", self.gan_weight, 0.0)  # NaN trained a step, then stopped on a NaN 'gan_scale'
        check_range("warmup_steps", self.warmup_steps, 0, integer=True)
        if self.d_lead_steps < 0 or self.d_lead_steps > self.warmup_steps:
            raise ValueError(f"need 0 ≤ d_lead_steps ≤ warmup_steps (D cannot start before step 0), got {self.d_lead_steps}, {self.warmup_steps}")
        if self.hold_generator and self.d_lead_steps != self.warmup_steps:  # else steps where neither G nor D trains
            raise ValueError(f"hold_generator keeps G still while D leads: d_lead_steps must equal warmup_steps, got {self.d_lead_steps}, {self.warmup_steps}")
        if self.gan_balance not in ("fixed", "adaptive") or self.gan_weight < 0:
            raise ValueError(f"gan_balance must be 'fixed' or 'adaptive' with gan_weight ≥ 0, not {self.gan_balance!r}, {self.gan_weight}")
        check_choice("regression loss", self.regression, REGRESSION_LOSSES)


@dataclass(frozen=True)
class DiscriminatorConfig:
    """The conditional diffusion discriminator and the paper's ablation switches (Table 3)."""

    enabled: bool = True  # train a GAN at all (off: E-LatentLPIPS-only distillation)
    z_conditioning: bool = True  # feed the noise z through a zero-initialised conv added after the input conv
    r1_gamma: float = 1.0  # single-sample R1 weight γ (0: no R1)
    r1_every: int = 16  # lazy R1: apply every this many steps (penalty scaled by it)
    r1_mode: str = "exact"  # "exact": ‖∇_x D‖² by double backward (the paper's); "approx": finite differences (below)
    r1_sigma: float = 0.01  # approx R1: ‖∇_x D‖² ≈ (D(x + σn) − D(x))² / σ², n ~ N(0, I) (no double backward: fused attention, far less memory)
    multiscale: bool = True  # readout heads on every scale (off: one head, on the middle block / the finest decoder level)
    # "encoder": D is a copy of the teacher's encoder (input conv, down blocks, middle block), heads on each level's
    # output. "decoder": D is a copy of the whole UNet but its output layers, and its heads read each up block's output
    # (the paper's "readout heads on decoder scales"; at proof scale 2.3x the parameters and 2-3x the compute of the
    # encoder D on the CPU, and its finest heads read full-resolution maps).
    readout: str = "encoder"
    mix_and_match: bool = True  # extra fakes: real latents paired with another item's z and another prompt's c
    d_t_min: int = 0  # D sees x0 re-noised to t ~ U{d_t_min..d_t_max} (model time /1000 for flow models)
    d_t_max: int = 499  # upper end of D's timestep range
    head_channels: int = 64  # hidden width of each readout head
    # > 0: each head also reads the per-position standard deviation of its features over groups of this many samples
    # (ProGAN's minibatch std), so D can tell a batch of too-alike samples from the teacher's; 0: off (per sample). Pick a
    # group that divides the micro-batch: D scores reals, fakes and mixed fakes in one batch, each kind B items.
    mbstd_group: int = 0
    # Storage of D's weights and gradients: "bfloat16" halves both (0.7 + 0.7 GB instead of 1.4 + 1.4 for SD1.5's
    # 351 M-parameter D); each optimiser update is computed in float32 one tensor at a time and rounded back
    # stochastically (training/rounding.py), so steps far below bf16's resolution still count. Needs bf16 autocast.
    storage_dtype: str = "float32"
    # "full": the whole copy of the teacher's encoder trains (the paper). "lora": that copy is frozen and only LoRA
    # factors of rank lora_rank on its attention/feed-forward layers, the readout heads and the z-conv train (the
    # "frozen backbones" of the naive LoRA reference); with a LoRA generator the frozen weights are G's own frozen
    # base, held once in memory.
    backbone: str = "full"
    lora_rank: int = 64  # D's LoRA rank when backbone == "lora"
    # What D calls real: "" the teacher's outputs of the pairs (the paper); a path: real images of the pairs' prompts
    # (training/real_images.py: a labelled-latents file whose labels are the pairs' prompt indices), drawn per item with the fake's prompt, as DMD2's
    # GAN sees data. Real images have no noise z, so this needs z_conditioning off and the standard (unpaired) GAN loss;
    # the regression keeps training on the pairs.
    real_images: str = ""

    def __post_init__(self) -> None:
        check_choice("discriminator backbone", self.backbone, D_BACKBONES)
        check_choice("discriminator readout", self.readout, D_READOUTS)
        if self.backbone == "lora" and self.lora_rank < 1:
            raise ValueError(f"a LoRA discriminator backbone needs lora_rank ≥ 1, not {self.lora_rank}")
        if self.r1_every < 1:
            raise ValueError(f"r1_every must be ≥ 1, not {self.r1_every}")
        if self.mbstd_group < 0:
            raise ValueError(f"mbstd_group must be ≥ 0 (0: off), not {self.mbstd_group}")
        check_range("r1_gamma", self.r1_gamma, 0.0)  # NaN or a negative weight trained D against its own penalty
        if self.r1_mode not in ("exact", "approx") or not self.r1_sigma > 0:
            raise ValueError(f"r1_mode must be 'exact' or 'approx' with r1_sigma > 0, not {self.r1_mode!r}, {self.r1_sigma}")
        if self.storage_dtype not in STORAGE_DTYPES:
            raise ValueError(f"discriminator storage_dtype must be one of {STORAGE_DTYPES}, not {self.storage_dtype!r}")
        if self.real_images and self.z_conditioning:
            raise ValueError("a discriminator on real images needs z_conditioning off: real images have no noise z")
        if not 0 <= self.d_t_min <= self.d_t_max:
            raise ValueError(f"need 0 ≤ d_t_min ≤ d_t_max, got {self.d_t_min}, {self.d_t_max}")


@dataclass(frozen=True)
class ReflowConfig:
    """The reflow method (training/methods/reflow.py): the velocity loss ‖v(X_σ, 1000σ | c) − (x − z)‖² on pairs."""

    # σ ~ U(t_eps, 1): the noise fraction of X_σ = (1 − σ)·x + σ·z. The data end [0, t_eps) is left out (Liu et al.'s
    # code draws its t ~ U(1e-3, 1)); Euler from the noise never queries it, and the noise end σ = 1, where the first
    # (or only) step is taken, is trained.
    t_eps: float = 1e-3
    # Probability that an item's text conditioning is replaced by the dataset's negative (the empty prompt by default),
    # so the velocity model also learns v(·|∅) for classifier-free guidance on velocities (0: no dropout).
    text_dropout: float = 0.1

    def __post_init__(self) -> None:
        if not 0.0 <= self.t_eps < 1.0 or not 0.0 <= self.text_dropout < 1.0:
            raise ValueError(f"need 0 ≤ t_eps < 1 and 0 ≤ text_dropout < 1, got {self.t_eps}, {self.text_dropout}")


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run needs besides the models and the data."""

    # The method (training/methods/: "diffusion2gan", "regression", ...): its networks, phases and losses. Its settings
    # are the sections below (a new method adds its own section).
    method: str = "diffusion2gan"
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)  # G and its parameterization
    optim: OptimConfig = field(default_factory=OptimConfig)  # optimisers
    loss: LossConfig = field(default_factory=LossConfig)  # regression loss, λ_GAN, warm-up
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)  # D and ablation switches
    sid: SidConfig = field(default_factory=SidConfig)  # SiD-LSG: guidance scales, α, ψ
    reflow: ReflowConfig = field(default_factory=ReflowConfig)  # the reflow method's velocity loss
    batch_size: int = 8  # global batch per optimiser step (all ranks × accumulation × micro-batch)
    # EMA of G's trainable weights (ramped up early: min(decay, (1+n)/(10+n))); 0: no EMA (no shadow copy is held,
    # the export is the live weights; the official low-memory SiD-LSG recipe trains without one)
    ema_decay: float = 0.999
    # Storage of the EMA: "bfloat16" halves it (1.7 GB instead of 3.4 for a full SD1.5 fine-tune), updated with
    # seeded stochastic rounding so that updates far below bf16's resolution (1 − decay = 1e-3) still add up in
    # expectation; the exported EMA then has bf16 precision.
    ema_dtype: str = "float32"
    # More averages of G beside ema_decay's, one per decay (e.g. (0.9995,)): the averaging length chosen after the fact
    # by whoever scores them (the proof-scale selection: a long row limited by its steps' noise may want a longer one).
    # Updated and checkpointed with the run, stored in ema_dtype; a generator file holds ema_decay's average.
    ema_extra: tuple[float, ...] = ()
    # The EMA's warm-up ramp min(decay, (1+n)/(10+n)) (training/ema.py); False: the decay from the first update, for a
    # run that starts from trained weights (the ramp caps a 0.999 average at 0.991 over a run's first 1,000 steps)
    ema_ramp: bool = True
    bf16: bool = False  # bfloat16 autocast for forward passes (weights and optimiser states stay float32)
    seed: int = 0  # seeds data order, D heads, noise draws and augmentations
    save_every: int = 500  # checkpoint every this many steps (0: only at the end and on stop)
    log_every: int = 10  # call on_step with fresh loss values every this many steps (0: never)
    # Where the session keeps the pairs: "auto" on a GPU when they take ≤ 1/4 of its memory (batches gathered there,
    # training/device_data.py), "always", or "never" (a DataLoader over the memory-mapped shards).
    data_on_device: str = "auto"
    # torch.compile every UNet block the run calls (training/compile.py): fuses the GroupNorm/elementwise kernels that
    # bound small UNets; the first steps compile (minutes). Not with exact R1 (no double backward in inductor).
    compile_blocks: bool = False
    # torch.compile's mode for those blocks (COMPILE_MODES): "reduce-overhead" also replays each block's kernels as a
    # CUDA graph (a host-bound step: the proof-scale SiD step at batch ≤ 256 spends most of its time launching kernels)
    compile_mode: str = "default"
    # Replay each step as one CUDA graph (training/graph_step.py): for a step bound by kernel launches, not by the GPU
    # (the proof-scale SiD-LSG step: ~80 ms of kernels in a 409 ms step at batch 64). No compile: the capture records
    # one step. Methods whose phases take their draws through Phase.draw (SiD-LSG); one GPU; AdamW; float32 weights.
    # With compile_blocks (modes without CUDA graphs of their own), the capture records the compiled kernels: the warm-up
    # steps before it compile every variant and tune its kernels, so the replay is the fused kernels without the host.
    cuda_graph: bool = False
    # Every network the step runs with its 4-D weights in channels_last (NHWC), so convolutions take and give NHWC
    # activations — the layout of cuDNN's 16-bit tensor-core kernels, which otherwise convert NCHW around each call.
    # Speed only (the same arithmetic up to the kernels' summation order); measured before use (bench_proof_scale_train
    # --channels-last).
    channels_last: bool = False

    def __post_init__(self) -> None:
        check_range("batch_size", self.batch_size, 1, integer=True)
        check_range("seed", self.seed, 0, SEED_MAX, integer=True)
        check_range("save_every", self.save_every, 0, integer=True)
        check_range("log_every", self.log_every, 0, integer=True)
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), not {self.ema_decay}")
        if any(not 0.0 < d < 1.0 for d in self.ema_extra) or len(set(self.ema_extra)) < len(self.ema_extra) or self.ema_decay in self.ema_extra:
            raise ValueError(f"ema_extra needs distinct decays in (0, 1) other than ema_decay {self.ema_decay}, not {list(self.ema_extra)}")
        if self.data_on_device not in ("auto", "always", "never"):
            raise ValueError(f"data_on_device must be 'auto', 'always' or 'never', not {self.data_on_device!r}")
        if self.ema_dtype not in STORAGE_DTYPES:
            raise ValueError(f"ema_dtype must be one of {STORAGE_DTYPES}, not {self.ema_dtype!r}")
        if self.generator.frozen_dtype != "float32" and not self.bf16:
            raise ValueError(f"frozen_dtype={self.generator.frozen_dtype!r} needs bf16 autocast (bf16=True)")
        if self.generator.storage_dtype != "float32" and not self.bf16:
            raise ValueError(f"generator storage_dtype={self.generator.storage_dtype!r} needs bf16 autocast (bf16=True)")
        if self.discriminator.storage_dtype != "float32" and not self.bf16:
            raise ValueError(f"discriminator storage_dtype={self.discriminator.storage_dtype!r} needs bf16 autocast (bf16=True)")
        if self.sid.fake_dtype != "float32" and not self.bf16:
            raise ValueError(f"sid fake_dtype={self.sid.fake_dtype!r} needs bf16 autocast (bf16=True)")
        if self.compile_mode not in COMPILE_MODES:
            raise ValueError(f"compile_mode must be one of {COMPILE_MODES}, not {self.compile_mode!r}")
        if self.cuda_graph:
            self._check_cuda_graph()
        d = self.discriminator
        if self.compile_blocks and self.method in ("diffusion2gan", "instaflow-gan") and d.enabled and d.r1_gamma > 0 and d.r1_mode == "exact":
            raise ValueError("compile_blocks cannot run exact R1 (torch.compile has no double backward): "
                             "set r1_gamma 0 or r1_mode 'approx'")

    def _check_cuda_graph(self) -> None:
        """What a CUDA-graph step cannot do, refused by name (the method and the device are the engine's to check)."""
        o = self.optim
        if self.compile_blocks and self.compile_mode == "reduce-overhead":  # a graph cannot be captured inside a capture
            raise ValueError("cuda_graph already replays the whole step, compiled blocks included: compile it in mode "
                             "'default' or 'max-autotune-no-cudagraphs', not 'reduce-overhead' (CUDA graphs of its own)")
        if o.optimizer != "adamw" or o.optimizer_d not in ("", "adamw"):
            raise ValueError("cuda_graph needs AdamW for every network (its capturable form keeps the optimiser on the GPU)")
        stored = {"generator storage_dtype": self.generator.storage_dtype, "sid fake_dtype": self.sid.fake_dtype,
                  "discriminator storage_dtype": self.discriminator.storage_dtype, "ema_dtype": self.ema_dtype}
        for name, dtype in stored.items():
            if dtype != "float32":
                raise ValueError(f"cuda_graph needs float32 weights ({name} is {dtype!r}: its stochastic rounding draws outside the graph)")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready nested dict (the spec as its fields)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Inverse of to_dict."""
        g = dict(d.get("generator", {}))
        if "spec" in g:
            s = dict(g["spec"])
            s["schedule"] = DiscreteSchedule(**s.get("schedule", {}))
            g["spec"] = OneStepSpec(**s)
        o = dict(d.get("optim", {}))
        for key in ("betas", "betas_d"):
            if o.get(key) is not None:
                o[key] = tuple(o[key])
        rest = {k: v for k, v in d.items() if k not in ("generator", "optim", "loss", "discriminator", "sid", "reflow")}
        if "ema_extra" in rest:
            rest["ema_extra"] = tuple(rest["ema_extra"])
        return cls(
            generator=GeneratorConfig(**g), optim=OptimConfig(**o), loss=LossConfig(**d.get("loss", {})),
            discriminator=DiscriminatorConfig(**d.get("discriminator", {})), sid=SidConfig(**d.get("sid", {})),
            reflow=ReflowConfig(**d.get("reflow", {})), **rest,
        )


def default_lr_warmup(steps: int) -> int:
    """The lr warm-up of a run of `steps` steps when none is given: OptimConfig's 500 steps, or a tenth of a shorter run
    (a few-step trial run still moves)."""
    return min(OptimConfig.lr_warmup, steps // 10)


def low_memory(config: TrainConfig) -> TrainConfig:
    """The low-memory variant of a config, as measured in docs/benchmarks.md (issue 5): Adafactor for G in a full
    fine-tune (its EMA then stored in bf16) and for a fully trained D, approximated R1 (no double backward) and
    bf16 autocast. A full fine-tune keeps the paper's fully trained D; a LoRA run gives D a frozen backbone with
    LoRA factors that shares G's frozen base, stored in bf16 (one copy of the teacher's weights in memory), and keeps
    the configured optimiser (AdamW) for G's and D's few factors, whose states are small.
    SiD-LSG (issue 16): frozen weights are stored in bf16 in a full fine-tune too (its frozen teacher φ is a whole
    copy); a full fine-tune stores the fake score ψ's weights in bf16 (Adafactor, stochastic rounding), a LoRA run
    gives ψ LoRA factors of G's rank on the shared bf16 base (unless a ψ rank is set). G's own trained weights and
    the EMA's existence are left to the caller (GeneratorConfig.storage_dtype, TrainConfig.ema_decay = 0)."""
    lora = config.generator.lora_rank > 0
    d, s = config.discriminator, config.sid
    if config.method == "sid-lsg":
        s = dataclasses.replace(s, fake_lora_rank=s.fake_lora_rank or config.generator.lora_rank) if lora else dataclasses.replace(s, fake_dtype="bfloat16")
    frozen = "bfloat16" if lora or config.method == "sid-lsg" else config.generator.frozen_dtype
    return dataclasses.replace(
        config,
        sid=s,
        generator=dataclasses.replace(config.generator, frozen_dtype=frozen),
        optim=dataclasses.replace(config.optim, optimizer=config.optim.optimizer if lora else "adafactor",
                                  optimizer_d=config.optim.optimizer_d if lora else "adafactor"),
        discriminator=dataclasses.replace(d, r1_mode="approx", backbone="lora" if lora else d.backbone,
                                          storage_dtype=d.storage_dtype if lora else FULL_D_STORAGE),
        ema_dtype=config.ema_dtype if lora else "bfloat16", bf16=True,
    )
