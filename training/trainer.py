"""The Diffusion2GAN trainer (Kang et al., ECCV 2024): E-LatentLPIPS regression of the teacher's ODE pairs
(z, c) → x, then a conditional diffusion GAN (losses.py, Eq. 5), on a one-step generator G(z, c) that is the
teacher UNet run once at the OneStepSpec's timestep (onestep/parameterization.py).

The trainer owns G (full weights or LoRA), D (a copy of the teacher's encoder, taken before G changes), both
optimisers, the EMA of G and the step count. The data order and every random draw are functions of
(seed, step, chunk) (data.py), so a checkpoint of those parts resumes bit-for-bit. `run` drives the loop with a
per-step callback that may request a stop; stopping, `save_every` and the end leave an atomic checkpoint.
The UNet passed in is trained in place (pass a copy to keep the teacher).
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch import nn

from . import distributed, lora
from .adafactor import SyncFreeAdafactor
from .checkpoint import CheckpointError, check_fits, load_checkpoint, save_checkpoint
from .config import TrainConfig
from .core import ELatentLPIPS, OneStepGenerator, collate_pairs, format, keep_output_float32
from .data import ResumableBatchSampler, chunk_rng, derived_seed, my_chunks
from .device_data import DevicePairs
from .discriminator import ConditionalDiffusionDiscriminator
from .ema import EMA
from .losses import DiscriminatorLoss, GeneratorLoss, MicroBatch, RegressionLoss
from .lr_schedule import lr_factor
from .rounding import Bf16WeightsOptimizer
from .steps import StepParts, discriminator_step, generator_step
from .unet_interface import TrainableUNet, check_batch_compatible

log = logging.getLogger("onestep")
STATE_VERSION = 1
OnStep = Callable[[int, dict], "bool | None"]  # (completed steps, loss terms) → True to stop


@dataclass
class RunResult:
    """How a run ended."""

    step: int  # completed optimiser steps
    stopped: bool  # True when on_step asked to stop before the target
    logs: dict = field(default_factory=dict)  # loss terms of the last step


def _optimizer(name: str, params: list[nn.Parameter], lr: float, betas: tuple[float, float], weight_decay: float,
               foreach: bool | None = None) -> torch.optim.Optimizer:
    if name == "adafactor":  # lr is relative to each weight's RMS in Adafactor; torch's update, without its GPU syncs
        return SyncFreeAdafactor(params, lr=lr, weight_decay=weight_decay)
    return torch.optim.AdamW(params, lr=lr, betas=betas, weight_decay=weight_decay, foreach=foreach)


def _store_frozen(module: nn.Module, dtype: torch.dtype) -> None:
    """Keep the parameters that are not trained in `dtype` (trained ones and buffers unchanged). In place, so a
    frozen weight another module shares (a LoRA discriminator's backbone) stays shared."""
    for p in module.parameters():
        if not p.requires_grad and p.is_floating_point() and p.dtype != dtype:
            p.data = p.detach().to(dtype)


def _discriminator(unet: TrainableUNet, config: TrainConfig) -> ConditionalDiffusionDiscriminator:
    """D from the teacher's encoder (call before G's weights change). A LoRA backbone with a LoRA generator shares
    G's frozen weights: G's own LoRA is added afterwards and freezes the same tensors."""
    c, dc = config, config.discriminator
    d_init = torch.Generator().manual_seed(derived_seed(c.seed, -1))
    if dc.backbone == "full":
        return ConditionalDiffusionDiscriminator(unet.encoder_copy(), dc.z_conditioning, dc.multiscale, dc.head_channels, d_init).requires_grad_(True)
    encoder = unet.encoder_copy(share_weights=c.generator.lora_rank > 0)
    lora.add_lora(encoder, encoder.lora_targets(), dc.lora_rank, 0.0, torch.Generator().manual_seed(derived_seed(c.seed, -5)))
    d = ConditionalDiffusionDiscriminator(encoder, dc.z_conditioning, dc.multiscale, dc.head_channels, d_init)
    _store_frozen(d, getattr(torch, c.generator.frozen_dtype))
    return d


class Trainer:
    """Diffusion2GAN distillation of a teacher UNet into a one-step generator."""

    def __init__(self, unet: TrainableUNet, config: TrainConfig, elpips: ELatentLPIPS | None = None, device: torch.device | str | None = None):
        self.config, self.unet, self.info = config, unet, unet.info
        self.dist = distributed.current()
        self.device = torch.device(device) if device is not None else next(unet.parameters()).device
        c, dc = config, config.discriminator
        if elpips is not None and elpips.encoder.channels != self.info.latent_channels:
            raise ValueError(f"E-LatentLPIPS weights are for {elpips.encoder.channels}-channel latents, the UNet makes {self.info.latent_channels}")
        self.discriminator = _discriminator(unet, config) if dc.enabled else None
        if self.discriminator is not None:  # its trained weights in their storage dtype; a frozen backbone as it is
            self.discriminator.to(self.device).train()
            for p in self.discriminator_parameters():
                p.data = p.detach().to(getattr(torch, dc.storage_dtype))
        if c.generator.lora_rank > 0:
            lora.add_lora(unet, unet.lora_targets(), c.generator.lora_rank, c.generator.lora_alpha, torch.Generator().manual_seed(derived_seed(c.seed, -2)))
        else:
            unet.requires_grad_(True)
        if c.generator.frozen_dtype != "float32":  # before the move, so the device never holds the float32 copy
            _store_frozen(unet, getattr(torch, c.generator.frozen_dtype))
        unet.to(self.device).train()
        if c.generator.gradient_checkpointing:
            unet.set_gradient_checkpointing(True)
            if self.discriminator is not None:
                self.discriminator.encoder.set_gradient_checkpointing(True)
        keep_output_float32(getattr(unet, "output_conv", None))  # x0 amplifies ε̂'s rounding ~15× (onestep/precision.py)
        self.generator = OneStepGenerator(unet, c.generator.spec)
        distributed.broadcast_module(unet, self.dist)
        if self.discriminator is not None:
            distributed.broadcast_module(self.discriminator, self.dist)
        if elpips is not None:
            elpips.to(self.device).eval().requires_grad_(False)
        o = c.optim
        self.opt_g = _optimizer(o.optimizer, self.trainable_parameters(), o.lr_g, o.betas, o.weight_decay, o.foreach)
        self.opt_d = _optimizer(o.optimizer_d or o.optimizer, self.discriminator_parameters(), o.lr_d, o.betas, o.weight_decay,
                                o.foreach) if self.discriminator else None
        if self.opt_d is not None and dc.storage_dtype != "float32":
            self.opt_d = Bf16WeightsOptimizer(self.opt_d, derived_seed(c.seed, -4))
        self.ema = EMA(unet, c.ema_decay, getattr(torch, c.ema_dtype), derived_seed(c.seed, -3))
        t_range = (dc.d_t_min, dc.d_t_max)
        self.parts = StepParts(
            self.generator, self.discriminator,
            GeneratorLoss(RegressionLoss(c.loss.regression, self.info, elpips), c.generator.spec, c.loss.gan_weight, t_range, c.loss.gan_balance),
            DiscriminatorLoss(c.generator.spec, t_range, dc.mix_and_match, dc.z_conditioning, dc.r1_gamma, dc.r1_every, dc.r1_mode, dc.r1_sigma) if self.discriminator else None,
            self.opt_g, self.opt_d, o.grad_clip, c.bf16, self.dist,
        )
        self.step = 0

    def trainable_parameters(self) -> list[nn.Parameter]:
        """G's parameters being trained (all, or the LoRA factors)."""
        return [p for p in self.unet.parameters() if p.requires_grad]

    def discriminator_parameters(self) -> list[nn.Parameter]:
        """D's parameters being trained (all, or with a LoRA backbone its LoRA factors, heads and z-conv)."""
        return [p for p in self.discriminator.parameters() if p.requires_grad] if self.discriminator is not None else []

    def _discriminator_state(self) -> dict[str, torch.Tensor]:
        """D's state without a frozen backbone (the teacher's weights, rebuilt with the trainer; shared with G)."""
        frozen = {n for n, p in self.discriminator.named_parameters() if not p.requires_grad}
        return {k: v for k, v in self.discriminator.state_dict().items() if k not in frozen}

    # -- one step -------------------------------------------------------------------------------------------
    def _micro_batch(self, chunk: dict, j: int) -> MicroBatch:
        dev = self.device
        latent = chunk["latent"].to(dev, torch.float32)
        extra = {"pooled": chunk["pooled"].to(dev, torch.float32)} if "pooled" in chunk else {}
        return MicroBatch(
            z=chunk["noise"].to(dev, torch.float32), real=self.info.to_unet_space(latent), latent=latent,
            context=chunk["context"].to(dev, torch.float32), extra=extra,
            seed=chunk.get("seed"), prompt_index=chunk.get("prompt_index"), rng=chunk_rng(self.config.seed, self.step, j),
        )

    def train_step(self, batch: dict) -> dict[str, float]:
        """One optimiser step of G (and of D after the warm-up) on a global batch; the averaged loss terms."""
        check_batch_compatible(batch, self.info)
        c = self.config
        mbs = [self._micro_batch(chunk, j) for j, chunk in my_chunks(batch, self.dist.world_size, c.optim.grad_accumulation, self.dist.rank)]
        use_gan = self.discriminator is not None and self.step >= c.loss.warmup_steps
        number = self.step + 1  # 1-based, as people count steps
        self._set_learning_rates()
        terms, fakes = generator_step(self.parts, mbs, number, use_gan)
        if use_gan:
            terms.update(discriminator_step(self.parts, mbs, fakes, number, self.step % c.discriminator.r1_every == 0))
        self.ema.update(self.unet)
        self.step += 1
        return terms

    def _set_learning_rates(self) -> None:
        """Both optimisers' lr for this step: base lr × the schedule's factor (lr_schedule.py)."""
        o = self.config.optim
        f = lr_factor(self.step, o.lr_warmup, o.lr_decay, o.lr_decay_steps, o.lr_floor)
        for opt, base in ((self.opt_g, o.lr_g), (self.opt_d, o.lr_d)):
            for group in opt.param_groups if opt is not None else ():
                group["lr"] = base * f

    # -- the loop -------------------------------------------------------------------------------------------
    def batches(self, data, steps: int, collate_fn: Callable | None = None, num_workers: int = 0) -> Iterable[dict]:
        """Global batches: from DevicePairs (indexed on the device) or a map-style torch Dataset of items, in a
        resumable order from step self.step; any other iterable (a DataLoader, a list of batch dicts) is used as given."""
        if isinstance(data, DevicePairs):  # the same order as the Dataset path, with no host round trip
            sampler = ResumableBatchSampler(len(data), self.config.batch_size, self.config.seed, self.step, steps)
            return (data.batch(indices) for indices in sampler)
        if isinstance(data, torch.utils.data.Dataset) and not isinstance(data, torch.utils.data.IterableDataset):
            sampler = ResumableBatchSampler(len(data), self.config.batch_size, self.config.seed, self.step, steps)
            # its own generator: a DataLoader draws its workers' base seed when iterated, which must not move the global
            # RNG a checkpoint restores (a resumed run's state then equals an uninterrupted one's, bit for bit)
            loader_rng = torch.Generator().manual_seed(derived_seed(self.config.seed, self.step, -6))
            return torch.utils.data.DataLoader(data, batch_sampler=sampler, collate_fn=collate_fn or collate_pairs, num_workers=num_workers,
                                               generator=loader_rng)
        if self.step:
            log.warning("[onestep] resuming at step %d on an iterable: its order is the caller's (pass a map-style dataset to resume the order)", self.step)
        return data

    def _stop_requested(self, on_step: OnStep | None, logs: dict) -> bool:
        stop = bool(on_step(self.step, logs)) if on_step is not None else False
        if self.dist.world_size > 1:  # every rank follows rank 0's decision
            flag = torch.tensor([int(stop)], device=self.device if dist.get_backend() == "nccl" else "cpu")
            dist.broadcast(flag, src=0)
            stop = bool(flag.item())
        return stop

    def run(self, data, steps: int, on_step: OnStep | None = None, checkpoint: str | os.PathLike | None = None,
            collate_fn: Callable | None = None, num_workers: int = 0) -> RunResult:
        """Train until `steps` completed steps (counting resumed ones); on_step(step, logs) → True stops early.
        Checkpoints (when a path is given) every save_every steps, at a stop and at the end."""
        logs: dict = {}
        saved_at = self.step
        for batch in self.batches(data, steps, collate_fn, num_workers):
            if self.step >= steps:
                break
            logs = self.train_step(batch)
            if self.config.log_every and self.step % self.config.log_every == 0 and self.dist.is_main:
                log.info("[onestep] step %d: %s", self.step, ", ".join(f"{k} {v:.4g}" for k, v in sorted(logs.items())))
            stop = self._stop_requested(on_step, logs)
            if checkpoint and (stop or (self.config.save_every and self.step % self.config.save_every == 0)):
                self.save(checkpoint)
                saved_at = self.step
            if stop:
                return RunResult(self.step, True, logs)
        if checkpoint and saved_at != self.step:
            self.save(checkpoint)
        return RunResult(self.step, False, logs)

    # -- state ----------------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything a resume needs: G's trainable weights, D, both optimisers, EMA, step, RNG states, config."""
        rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return {
            "version": STATE_VERSION, "step": self.step, "config": self.config.to_dict(),
            "generator": {n: p for n, p in self.unet.named_parameters() if p.requires_grad},
            "discriminator": self._discriminator_state() if self.discriminator is not None else {},
            "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict() if self.opt_d is not None else {},
            "ema": self.ema.state_dict(), "rng": rng,
            "data": {"seed": self.config.seed, "next_batch": self.step},  # the order is a function of (seed, step)
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore a state_dict() of a trainer built the same way (same UNet, same config structure)."""
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"trainer state version {state.get('version')!r} is not supported (this code reads {STATE_VERSION})")
        saved, now = _flat(state["config"]), _flat(self.config.to_dict())
        diff = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
        if diff:
            log.warning("[onestep] resuming with a changed configuration: %s", ", ".join(diff))
        params = {n: p for n, p in self.unet.named_parameters() if p.requires_grad}
        if set(params) != set(state["generator"]):
            raise ValueError("the checkpoint's generator weights do not match this trainer (full fine-tune vs LoRA, or another UNet)")
        with torch.no_grad():
            for n, p in params.items():
                p.copy_(state["generator"][n])
        if self.discriminator is not None:
            d_state = state["discriminator"]
            if set(d_state) != set(self._discriminator_state()):
                raise ValueError("the checkpoint's discriminator does not match this trainer (full vs LoRA backbone, or another UNet)")
            self.discriminator.load_state_dict(d_state, strict=False)
            self.opt_d.load_state_dict(state["opt_d"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.ema.load_state_dict(state["ema"])
        self.step = int(state["step"])
        torch.set_rng_state(state["rng"]["torch"])
        if "cuda" in state["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])

    def save(self, path: str | os.PathLike) -> None:
        """Atomic safetensors checkpoint (rank 0 writes; refuses non-finite states)."""
        if self.dist.is_main:
            save_checkpoint(path, self.state_dict())
            log.info("[onestep] checkpoint at step %d → %s", self.step, os.fspath(path))

    def load(self, path: str | os.PathLike) -> int:
        """Resume from a checkpoint; the step to continue from. A file that does not fit raises CheckpointError."""
        state, name = load_checkpoint(path), os.path.basename(os.fspath(path))
        check_fits(state, self.state_dict(), {"opt_g": self.opt_g, "opt_d": self.opt_d}, name)
        try:
            self.load_state_dict(state)
        except (ValueError, RuntimeError, KeyError, TypeError, AttributeError, IndexError) as e:
            raise CheckpointError(f"{name} does not fit this trainer: {type(e).__name__}: {e}") from None
        return self.step

    # -- export ---------------------------------------------------------------------------------------------
    def generator_state_dict(self, ema: bool = True, layout: str = "ldm") -> dict[str, torch.Tensor]:
        """G's full weights (EMA by default; LoRA merged in) in ComfyUI's ldm layout ("ldm") or the adapter's own ("native")."""
        params = self.ema.shadow if ema else None
        if lora.lora_layers(self.unet):
            sd = lora.merged_state_dict(self.unet, params)
        else:
            sd = {k: (params or {}).get(k, v).detach() for k, v in self.unet.state_dict().items()}
        sd = {k: v.detach().float().cpu().contiguous() for k, v in sd.items()}
        return self.unet.export_state_dict(sd) if layout == "ldm" else sd

    def lora_state_dict(self, ema: bool = True) -> dict[str, torch.Tensor]:
        """`<module>.lora_down.weight` / `.lora_up.weight` / `.alpha` per wrapped layer (names as in the adapter)."""
        return lora.lora_state_dict(self.unet, self.ema.shadow if ema else None)

    def generator_metadata(self, base: str, latent_format: str, guidance: float | None = None, teacher_hash: str = "", source: str = "") -> format.GeneratorMetadata:
        """The generator file's metadata for this run (onestep.format.save_generator)."""
        s = self.config.generator.spec
        return format.GeneratorMetadata(
            method="diffusion2gan", base=base, prediction=s.prediction, timestep=s.timestep, input_convention=s.input_convention,
            latent_format=latent_format, latent_channels=self.info.latent_channels, guidance=guidance, teacher_hash=teacher_hash,
            training_steps=self.step, source=source or "training.trainer", notes={"training_config": self.config.to_dict()},
        )


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out
