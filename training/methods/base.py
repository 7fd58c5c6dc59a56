"""What a training method is, for the engine (training/engine.py): a small class that names the data it needs,
builds the networks it trains beside the generator, and lists the update phases of each step.

The engine owns everything methods share — the generator G (the teacher's UNet trained in place, full or LoRA), the
optimisers, lr schedule, EMA, low-memory storage, gradient accumulation, DDP averaging, checkpoints, stop, NaN
stop and export. A phase updates one network: for each of this rank's micro-batches it runs its forward passes
under `backward.autocast()`, calls `backward(loss)` (the engine scales by the micro-batch count) and returns
named loss terms; the engine then averages terms and gradients over ranks, refuses non-finite ones, clips and
steps that network's optimiser. While a phase runs, the other networks' trained weights are frozen.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ..config import TrainConfig
from ..core import ELatentLPIPS
from ..losses import MicroBatch
from ..unet_interface import ModelInfo

PAIRS = "pairs"  # (noise, prompt, teacher latent) datasets of onestep/pairs
PROMPTS = "prompts"  # items with only the text conditioning ("context", optional "pooled"); noise drawn per step
DATA_KEYS = {PAIRS: ("noise", "latent", "context"), PROMPTS: ("context",)}


@dataclass
class Resources:
    """Frozen helpers a method may use, given by the caller (node, CLI, benchmark)."""

    elpips: ELatentLPIPS | None = None  # E-LatentLPIPS (regression losses)
    # The empty prompt's conditioning {"context": [L, D], optional "pooled": [P]}, read only when a method asks for it
    # (empty_prompt): CFG's unconditional branch of SiD-LSG, reflow's text dropout. The node and the CLI encode "";
    # prompts data brings its own, a pairs dataset its negative prompt.
    unconditional: Callable[[], dict[str, torch.Tensor]] | None = None

    def empty_prompt(self) -> dict[str, torch.Tensor] | None:
        """The empty prompt's conditioning, or None when the caller gave none."""
        return self.unconditional() if self.unconditional is not None else None


@dataclass
class ExtraNetwork:
    """A network a method trains beside G; the engine places it, stores it, gives it an optimiser and checkpoints it."""

    name: str  # its weights' key in a checkpoint ("discriminator")
    key: str  # short name: optimiser state under "opt_<key>", log terms "<key>_total" and "grad_norm_<key>"
    module: nn.Module  # its trained parameters are those with requires_grad (frozen ones are left out of checkpoints)
    lr: float  # base learning rate (× the run's lr schedule)
    optimizer: str = "adamw"  # "adamw" | "adafactor"
    storage_dtype: str = "float32"  # "bfloat16": trained weights and gradients in bf16, stochastic-rounding updates
    rounding_seed: int = 0  # seed of those roundings (a derived seed of the run's)
    betas: tuple[float, float] | None = None  # its Adam β (None: OptimConfig.betas_d, else betas)


class Backward:
    """What a phase needs from the engine per micro-batch: the autocast context and a backward that averages."""

    def __init__(self, micro_batches: int, bf16: bool, device: torch.device, cast_cache: bool = True):
        self.micro_batches, self.bf16, self.device, self.cast_cache = micro_batches, bf16, device, cast_cache

    def autocast(self):
        """bfloat16 autocast for forward passes when the run computes in bf16 (a captured step keeps no cast cache:
        torch's cache of bf16 weight copies is not made for graph capture)."""
        if not self.bf16:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16, cache_enabled=self.cast_cache)

    def __call__(self, loss: torch.Tensor) -> None:
        (loss / self.micro_batches).backward()


PhaseUpdate = Callable[..., dict]  # (micro-batch, backward[, drawn]) → named terms ("total" logged as <key>_total)
PhaseDraw = Callable[[MicroBatch], dict]  # micro-batch → the phase's random draws as host tensors


@dataclass(frozen=True)
class Phase:
    """One optimiser step of one network within a training step. A phase whose random draws (noise, timesteps, masks)
    come from the micro-batch's host generator may name them in `draw`: the engine takes them first and passes them,
    on the device, as update(mb, backward, drawn) — so a step replayed as a CUDA graph (training/graph_step.py) can
    copy fresh draws into its fixed buffers; without `draw` the update draws for itself: update(mb, backward)."""

    network: str  # "generator" or an ExtraNetwork's name
    update: PhaseUpdate
    draw: PhaseDraw | None = None
    # what else tells this phase's work from the same network's phase at other steps (e.g. "r1" on D's lazy-R1 steps):
    # a CUDA-graph step keeps one capture per list of (network, variant)
    variant: str = ""


class Method:
    """Base of every method; a subclass sets `name` and `data` and defines `phases` (and `build` for extra networks)."""

    name = ""  # registry key (TrainConfig.method)
    file_method = ""  # `onestep.method` of the generator files it makes (default: name)
    data = PAIRS  # PAIRS or PROMPTS
    optim_defaults: dict = {}  # OptimConfig values (betas, lr_g, lr_d) the CLI and the node use for this method unless given
    loss_defaults: dict = {}  # LossConfig values (regression) the CLI and the node use for this method unless given

    def __init__(self, config: TrainConfig, resources: Resources | None = None):
        self.config, self.resources = config, resources or Resources()
        self.data = self.data_for(config)

    @classmethod
    def data_for(cls, config: TrainConfig) -> str:
        """The data this method trains on with `config` (PAIRS or PROMPTS; a setting may change it)."""
        return cls.data

    @classmethod
    def needs_elpips(cls, config: TrainConfig) -> bool:
        """Whether a run of `config` computes a LatentLPIPS regression (Resources.elpips must then be given)."""
        return False

    def prepare(self, info: ModelInfo) -> None:
        """Check the teacher (refuse one the method cannot train) and set up the losses; called before anything is built."""

    def build(self, engine) -> list[ExtraNetwork]:
        """The networks this method adds, built from engine.unet while it is still the teacher; move helpers to engine.device."""
        return []

    def phases(self, engine, step: int) -> list[Phase]:
        """The phases of the step after `step` completed ones, in order."""
        raise NotImplementedError

    def generator_start(self) -> int:
        """G's first optimiser step: its lr is 0 before it, and its lr schedule counts from it."""
        return 0

    def held_with_generator(self) -> tuple[str, ...]:
        """Extra networks that stand still with G before generator_start, so their lr schedule counts from it too."""
        return ()

    def draw_noise(self, engine, n: int, generator: torch.Generator) -> torch.Tensor:
        """Generator noise [n, C, H, W] for a prompts-only method (pairs methods read it from the data)."""
        raise NotImplementedError(f"method {self.name!r} reads its noise from the data")

    def capturable(self) -> str | None:
        """Why this run's step cannot be replayed as one CUDA graph (TrainConfig.cuda_graph), or None when it can: every
        phase's randomness comes through Phase.draw, the phases are the same at every step and run no host syncs."""
        return f"the {self.name} method's step is not built for CUDA-graph replay"

    def notice(self, step: int, logs: dict) -> str | None:
        """A warning about the run's health after a completed step (each cause once), or None."""
        return None

    def guidance(self) -> float | None:
        """The CFG baked in during training, for the generator file (None: from the data, or unknown)."""
        return None

    def file_notes(self) -> dict:
        """Extra notes for the generator file's metadata (e.g. every guidance scale of the run)."""
        return {}
