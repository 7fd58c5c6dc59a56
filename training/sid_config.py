"""SiD-LSG's configuration (training/methods/sid_lsg.py), beside the trainer's others in training/config.py (which
re-exports it): the guidance scales, the fake score ψ, and the pack's own additions (recall anchors, live GAN)."""
from __future__ import annotations

from dataclasses import dataclass

from onestep.ranges import check_choice, check_range
from onestep.schedule import SPACINGS

STORAGE_DTYPES = ("float32", "bfloat16")  # trained weights' storage, every network's (training/config.py imports it)
LIVE_ANCHOR_SAMPLERS = ("ddim", "dpmpp_2m")  # SidConfig.live_anchor_sampler (training/methods/sid_lsg.TeacherSampler)


@dataclass(frozen=True)
class SidConfig:
    """SiD-LSG (Zhou et al., "Guided Score identity Distillation"; training/methods/sid_lsg.py): the fake score ψ, the
    guidance scales of long-and-short guidance (LSG) and the generator loss's α. Defaults are the released SD1.5 runs'
    (run_sid.sh): κ1 = κ2 = κ3 = κ4 = 1.5 (their best FID; 2 balances FID and CLIP, 4.5 is best CLIP), α = 1, ψ's
    timesteps 20..979, 10 % prompt dropout, losses summed over pixels. The generator itself is GeneratorConfig.spec (ε at
    t_init = 625, sigma_z), ψ's learning rate OptimConfig.lr_d; the method's optimiser defaults (Adam β = (0, 0.999),
    lr 1e-6, no gradient clipping: SidLSG.optim_defaults) are what the CLI and the node set."""

    kappa1: float = 1.5  # κ1: CFG of ψ's own training prediction (ψ learns the guided score of G's samples)
    kappa2: float = 1.5  # κ2 = κ3: CFG of ψ when it is evaluated in the generator loss
    kappa4: float = 1.5  # κ4: CFG of the frozen teacher φ in the generator loss
    alpha: float = 1.0  # α of the generator loss (1: the released SD scripts; 1.2: EDM-SiD)
    t_min: int = 20  # ψ and the generator loss diffuse x_g to t ~ U{t_min..t_max}
    t_max: int = 979  # (the official randint(20, 980))
    prompt_dropout: float = 0.1  # share of ψ's training prompts replaced by the empty prompt, only when κ1 ≠ 1 or κ2 ≠ 1
    latent_height: int = 64  # the generator's noise [C, H, W] (64×64: SD1.5 at 512²)
    latent_width: int = 64
    fake_lora_rank: int = 0  # 0: ψ is a trained full copy of the teacher; >0: LoRA of this rank on a frozen copy (shares φ's weights)
    # Storage of ψ's trained weights and gradients: "bfloat16" halves them, with stochastic-rounding updates
    # (training/rounding.py); needs bf16 autocast.
    fake_dtype: str = "float32"
    # Both losses per item: "sum" over C, H, W (the official: Adam's ε = 1e-8 and the lr then act as in the released
    # runs) or "mean" (C·H·W times smaller: loss values and gradient norms that do not grow with the resolution).
    reduction: str = "sum"
    # Recall anchor (ours; DMD's regression loss, Yin et al. 2024, in SiD's output-gradient form): > 0 trains on
    # teacher pairs, and G's gradient at its output gets a regression term d(G(z_pair, c), x_teacher) (LossConfig.regression)
    # rescaled per micro-batch to this fraction of the SiD gradient's norm there. 0: off (data-free, prompts only).
    anchor_weight: float = 0.0
    # ψ's optimiser steps per generator step (1: the official loop). More lets ψ track G's moving distribution more
    # closely before G follows its score (DMD2's two-time-scale rule, Yin et al. 2024, used 5 without a regression loss).
    fake_steps: int = 1
    # κ4 only at t ≥ this (ours, 0 = every t, the official): below it φ is unguided in the generator loss (a guidance
    # interval on the distillation side; docs/methods.md has the toy's measurements).
    kappa4_t_min: int = 0
    # Live recall anchor (ours): G(z_a, c) regressed by MSE on φ's own samples from fresh noise z_a (its sampler at CFG
    # κ4), drawn in the loop, at this fraction of the SiD gradient's norm (as anchor_weight): still prompts-only.
    live_anchor_weight: float = 0.0
    # The first this many items of each micro-batch get a teacher sample (capped at the micro-batch): each costs
    # live_anchor_steps sampler steps of φ (×2 under CFG), without gradient.
    live_anchor_items: int = 8
    # The teacher sampler's steps; the sampler "ddim" (= Euler in σ space for ε, the proof-scale teacher row's) or
    # "dpmpp_2m" (DPM-Solver++(2M), onestep/dpm_solver.py: second order, fewer steps for the same samples).
    live_anchor_steps: int = 25
    live_anchor_sampler: str = "ddim"
    # ... at these timesteps: "linspace" (DDIM's, above) or "exponential" (uniform in log σ; onestep.schedule).
    live_anchor_spacing: str = "linspace"
    # ... at this CFG (0: κ4, the scale SiD's loss guides φ by). Apart from κ4, SiD's guidance can be lowered (guided
    # SiD's end point is sharper than the CFG sampler's samples: less recall) while the anchor keeps the sampler's.
    live_anchor_cfg: float = 0.0
    # Live GAN (ours): Diffusion2GAN's conditional diffusion GAN on the live anchor's pairs (z_a, φ's sample), so still
    # prompts-only. > 0: a discriminator D (DiscriminatorConfig) learns φ's samples as real, G(z_a, c) as fake, and G's
    # gradient at G(z_a, c) gets D's non-saturating loss rescaled to this fraction of the SiD gradient's norm.
    live_gan_weight: float = 0.0
    live_gan_lr: float = 0.0  # D's learning rate (0: OptimConfig.lr_d, ψ's)
    # G's GAN term from this step of the run on (D trains from the first): a fresh D's gradient, rescaled to its share
    # of SiD's, would push G by noise at full strength.
    live_gan_start: int = 0
    # ... and before that step G stands still (with ψ): the step is the live pairs and D's update alone, a fraction of
    # a SiD step, so D can lead long enough not to be fooled at once (a D that led 300 steps beside a moving G was
    # fooled within 100 steps of G hearing it, docs/benchmarks.md).
    live_gan_hold: bool = False

    @property
    def anchor_cfg(self) -> float:
        """The live anchor's sampler CFG: live_anchor_cfg, or κ4 where it is 0."""
        return self.live_anchor_cfg or self.kappa4

    @property
    def live_samples(self) -> bool:
        """Whether φ samples live targets each step (the live anchor's regression, the live GAN's real side, or both)."""
        return self.live_anchor_weight > 0 or self.live_gan_weight > 0

    def __post_init__(self) -> None:
        check_range("anchor_weight", self.anchor_weight, 0.0)
        check_range("live_anchor_weight", self.live_anchor_weight, 0.0)
        check_range("live_gan_weight", self.live_gan_weight, 0.0)
        check_range("live_gan_lr", self.live_gan_lr, 0.0)
        check_range("live_gan_start", self.live_gan_start, 0, integer=True)
        if self.live_gan_hold and (self.live_gan_weight <= 0 or self.live_gan_start < 1):
            raise ValueError(f"live_gan_hold holds G while the live GAN's D leads: it needs live_gan_weight > 0 and live_gan_start ≥ 1 "
                             f"(got {self.live_gan_weight:g} and {self.live_gan_start})")
        check_range("live_anchor_items", self.live_anchor_items, 1, integer=True)
        check_range("live_anchor_steps", self.live_anchor_steps, 1, integer=True)
        check_range("live_anchor_cfg", self.live_anchor_cfg, 0.0)
        check_choice("live_anchor_sampler", self.live_anchor_sampler, LIVE_ANCHOR_SAMPLERS)
        check_choice("live_anchor_spacing", self.live_anchor_spacing, SPACINGS)
        if self.anchor_weight > 0 and self.live_samples:
            raise ValueError(f"one recall anchor at a time: anchor_weight {self.anchor_weight:g} (teacher pairs) and "
                             f"live_anchor_weight {self.live_anchor_weight:g} / live_gan_weight {self.live_gan_weight:g} "
                             "(teacher samples drawn in the loop) are both on")
        check_range("kappa4_t_min", self.kappa4_t_min, 0, 1000, integer=True)
        check_range("fake_steps", self.fake_steps, 1, integer=True)
        for name in ("kappa1", "kappa2", "kappa4", "alpha"):  # NaN stopped at a NaN loss, or (κ4) was written into the file
            check_range(name, getattr(self, name))
        if not 0 <= self.t_min <= self.t_max:
            raise ValueError(f"need 0 ≤ t_min ≤ t_max, got {self.t_min}, {self.t_max}")
        if not 0.0 <= self.prompt_dropout <= 1.0:
            raise ValueError(f"prompt_dropout must be in [0, 1], not {self.prompt_dropout}")
        if self.latent_height < 1 or self.latent_width < 1 or self.fake_lora_rank < 0:
            raise ValueError(f"need a positive latent size and fake_lora_rank ≥ 0, got {self.latent_height}×{self.latent_width}, {self.fake_lora_rank}")
        if self.fake_dtype not in STORAGE_DTYPES:
            raise ValueError(f"fake_dtype must be one of {STORAGE_DTYPES}, not {self.fake_dtype!r}")
        if self.reduction not in ("sum", "mean"):
            raise ValueError(f"reduction must be 'sum' or 'mean', not {self.reduction!r}")

    @property
    def uses_unconditional(self) -> bool:
        """Whether any CFG needs the empty prompt's conditioning."""
        return (self.kappa1 != 1.0 or self.kappa2 != 1.0 or self.kappa4 != 1.0
                or (self.live_samples and self.anchor_cfg != 1.0))
