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

Rectified-flow rows (issue 17, InstaFlow; run by name, not part of `all` or the table above; proof_scale/flow.py):
  reflow_2rf  — the teacher's UNet as a velocity model on the teacher's pairs (method reflow), scored at 1, 2, 4 Euler steps
  instaflow   — one step x0 = z + v(z, 1000) from reflow_2rf's weights on pairs of the 2-RF's own Euler ODE (stage pairs-2rf)
"""
from __future__ import annotations

import re

from training.config import DiscriminatorConfig, GeneratorConfig, LossConfig, OptimConfig, ReflowConfig, TrainConfig
from training.core import OneStepSpec
from training.methods.reflow import FLOW_SPEC

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
PLAN_TYPES = {  # the settable keys of a plan and how a variant's text value is read
    "steps": int, "batch": int, "lr": float, "lr_warmup": int, "lr_decay": str, "lr_floor": float, "regression": str, "gan": lambda v: v == "true",
    "gan_warmup": int, "gan_weight": float, "gan_balance": str, "timestep": int, "ema_decay": float, "r1_gamma": float,
    "r1_every": int, "lr_d_ratio": float, "d_t_max": int, "seed": int,
    "init_from": str,  # a finished row whose selected weights G (and its EMA) start from; D still from the teacher
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


def row_dir_name(row: str) -> str:
    """A folder name for a row or variant (letters, digits, '.', '_', '-')."""
    return re.sub(r"[^A-Za-z0-9._-]", "-", row.replace("@", "__"))


def parse_row(row: str) -> tuple[str, dict]:
    """(base row, overrides) of `BASE` or `BASE@key=value:...`; raises ValueError naming what is wrong."""
    base, _, rest = row.partition("@")
    if base not in BASE_ROWS and base not in FLOW_ROWS:
        raise ValueError(f"unknown distillation row {base!r}; rows: {', '.join([*BASE_ROWS, *FLOW_ROWS])} (variants: ROW@key=value:key=value)")
    return base, parse_settings(rest)


def parse_settings(text: str) -> dict:
    """Plan settings from `key=value:key=value` (values read as rows.PLAN_TYPES says)."""
    over = {}
    for item in filter(None, text.split(":")):
        key, eq, value = item.partition("=")
        if not eq or key not in PLAN_TYPES:
            raise ValueError(f"bad setting {item!r}; settable: {', '.join(PLAN_TYPES)}")
        over[key] = PLAN_TYPES[key](value)
    return over


def plan(row: str, defaults: dict) -> dict:
    """The row's plan: the scale's shared defaults, the base row's loss and GAN switch, then the variant's settings."""
    base, over = parse_row(row)
    if base in FLOW_ROWS:
        return {"row": row, **defaults, "gan": False, "gan_warmup": 0, "timestep": 1000, **FLOW_ROWS[base], **over}
    regression, gan = BASE_ROWS[base]
    p = {"row": row, **defaults, "regression": regression, "gan": gan}
    if not gan:
        p["gan_warmup"] = 0
    p.update(over)
    return p


def train_config(p: dict, bf16: bool, save_every: int) -> TrainConfig:
    """The trainer configuration of a plan (the trainer's defaults for everything the plan does not set)."""
    flow = "method" in p  # a flow row (FLOW_ROWS)
    return TrainConfig(
        method=p["method"] if flow else "diffusion2gan" if p["gan"] else "regression",  # training/methods/
        generator=GeneratorConfig(spec=FLOW_SPEC if flow else OneStepSpec("eps", p["timestep"], "sigma_z")),
        optim=OptimConfig(lr_g=p["lr"], lr_d=p["lr"] * p["lr_d_ratio"], lr_warmup=p["lr_warmup"], lr_decay=p["lr_decay"],
                          lr_decay_steps=p["steps"], lr_floor=p["lr_floor"]),
        loss=LossConfig(regression=p["regression"], warmup_steps=p["gan_warmup"], gan_weight=p["gan_weight"], gan_balance=p["gan_balance"]),
        discriminator=DiscriminatorConfig(enabled=p["gan"], r1_gamma=p["r1_gamma"], r1_every=p["r1_every"], d_t_max=p["d_t_max"]),
        reflow=ReflowConfig(**{k: p[k] for k in ("t_eps", "text_dropout") if k in p}),
        batch_size=p["batch"], ema_decay=p["ema_decay"], bf16=bf16, seed=p["seed"], save_every=save_every, log_every=0,
    )


ROW_KINDS = ("mse", "latentlpips", "elatentlpips", "diffusion2gan")  # the four losses, for benchmarks/bench_proof_scale_train.py


def train_config_for_kind(kind: str, batch: int, steps: int) -> TrainConfig:
    """A row's trainer configuration by loss kind (the GAN on from the first step), for speed measurements."""
    row = "diffusion2gan" if kind == "diffusion2gan" else f"regression_{kind}"
    p = plan(row, {**ROW_DEFAULTS, "batch": batch, "steps": steps, "gan_warmup": 0})
    return train_config(p, bf16=True, save_every=0)
