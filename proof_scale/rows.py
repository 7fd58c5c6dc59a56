"""The distillation rows of the proof-scale benchmark: what each row trains, as a plan (a flat JSON-able dict) and
the trainer configuration it becomes.

Base rows (the paper's regression-loss ablation, Kang et al. 2024 Table 3, and the full method):
  regression_mse, regression_latentlpips, regression_elatentlpips  — regression only
  diffusion2gan                                                    — E-LatentLPIPS + conditional diffusion GAN
A variant is a base row with settings changed, named `BASE@key=value:key=value` (e.g.
`diffusion2gan@timestep=625` or `diffusion2gan@gan_balance=fixed:gan_weight=0.1`): the parameterisation and GAN
studies run through the same code as the table's rows, in their own run folders. Every key of a plan can be set;
`init_from=ROW` starts G from a finished row's selected weights (e.g. Diffusion2GAN's GAN stage from its regression
twin: `diffusion2gan@init_from=regression_elatentlpips:gan_warmup=0`).

Prompts-only rows (SiD-LSG, training/methods/sid_lsg.py: no teacher pairs; the class prompts of the context table and
random noise, its empty row for CFG), outside the table's ablation and its `all` stage:
  sid_lsg              κ1 = κ2 = κ3 = κ4 = the teacher row's CFG (teacher_eval.json)
  sid_lsg_teacher_cfg  the LSG ablation: κ1 = κ2 = κ3 = 1, κ4 = the teacher's CFG (guidance in the teacher only)
with their own settings (SID_ROW_DEFAULTS; `sid_lsg@kappa=2` sets κ1, κ2 and κ4 at once) beside the scale's shared ones;
`sid_lsg@anchor=0.2:regression=latentlpips` adds the recall anchor (a regression on the teacher pairs, SidConfig);
`sid_lsg_teacher_cfg@live_anchor=1:live_anchor_items=8` the live one (on the teacher's samples drawn in the loop: still no pairs).
Rectified-flow rows (issue 17, InstaFlow; run by name, not part of `all` or the table above; proof_scale/flow.py):
  reflow_2rf  — the teacher's UNet as a velocity model on the teacher's pairs (method reflow), scored at 1, 2, 4 Euler steps
  instaflow   — one step x0 = z + v(z, 1000) from reflow_2rf's weights on pairs of the 2-RF's own Euler ODE (stage pairs-2rf);
                `instaflow@gan=true` adds Diffusion2GAN's GAN term (method instaflow-gan; the GAN keys as for diffusion2gan rows)
"""
from __future__ import annotations

import hashlib
import re

from training.config import DiscriminatorConfig, GeneratorConfig, LossConfig, OptimConfig, ReflowConfig, SidConfig, TrainConfig
from training.core import OneStepSpec
from training.methods.diffusion2gan import Diffusion2GAN
from training.methods.reflow import FLOW_SPEC
from training.methods.sid_lsg import SidLSG

from .data import SIZE

BASE_ROWS: dict[str, tuple[str, bool]] = {  # row → (regression loss, GAN on)
    "diffusion2gan": ("elatentlpips", True),
    "regression_mse": ("mse", False),
    "regression_latentlpips": ("latentlpips", False),
    "regression_elatentlpips": ("elatentlpips", False),
}
DISTILL_ROWS = tuple(BASE_ROWS)  # the table's distillation rows; variants ROW@key=value:... run as distill-VARIANT
ROWS = ("teacher", *DISTILL_ROWS)  # the rows of the report's table
# The rows' shared settings (issue 14; measured in docs/benchmarks.md): warm-up then cosine decay of lr, the GAN's
# gradient at G's output a fixed fraction of the regression's (adaptive), ε at t=625 (4× lower FD than t=999 in run 5).
ROW_DEFAULTS = {
    "steps": 6000, "batch": 256, "lr": 1e-4, "lr_warmup": 500, "lr_decay": "cosine", "lr_floor": 0.1, "gan_warmup": 1000,
    "gan_weight": 0.3, "gan_balance": "adaptive", "timestep": 625, "ema_decay": 0.999, "r1_gamma": 1.0, "r1_every": 16,
    "lr_d_ratio": 1.0, "d_t_max": 499, "seed": 0,
}


def _flag(value: str) -> bool:
    """A plan's true/false setting."""
    return value == "true"


PLAN_TYPES = {  # the settable keys of a plan and how a variant's text value is read
    "steps": int, "batch": int, "lr": float, "lr_warmup": int, "lr_decay": str, "lr_floor": float, "regression": str, "gan": _flag,
    "gan_warmup": int, "gan_weight": float, "gan_balance": str, "timestep": int, "ema_decay": float, "r1_gamma": float,
    "r1_every": int, "lr_d_ratio": float, "d_t_max": int, "seed": int,
    "init_from": str,  # a finished row whose selected weights G (and its EMA) start from; D still from the teacher
    # D settings read only when a plan sets them (plans written before they existed stay comparable on resume)
    "d_lead": int, "d_t_min": int, "mix_and_match": _flag, "z_conditioning": _flag,
    "gan_loss": str, "lr_d_schedule": str,  # "standard" | "relativistic"; "shared" | "constant" (training/config.py)
    "gan_ramp": int, "d_beta1": float, "d_beta2": float,  # LossConfig.gan_ramp_steps; D's Adam β (OptimConfig.betas_d)
    "d_eps": float,  # D's Adam ε (OptimConfig.eps_d)
    "gan_scale_max": float,  # LossConfig.gan_scale_max (the adaptive weight's cap; `inf`: none, as before the engine)
    "hold_g": _flag,  # LossConfig.hold_generator (G still until gan_warmup: D leads against the init weights)
    "d_readout": str,  # "encoder" | "decoder": where D's heads read (DiscriminatorConfig.readout)
    "d_mbstd": int,  # D's heads also read the minibatch std over groups of this many samples (DiscriminatorConfig.mbstd_group)
    "d_backbone": str, "d_lora_rank": int,  # "full" | "lora": D's teacher encoder trained, or frozen with LoRA (DiscriminatorConfig)
    # "pairs" | "images": what D calls real — the teacher's outputs (the paper), or the training split's images of the same
    # class (DiscriminatorConfig.real_images; needs z_conditioning=false)
    "d_real": str,
    "d_real_limit": int,  # d_real=images: the first this many training images only (default: all the data folder holds)
    "compile": _flag,  # TrainConfig.compile_blocks (speed only; read only when a plan sets it)
    "compile_mode": str,  # TrainConfig.compile_mode, e.g. reduce-overhead (CUDA graphs of the compiled blocks)
    "channels_last": _flag,  # TrainConfig.channels_last: NHWC weights and activations (speed only)
    # more EMA decays beside ema_decay, each scored at every selection point (TrainConfig.ema_extra), e.g. 0.999/0.9997
    # ("/": a comma separates stages on the command line)
    "ema_select": lambda v: [float(x) for x in re.split(r"[/,]", str(v))],
    "ema_ramp": _flag,  # TrainConfig.ema_ramp (false: a row carried on from trained weights)
    # flow rows only (FLOW_ROWS):
    "method": str,  # the training method (training/methods/)
    "data": str,  # the pairs folder of the work folder it trains on: "pairs" (the teacher's) or "pairs_2rf" (the 2-RF's)
    "t_eps": float, "text_dropout": float,  # reflow: σ ~ U(t_eps, 1); the empty prompt's share of the conditioning
    "select_steps": int,  # Euler steps of the model-selection samples
    "score_steps": lambda v: [int(x) for x in str(v).split(",")],  # Euler step counts the row is scored at (the last is its main row)
    "sample_cfg": float,  # CFG on velocities when sampling (1: none; the pairs' CFG is baked into the couplings)
}
# The rectified-flow rows (issue 17) and their settings beyond the scale's row defaults. The teacher pairs carry the
# teacher's CFG, so the flows sample at CFG 1 and reflow needs no text dropout here (a variant can set both).
FLOW_ROWS: dict[str, dict] = {
    "reflow_2rf": {"method": "reflow", "data": "pairs", "regression": "mse", "t_eps": 1e-3, "text_dropout": 0.0, "select_steps": 4,
                   "score_steps": [1, 2, 4], "sample_cfg": 1.0},
    "instaflow": {"method": "instaflow", "data": "pairs_2rf", "regression": "elatentlpips", "init_from": "reflow_2rf", "select_steps": 1,
                  "score_steps": [1], "sample_cfg": 1.0},
}


TEACHER_CFG = "teacher"  # a κ of a prompts row's definition that takes the teacher row's CFG
SID_ROWS: dict[str, dict] = {  # prompts-only rows → their guidance scales
    "sid_lsg": {"kappa1": TEACHER_CFG, "kappa2": TEACHER_CFG, "kappa4": TEACHER_CFG},
    "sid_lsg_teacher_cfg": {"kappa1": 1.0, "kappa2": 1.0, "kappa4": TEACHER_CFG},
}
# The scale's settings a SiD row shares with the table's rows (steps, batch, schedule, EMA, seed, ε at t_init = timestep)
SID_SHARED = ("steps", "batch", "lr_warmup", "lr_decay", "lr_floor", "timestep", "ema_decay", "lr_d_ratio", "seed")
# A SiD row's own defaults: the released runs' α, ψ's timesteps and prompt dropout (training.config.SidConfig), the
# official Adam β = (0, 0.999) without gradient clipping, and EDM-SiD's small-scale learning rate (CIFAR-10, batch 256:
# 1e-5) for G and ψ.
SID_ROW_DEFAULTS = {"lr": 1e-5, "alpha": 1.0, "t_min": 20, "t_max": 979, "prompt_dropout": 0.1, "beta1": 0.0, "grad_clip": 0.0}
# A SiD row's arithmetic (key `precision`): bf16 autocast (the pipeline's default on a GPU), float32 with TF32 in
# matmuls and convolutions (the pipeline's global setting), or float32 with TF32 off (the released SiD-LSG runs': G's
# signal y_real − y_fake is a small difference of two networks' outputs; benchmarks/probe_sid_precision.py measures it).
PRECISIONS = ("bf16", "tf32", "fp32")


def _precision(value: str) -> str:
    if value not in PRECISIONS:
        raise ValueError(f"precision={value!r}: one of {', '.join(PRECISIONS)}")
    return value


SID_D_KEYS = ("d_t_min", "d_t_max", "d_mbstd", "r1_gamma", "r1_every", "mix_and_match", "z_conditioning")
SID_PLAN_TYPES = {
    **{k: PLAN_TYPES[k] for k in (*SID_SHARED, "lr", "init_from")}, "alpha": float, "t_min": int, "t_max": int, "prompt_dropout": float,
    "beta1": float, "grad_clip": float, "kappa1": float, "kappa2": float, "kappa4": float,
    "kappa": float,  # κ1 = κ2 = κ4 at once
    "ema_select": PLAN_TYPES["ema_select"], "ema_ramp": PLAN_TYPES["ema_ramp"],
    "compile": PLAN_TYPES["compile"], "compile_mode": PLAN_TYPES["compile_mode"],
    "cuda_graph": _flag,  # TrainConfig.cuda_graph: each step replayed as one CUDA graph (speed only)
    "channels_last": PLAN_TYPES["channels_last"],
    # the recall anchor (SidConfig.anchor_weight): > 0 trains on the teacher pairs too, with this regression loss
    "anchor": float, "regression": str,
    "fake_steps": int,  # ψ's steps per G step (SidConfig.fake_steps; read only when a plan sets it)
    # micro-batches per step (OptimConfig.grad_accumulation; read only when a plan sets it): the same batch in less
    # memory, so two large rows can share one GPU (live_anchor_items counts per micro-batch)
    "grad_accumulation": int,
    "kappa4_t_min": int,  # κ4 only at t ≥ this (SidConfig.kappa4_t_min; read only when a plan sets it)
    # the live recall anchor (SidConfig.live_anchor_*; read only when a plan sets them): > 0 regresses G on the teacher's
    # own samples drawn in the loop from the row's prompts (no pairs), for the first live_anchor_items of each micro-batch
    "live_anchor": float, "live_anchor_items": int, "live_anchor_steps": int, "live_anchor_sampler": str,
    "live_anchor_spacing": str, "live_anchor_cfg": float,
    # the live GAN (SidConfig.live_gan_*: D on the teacher's live samples as real; its other settings DiscriminatorConfig's)
    "live_gan": float, "live_gan_lr": float, "live_gan_start": int,
    "live_gan_hold": _flag,  # true: G and ψ stand still while D leads (before live_gan_start)
    # the live GAN's D (DiscriminatorConfig; read only when a plan sets them, else its defaults: t ≤ 499, R1 1 every 16,
    # mix-and-match and z-conditioning on, no minibatch std), as the Diffusion2GAN rows set them
    **{k: PLAN_TYPES[k] for k in SID_D_KEYS},
    "precision": _precision,  # PRECISIONS; read only when a plan sets it (the GPU's default: bf16 autocast)
}


# Settings that change how fast a row trains, not what it computes (compiled blocks, the step as a CUDA graph, NHWC
# memory): given to a call with pipeline --speed, they stay out of the row's name and plan, so the calls of one row may
# differ in them (a later call picks up a compile an earlier one warmed) and still resume each other's checkpoints.
SPEED_TYPES = {k: SID_PLAN_TYPES[k] for k in ("compile", "compile_mode", "cuda_graph", "channels_last")}


def parse_speed(text: str) -> dict:
    """Speed settings from `key=value:...` (SPEED_TYPES); raises ValueError naming a key that is not one."""
    return parse_settings(text, SPEED_TYPES)


def with_speed(plan: dict, speed: dict) -> dict:
    """The plan with a call's speed settings over its own (a row whose name sets one keeps it unless the call sets it)."""
    if speed.get("cuda_graph") and plan.get("method") != "sid-lsg":
        raise ValueError(f"row {plan['row']}: cuda_graph replays SiD-LSG's step only; drop it from --speed for this row")
    return {**plan, **speed}


def is_prompts_row(row: str) -> bool:
    """A SiD-LSG row (or variant): trained from prompts, no teacher pairs."""
    return row.partition("@")[0] in SID_ROWS


def is_anchored(plan: dict) -> bool:
    """A SiD row with the recall anchor: it trains on the teacher pairs as well as its prompts' noise."""
    return plan.get("method") == "sid-lsg" and plan.get("anchor", 0.0) > 0


def data_folder(row: str, plan: dict) -> str | None:
    """The pairs folder a row trains on ("pairs": the teacher's; a flow row's plan may name "pairs_2rf"), or None for a
    data-free SiD-LSG row (prompts and noise only; an anchored one trains on the teacher's pairs too)."""
    if is_prompts_row(row) and not is_anchored(plan):
        return None
    return plan.get("data", "pairs")


def is_flow_row(row: str) -> bool:
    """A rectified-flow row (or variant): reflow_2rf or instaflow (FLOW_ROWS)."""
    return row.partition("@")[0] in FLOW_ROWS


def row_dir_name(row: str) -> str:
    """A folder name for a row or variant (letters, digits, '.', '_', '-'); one longer than file systems allow (255
    bytes) keeps its first 160 characters and a digest of the whole name, so distinct variants stay distinct."""
    name = re.sub(r"[^A-Za-z0-9._-]", "-", row.replace("@", "__"))
    if len(name) <= 160:
        return name
    return f"{name[:160]}-{hashlib.sha1(row.encode()).hexdigest()[:12]}"


def parse_row(row: str) -> tuple[str, dict]:
    """(base row, overrides) of `BASE` or `BASE@key=value:...`; raises ValueError naming what is wrong."""
    base, _, rest = row.partition("@")
    if base in SID_ROWS:
        return base, parse_settings(rest, SID_PLAN_TYPES)
    if base not in BASE_ROWS and base not in FLOW_ROWS:
        raise ValueError(f"unknown distillation row {base!r}; rows: {', '.join((*BASE_ROWS, *SID_ROWS, *FLOW_ROWS))} (variants: ROW@key=value:key=value)")
    return base, parse_settings(rest)


def parse_settings(text: str, types: dict | None = None) -> dict:
    """Plan settings from `key=value:key=value` (values read as `types` says; default rows.PLAN_TYPES)."""
    types = PLAN_TYPES if types is None else types
    over = {}
    for item in filter(None, text.split(":")):
        key, eq, value = item.partition("=")
        if not eq or key not in types:
            raise ValueError(f"bad setting {item!r}; settable: {', '.join(types)}")
        over[key] = types[key](value)
    return over


def plan(row: str, defaults: dict, teacher_cfg: float | None = None) -> dict:
    """The row's plan: the scale's shared defaults, the base row's loss and GAN switch, then the variant's settings. A SiD
    row's: the shared settings it uses, its own defaults, its guidance scales (TEACHER_CFG: `teacher_cfg`), the variant's."""
    base, over = parse_row(row)
    if base in SID_ROWS:
        kappas = dict(SID_ROWS[base])
        if "kappa" in over:
            kappas.update(dict.fromkeys(("kappa1", "kappa2", "kappa4"), over.pop("kappa")))
        if TEACHER_CFG in kappas.values() and teacher_cfg is None:
            raise ValueError(f"row {row} takes the teacher's CFG: run --stage teacher-eval first")
        kappas = {k: float(teacher_cfg) if v == TEACHER_CFG else v for k, v in kappas.items()}
        return {"row": row, "method": "sid-lsg", **{k: defaults[k] for k in SID_SHARED}, **SID_ROW_DEFAULTS, **kappas, **over}
    if base in FLOW_ROWS:
        return {"row": row, **defaults, "gan": False, "gan_warmup": 0, "timestep": 1000, **FLOW_ROWS[base], **over}
    regression, gan = BASE_ROWS[base]
    p = {"row": row, **defaults, "regression": regression, "gan": gan}
    if not gan:
        p["gan_warmup"] = 0
    p.update(over)
    return p


D2G_BETAS_D = Diffusion2GAN.optim_defaults["betas_d"]  # D's Adam β unless a plan sets d_beta1 / d_beta2 (runs ≤ 11: G's β2 0.999)


D_REAL = ("pairs", "images")  # a plan's d_real


def _sid_discriminator(p: dict) -> DiscriminatorConfig:
    """A SiD row's live-GAN D: DiscriminatorConfig's defaults, with what the plan sets of SID_D_KEYS."""
    return DiscriminatorConfig(**{("mbstd_group" if k == "d_mbstd" else k): p[k] for k in SID_D_KEYS if k in p})


def train_config(p: dict, bf16: bool, save_every: int, real_images: str = "") -> TrainConfig:
    """The trainer configuration of a plan (the trainer's defaults for everything the plan does not set); `real_images`:
    the real-images file a plan with d_real=images trains D on (training/real_images.py)."""
    if p.get("method") == "sid-lsg":
        return TrainConfig(
            method="sid-lsg", generator=GeneratorConfig(spec=OneStepSpec("eps", p["timestep"], "sigma_z")),
            optim=OptimConfig(lr_g=p["lr"], lr_d=p["lr"] * p["lr_d_ratio"], betas=(p["beta1"], 0.999), grad_clip=p["grad_clip"],
                              grad_accumulation=p.get("grad_accumulation", 1),
                              lr_warmup=p["lr_warmup"], lr_decay=p["lr_decay"], lr_decay_steps=p["steps"], lr_floor=p["lr_floor"]),
            sid=SidConfig(kappa1=p["kappa1"], kappa2=p["kappa2"], kappa4=p["kappa4"], alpha=p["alpha"], t_min=p["t_min"], t_max=p["t_max"],
                          prompt_dropout=p["prompt_dropout"], latent_height=SIZE, latent_width=SIZE, anchor_weight=p.get("anchor", 0.0),
                          fake_steps=p.get("fake_steps", 1), kappa4_t_min=p.get("kappa4_t_min", 0),
                          live_anchor_weight=p.get("live_anchor", 0.0), live_anchor_items=p.get("live_anchor_items", SidConfig.live_anchor_items),
                          live_anchor_steps=p.get("live_anchor_steps", SidConfig.live_anchor_steps),
                          live_anchor_sampler=p.get("live_anchor_sampler", SidConfig.live_anchor_sampler),
                          live_anchor_spacing=p.get("live_anchor_spacing", SidConfig.live_anchor_spacing),
                          live_anchor_cfg=p.get("live_anchor_cfg", 0.0),
                          live_gan_weight=p.get("live_gan", 0.0), live_gan_lr=p.get("live_gan_lr", 0.0),
                          live_gan_start=p.get("live_gan_start", 0), live_gan_hold=p.get("live_gan_hold", False)),
            discriminator=_sid_discriminator(p),
            loss=LossConfig(regression=p.get("regression", SidLSG.loss_defaults["regression"])),
            batch_size=p["batch"], ema_decay=p["ema_decay"], ema_extra=tuple(p.get("ema_select", ())), ema_ramp=p.get("ema_ramp", True),
            bf16=bf16 if "precision" not in p else p["precision"] == "bf16", seed=p["seed"], save_every=save_every, log_every=0,
            compile_blocks=p.get("compile", False), compile_mode=p.get("compile_mode", "default"), cuda_graph=p.get("cuda_graph", False),
            channels_last=p.get("channels_last", False),
        )
    flow = "method" in p  # a flow row (FLOW_ROWS; a SiD row's plan returned above)
    d_real = p.get("d_real", "pairs")
    if d_real not in D_REAL:
        raise ValueError(f"row {p['row']}: d_real must be one of {D_REAL}, not {d_real!r}")
    if (d_real == "images") != bool(real_images):
        raise ValueError(f"row {p['row']}: d_real={d_real} " + ("needs a real-images file" if real_images == "" else "takes no real-images file"))
    if flow and p["gan"] and p["method"] != "instaflow":
        raise ValueError(f"row {p['row']}: gan=true is InstaFlow's optional GAN term; {p['method']} has none")
    return TrainConfig(
        # training/methods/: instaflow@gan=true is instaflow-gan (InstaFlow + Diffusion2GAN's GAN term)
        method=(p["method"] + "-gan" if p["gan"] else p["method"]) if flow else "diffusion2gan" if p["gan"] else "regression",
        generator=GeneratorConfig(spec=FLOW_SPEC if flow else OneStepSpec("eps", p["timestep"], "sigma_z")),
        optim=OptimConfig(lr_g=p["lr"], lr_d=p["lr"] * p["lr_d_ratio"], lr_warmup=p["lr_warmup"], lr_decay=p["lr_decay"],
                          lr_decay_steps=p["steps"], lr_floor=p["lr_floor"], lr_d_schedule=p.get("lr_d_schedule", "shared"),
                          betas_d=(p.get("d_beta1", D2G_BETAS_D[0]), p.get("d_beta2", D2G_BETAS_D[1])), eps_d=p.get("d_eps", OptimConfig.eps_d)),
        loss=LossConfig(regression=p["regression"], warmup_steps=p["gan_warmup"], gan_weight=p["gan_weight"], gan_balance=p["gan_balance"],
                        d_lead_steps=p.get("d_lead", 0), gan_loss=p.get("gan_loss", "standard"),
                        gan_ramp_steps=p.get("gan_ramp", 0), gan_scale_max=p.get("gan_scale_max", LossConfig.gan_scale_max),
                        hold_generator=p.get("hold_g", False)),
        discriminator=DiscriminatorConfig(enabled=p["gan"], r1_gamma=p["r1_gamma"], r1_every=p["r1_every"], d_t_min=p.get("d_t_min", 0),
                                          d_t_max=p["d_t_max"], mix_and_match=p.get("mix_and_match", True), z_conditioning=p.get("z_conditioning", True),
                                          backbone=p.get("d_backbone", "full"), lora_rank=p.get("d_lora_rank", 64),
                                          readout=p.get("d_readout", "encoder"), mbstd_group=p.get("d_mbstd", 0),
                                          real_images=real_images),
        reflow=ReflowConfig(**{k: p[k] for k in ("t_eps", "text_dropout") if k in p}),
        batch_size=p["batch"], ema_decay=p["ema_decay"], ema_extra=tuple(p.get("ema_select", ())), ema_ramp=p.get("ema_ramp", True),
        bf16=bf16, seed=p["seed"], save_every=save_every, log_every=0,
        compile_blocks=p.get("compile", False), compile_mode=p.get("compile_mode", "default"), channels_last=p.get("channels_last", False),
    )


ROW_KINDS = ("mse", "latentlpips", "elatentlpips", "diffusion2gan")  # the four losses, for benchmarks/bench_proof_scale_train.py


def train_config_for_kind(kind: str, batch: int, steps: int) -> TrainConfig:
    """A row's trainer configuration by loss kind (the GAN on from the first step), for speed measurements."""
    row = "diffusion2gan" if kind == "diffusion2gan" else f"regression_{kind}"
    p = plan(row, {**ROW_DEFAULTS, "batch": batch, "steps": steps, "gan_warmup": 0})
    return train_config(p, bf16=True, save_every=0)
