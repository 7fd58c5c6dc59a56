"""The benchmark's teacher: a small text-conditioned latent diffusion UNet (diffusers UNet2DConditionModel, the
SD1.x block structure at 32×32×1) trained with the ε-prediction objective of DDPM (Ho et al. 2020, eq. 14)
on the SD discrete schedule (onestep/schedule.py), with classifier-free-guidance dropout (Ho & Salimans
2022: 10% of prompts replaced by the empty prompt) and an EMA of the weights.

Conditioning is a text-embedding table passed in by the caller, [11, L, D]: rows 0..9 the encodings of the
class prompts (K rows; Fashion-MNIST: data.PROMPTS), row K the empty prompt. The weights convert to ComfyUI's ldm layout with
onestep/unet_keys.py; `ldm_unet_config` gives the matching ComfyUI UNetModel config.
"""
from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from diffusers import UNet2DConditionModel

from onestep.compile_cache import artifacts_for
from onestep.schedule import SD_SCHEDULE, DiscreteSchedule
from onestep.unet_keys import diffusers_to_ldm

from .checkpoint import load_tensors, save_tensors
from .data import NUM_CLASSES, SIZE, empty_row, num_classes

log = logging.getLogger("proof_scale")
KIND = "fmnist-teacher"
CONTEXT_KEY = "context_table"  # the conditioning table stored next to the UNet weights in a teacher file


@dataclass(frozen=True)
class TeacherNetConfig:
    """Architecture of the teacher UNet."""

    block_out_channels: tuple[int, ...] = (64, 128, 128)  # channels per resolution level (32, 16, 8 px); multiples of 32
    attention: tuple[bool, ...] = (False, True, True)  # cross-attention (transformer) blocks per level
    layers_per_block: int = 2  # resnets per level in the encoder (the decoder has one more)
    heads: int = 4  # attention heads at every attention level and the middle block
    context_dim: int = 768  # D of the text embeddings (CLIP-L: 768)

    def __post_init__(self) -> None:
        if len(self.attention) != len(self.block_out_channels):
            raise ValueError("attention needs one entry per level of block_out_channels")
        if any(c % 32 or c % self.heads for c in self.block_out_channels):
            raise ValueError("every width must be a multiple of 32 (GroupNorm groups) and of the head count")


@dataclass(frozen=True)
class TeacherTrainConfig:
    """ε-prediction training of the teacher."""

    steps: int = 8000  # optimizer steps
    batch: int = 256  # images per step
    lr: float = 3e-4  # AdamW learning rate (constant after warmup)
    warmup: int = 200  # linear warmup steps
    weight_decay: float = 0.0  # AdamW weight decay
    grad_clip: float = 1.0  # max global gradient norm (0 = off)
    cond_dropout: float = 0.1  # share of prompts replaced by the empty prompt (classifier-free guidance)
    ema_decay: float = 0.9995  # EMA decay per step (warmed up as (1+s)/(10+s) early on)
    max_seconds: float = 0.0  # stop early after this much wall time (0 = run all steps)
    seed: int = 0  # initialisation, batches, timesteps and noise
    log_every: int = 100  # steps between progress reports


def build_unet(cfg: TeacherNetConfig) -> UNet2DConditionModel:
    """The diffusers UNet of a config (random init)."""
    down = tuple("CrossAttnDownBlock2D" if a else "DownBlock2D" for a in cfg.attention)
    up = tuple("CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(cfg.attention))
    return UNet2DConditionModel(
        sample_size=SIZE, in_channels=1, out_channels=1, down_block_types=down, up_block_types=up,
        block_out_channels=tuple(cfg.block_out_channels), layers_per_block=cfg.layers_per_block,
        cross_attention_dim=cfg.context_dim, attention_head_dim=cfg.heads,  # diffusers' name for the head count
        norm_num_groups=32,
    )


def ldm_unet_config(cfg: TeacherNetConfig) -> dict:
    """The ComfyUI (openaimodel UNetModel) config that the converted weights load into."""
    levels, n = len(cfg.block_out_channels), cfg.layers_per_block
    base = cfg.block_out_channels[0]
    if any(c % base for c in cfg.block_out_channels):
        raise ValueError("ldm widths are multiples of the first level's width")
    return {
        "image_size": SIZE, "in_channels": 1, "out_channels": 1, "model_channels": base,
        "channel_mult": [c // base for c in cfg.block_out_channels], "num_res_blocks": [n] * levels,
        "transformer_depth": [int(a) for a in cfg.attention for _ in range(n)],
        "transformer_depth_output": [int(a) for a in cfg.attention for _ in range(n + 1)],  # popped from the end
        "transformer_depth_middle": 1, "context_dim": cfg.context_dim, "num_heads": cfg.heads, "num_head_channels": -1,
        "use_spatial_transformer": True, "use_linear_in_transformer": False, "legacy": False,
        "adm_in_channels": None, "use_checkpoint": False, "use_temporal_resblock": False, "use_temporal_attention": False,
    }


def ldm_state_dict(unet: UNet2DConditionModel) -> dict[str, torch.Tensor]:
    """The UNet's weights in ComfyUI's ldm layout."""
    return diffusers_to_ldm({k: v.detach() for k, v in unet.state_dict().items()})


def noisy(x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor, alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """x_t = sqrt(ᾱ_t)·x0 + sqrt(1 − ᾱ_t)·ε."""
    a = alphas_cumprod[t].to(x0.dtype).view(-1, 1, 1, 1)
    return a.sqrt() * x0 + (1 - a).sqrt() * eps


class EpsLoss:
    """DDPM's simple loss ‖ε̂(x_t, t, c) − ε‖², t ~ U{0..T−1}, with prompt dropout to the empty prompt."""

    def __init__(self, context_table: torch.Tensor, cond_dropout: float, schedule: DiscreteSchedule = SD_SCHEDULE):
        self.context_table = context_table
        self.cond_dropout = cond_dropout
        self.alphas_cumprod = schedule.alphas_cumprod().to(context_table.device, torch.float32)

    def __call__(self, unet: torch.nn.Module, x0: torch.Tensor, labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n, dev = len(x0), x0.device
        t = torch.randint(0, len(self.alphas_cumprod), (n,), generator=generator, device=dev)
        eps = torch.randn(x0.shape, generator=generator, device=dev)
        drop = torch.rand(n, generator=generator, device=dev) < self.cond_dropout
        rows = torch.where(drop, torch.full_like(labels, empty_row(self.context_table)), labels)
        pred = unet(noisy(x0, eps, t, self.alphas_cumprod), t, encoder_hidden_states=self.context_table[rows]).sample
        return torch.nn.functional.mse_loss(pred.float(), eps)


@torch.no_grad()
def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """ema ← decay·ema + (1 − decay)·model."""
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p.detach(), 1.0 - decay)


def check_context_table(table: torch.Tensor, context_dim: int, classes: int) -> None:
    """Raise unless the table is [classes + 1, L, context_dim] (one prompt per class, then the empty prompt) and finite."""
    if table.ndim != 3 or table.shape[0] != classes + 1 or table.shape[2] != context_dim:
        raise ValueError(f"context table must be [{classes + 1}, L, {context_dim}] (one prompt per class, then the empty prompt), got {tuple(table.shape)}")
    if not torch.isfinite(table).all():
        raise ValueError("context table has non-finite values")


def train_teacher(
    latents: torch.Tensor, labels: torch.Tensor, context_table: torch.Tensor,
    cfg: TeacherTrainConfig = TeacherTrainConfig(), net: TeacherNetConfig = TeacherNetConfig(),
    device: str | torch.device | None = None, progress: Callable[[int, float], None] | None = None,
) -> tuple[UNet2DConditionModel, list[float]]:
    """Train the teacher; returns (EMA UNet in eval mode, loss per step). bf16 autocast on CUDA."""
    check_context_table(context_table, net.context_dim, num_classes(labels))
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(cfg.seed)
    unet = build_unet(net).to(device).train()
    ema = copy.deepcopy(unet).eval().requires_grad_(False)
    opt = torch.optim.AdamW(unet.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(1, cfg.warmup)))
    loss_fn = EpsLoss(context_table.to(device, torch.float32), cfg.cond_dropout)
    x_all, y_all = latents.to(device), labels.to(device)
    g = torch.Generator(device).manual_seed(cfg.seed)
    losses: list[float] = []
    start = time.monotonic()
    for step in range(1, cfg.steps + 1):
        idx = torch.randint(len(x_all), (cfg.batch,), generator=g, device=device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = loss_fn(unet, x_all[idx], y_all[idx], g)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"teacher training diverged at step {step} (loss {loss.item()})")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(unet.parameters(), cfg.grad_clip)
        opt.step()
        sched.step()
        ema_update(ema, unet, min(cfg.ema_decay, (1 + step) / (10 + step)))
        losses.append(loss.item())
        elapsed = time.monotonic() - start
        out_of_time = cfg.max_seconds > 0 and elapsed > cfg.max_seconds
        if step % cfg.log_every == 0 or step == cfg.steps or out_of_time:
            recent = losses[-cfg.log_every:]
            log.info("teacher step %d/%d loss %.4f (mean of last %d) %.0f s", step, cfg.steps, sum(recent) / len(recent), len(recent), elapsed)
            if progress is not None:
                progress(step, loss.item())
        if out_of_time:
            log.info("teacher training stopped at step %d: max_seconds=%g reached", step, cfg.max_seconds)
            break
    return ema, losses


def save_teacher(path: str, unet: UNet2DConditionModel, net: TeacherNetConfig, context_table: torch.Tensor, info: dict | None = None) -> None:
    """Write the (EMA) UNet in diffusers layout + the context table it was trained with, configs as metadata."""
    tensors = {**unet.state_dict(), CONTEXT_KEY: context_table.float()}
    save_tensors(path, tensors, KIND, {"net": asdict(net), "ldm_unet_config": ldm_unet_config(net), "info": info or {}})


def load_teacher(
    path: str, device: str | torch.device = "cpu", compile_mode: str = ""
) -> tuple[UNet2DConditionModel, torch.Tensor, TeacherNetConfig, dict]:
    """(UNet in eval mode, context table [11, L, D], architecture, info) of a teacher file. With `compile_mode` the
    UNet's calls go through torch.compile (mode e.g. "default"; not one with CUDA graphs: the sampler captures its own):
    at 32×32 the model is bound by its GroupNorm and elementwise kernels, which inductor fuses. Where a compile-cache
    folder is set (onestep.compile_cache.set_folder: the pipeline's --compile-cache), the artifacts an earlier process
    saved for this architecture, GPU, torch and mode are hot-loaded here, before the first (lazy) compile."""
    tensors, meta = load_tensors(path, KIND)
    table = tensors.pop(CONTEXT_KEY)
    raw = meta["net"]
    net = TeacherNetConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})
    unet = build_unet(net)
    unet.load_state_dict(tensors)
    unet = unet.to(device).eval()
    if compile_mode:
        unet.compile(mode=compile_mode, dynamic=False)  # in place: state_dict keys and the module stay as they were
        artifacts = artifacts_for([unet], device, compile_mode)
        if artifacts is not None:
            artifacts.load()
    return unet, table.to(device), net, meta.get("info", {})


def random_context_table(length: int = 8, dim: int = 768, seed: int = 0, classes: int = NUM_CLASSES) -> torch.Tensor:
    """A seeded Gaussian stand-in table [11, length, dim] (unit-variance tokens) for runs without a text encoder."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(classes + 1, length, dim, generator=g)


def parameter_count(unet: torch.nn.Module) -> int:
    """Number of parameters."""
    return sum(p.numel() for p in unet.parameters())


