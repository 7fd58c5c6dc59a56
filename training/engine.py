"""The training engine: everything the distillation methods share (training/methods/ holds what differs).

The engine owns the generator G — the teacher UNet passed in, trained in place (pass a copy to keep the teacher)
as the one-step generator of the config's OneStepSpec (onestep/parameterization.py), full weights or LoRA — and the
networks its method adds (Diffusion2GAN's discriminator), their optimisers and lr schedule, G's EMA, low-memory
storage (bf16 frozen weights, bf16 trained weights with stochastic-rounding updates, Adafactor), gradient
accumulation and DDP averaging (steps.py, distributed.py), checkpoints with exact resume, stop requests, the NaN
stop, and the generator's weights and metadata for export (export.py). The data order and every random draw are
functions of (seed, step, chunk) (data.py), so a checkpoint resumes bit-for-bit.
"""
from __future__ import annotations

import contextlib
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
from .compile import compile_unet_blocks
from .config import TrainConfig
from .core import OneStepGenerator, collate_pairs, format, keep_output_float32
from .data import ResumableBatchSampler, chunk_rng, derived_seed, my_chunks
from .device_data import DevicePairs
from .ema import EMA, ema_key
from .graph_step import GraphedStep
from .host_to_device import to_device
from .losses import MicroBatch
from .lr_schedule import lr_factor
from .methods import DATA_KEYS, Method, Resources, method_class
from .rounding import Bf16WeightsOptimizer
from .steps import run_phase
from .unet_interface import TrainableUNet, check_batch_compatible, store_frozen, unet_extra

log = logging.getLogger("onestep")
STATE_VERSION = 1
OnStep = Callable[[int, dict], "bool | None"]  # (completed steps, loss terms) → True to stop
GENERATOR = "generator"


@dataclass
class RunResult:
    """How a run ended."""

    step: int  # completed optimiser steps
    stopped: bool  # True when on_step asked to stop before the target
    logs: dict = field(default_factory=dict)  # loss terms of the last step


@dataclass
class Network:
    """A trained network: its module, optimiser and base lr; `key` names its optimiser state and log terms."""

    name: str
    key: str
    module: nn.Module
    optimizer: object  # torch.optim.Optimizer or Bf16WeightsOptimizer
    lr: float

    def state(self) -> dict[str, torch.Tensor]:
        """The module's state without frozen parameters (a frozen backbone is rebuilt from the teacher)."""
        frozen = {n for n, p in self.module.named_parameters() if not p.requires_grad}
        return {k: v for k, v in self.module.state_dict().items() if k not in frozen}


def make_optimizer(name: str, params: list[nn.Parameter], lr: float, betas: tuple[float, float], weight_decay: float,
                   foreach: bool | None = None, eps: float = 1e-8, capturable: bool = False) -> torch.optim.Optimizer:
    """AdamW, or Adafactor (lr relative to each weight's RMS; torch's update without its GPU syncs; no ε to set).
    capturable: AdamW's form a CUDA graph can replay (its step count and lr on the GPU; training/graph_step.py)."""
    if name == "adafactor":
        return SyncFreeAdafactor(params, lr=lr, weight_decay=weight_decay)
    if capturable:
        lr = torch.tensor(lr, dtype=torch.float32, device=params[0].device)
    return torch.optim.AdamW(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, foreach=foreach, capturable=capturable)


class Engine:
    """Trains a teacher UNet into a one-step generator with the config's method (or the `method` given)."""

    def __init__(self, unet: TrainableUNet, config: TrainConfig, resources: Resources | None = None, device: torch.device | str | None = None,
                 method: Method | None = None):
        self.config, self.unet, self.info = config, unet, unet.info
        self.dist = distributed.current()
        self.device = torch.device(device) if device is not None else next(unet.parameters()).device
        self.method = method or method_class(config.method)(config, resources or Resources())
        self.method.prepare(self.info)
        c, o = config, config.optim
        extras = self.method.build(self)  # from the teacher's weights, before G's change
        for x in extras:  # trained weights in their storage dtype; a frozen backbone as it is
            x.module.to(self.device).train()
            for p in x.module.parameters():
                if p.requires_grad:
                    p.data = p.detach().to(getattr(torch, x.storage_dtype))
        if c.generator.lora_rank > 0:
            lora.add_lora(unet, unet.lora_targets(), c.generator.lora_rank, c.generator.lora_alpha, torch.Generator().manual_seed(derived_seed(c.seed, -2)))
        else:
            unet.requires_grad_(True)
        if c.generator.frozen_dtype != "float32":  # before the move, so the device never holds the float32 copy
            store_frozen(unet, getattr(torch, c.generator.frozen_dtype))
        if c.generator.storage_dtype != "float32":  # G's trained weights too (stochastic-rounding updates below)
            for p in unet.parameters():
                if p.requires_grad:
                    p.data = p.detach().to(getattr(torch, c.generator.storage_dtype))
        unet.to(self.device).train()
        if c.generator.gradient_checkpointing:
            unet.set_gradient_checkpointing(True)
        keep_output_float32(getattr(unet, "output_conv", None))  # x0 amplifies ε̂'s rounding ~15× (onestep/precision.py)
        self.generator = OneStepGenerator(unet, c.generator.spec)
        distributed.broadcast_module(unet, self.dist)
        for x in extras:
            distributed.broadcast_module(x.module, self.dist)
        graph = c.cuda_graph
        self.opt_g = make_optimizer(o.optimizer, self.trainable_parameters(), o.lr_g, o.betas, o.weight_decay, o.foreach, capturable=graph)
        if c.generator.storage_dtype != "float32":
            self.opt_g = Bf16WeightsOptimizer(self.opt_g, derived_seed(c.seed, -9))
        self.networks: dict[str, Network] = {GENERATOR: Network(GENERATOR, "g", unet, self.opt_g, o.lr_g)}
        for x in extras:
            if x.name in self.networks or x.key == "g":
                raise ValueError(f"method {self.method.name!r} names two networks {x.name!r}/{x.key!r}")
            opt = make_optimizer(x.optimizer, [p for p in x.module.parameters() if p.requires_grad], x.lr, x.betas or o.betas_d or o.betas, o.weight_decay, o.foreach,
                                 o.eps_d, capturable=graph)
            if x.storage_dtype != "float32":
                opt = Bf16WeightsOptimizer(opt, x.rounding_seed)
            self.networks[x.name] = Network(x.name, x.key, x.module, opt, x.lr)
        if c.channels_last:  # before the averages are cloned from G, so that they share its layout
            for module in self._step_modules():
                module.to(memory_format=torch.channels_last)
        self.ema = EMA(unet, c.ema_decay, getattr(torch, c.ema_dtype), derived_seed(c.seed, -3), ramp=c.ema_ramp)
        # TrainConfig.ema_extra: more averages to choose from after the fact (each its own rounding stream)
        self.extra_emas = {d: EMA(unet, d, getattr(torch, c.ema_dtype), derived_seed(c.seed, -30 - i), ramp=c.ema_ramp)
                           for i, d in enumerate(c.ema_extra)}
        self.step = 0
        self.graphed: GraphedStep | None = self._graphed_step() if graph else None
        if c.compile_blocks:  # last: after LoRA, storage dtypes and the method's copies (a copy of a compiled block would not be)
            n = compile_unet_blocks(self._step_modules(), c.compile_mode)
            log.info("[onestep] compile_blocks: %d UNet blocks compiled, mode %s (the first steps compile them)", n, c.compile_mode)

    def _averages(self) -> list[EMA]:
        """G's averages: the main one (ema_decay's), then TrainConfig.ema_extra's."""
        return [self.ema, *self.extra_emas.values()]

    def _step_modules(self) -> list[nn.Module]:
        """Every network a step runs: G, the method's trained networks and its frozen ones (e.g. SiD-LSG's teacher φ)."""
        frozen = [m for m in vars(self.method).values() if isinstance(m, nn.Module)]
        return [self.unet, *(net.module for net in self.networks.values() if net.module is not self.unet), *frozen]

    @torch.no_grad()
    def start_generator_from(self, weights: dict[str, torch.Tensor]) -> None:
        """Before the first step: G (and its EMA) start from `weights` (the adapter's native names, e.g. a finished
        regression run's), while the method's networks keep what they were built from (Diffusion2GAN's D: the
        teacher's encoder) — the paper's recipe of a regression stage followed by the GAN stage."""
        if self.step:
            raise ValueError(f"the generator can only be replaced before training starts (this run is at step {self.step})")
        if lora.lora_layers(self.unet):
            raise ValueError("a LoRA run trains factors on the teacher's weights: start it from full weights instead")
        own = dict(self.unet.named_parameters())
        if set(weights) != set(own):
            missing, extra = sorted(set(own) - set(weights))[:3], sorted(set(weights) - set(own))[:3]
            raise ValueError(f"the start weights are for another UNet (missing {missing}, unexpected {extra})")
        for name, p in own.items():
            if weights[name].shape != p.shape:
                raise ValueError(f"start weight {name} has shape {tuple(weights[name].shape)}, the generator's is {tuple(p.shape)}")
            p.copy_(weights[name])
        for ema in self._averages():
            for name, shadow in ema.shadow.items():
                shadow.copy_(own[name])
        distributed.broadcast_module(self.unet, self.dist)

    def start_network_from(self, name: str, weights: dict[str, torch.Tensor]) -> None:
        """Before the first step: the method's network `name` (e.g. SiD-LSG's fake score) starts from `weights`, its
        trained tensors as Network.state() names them (a run carried on from another run's G and ψ)."""
        if self.step:
            raise ValueError(f"the {name} network can only be replaced before training starts (this run is at step {self.step})")
        net = self.networks.get(name)
        if net is None or name == GENERATOR:
            raise ValueError(f"this {self.method.name} run trains no network {name!r} beside G (it has {sorted(self.networks)})")
        own = net.state()
        if set(weights) != set(own):
            missing, extra = sorted(set(own) - set(weights))[:3], sorted(set(weights) - set(own))[:3]
            raise ValueError(f"the start weights are not {name}'s (missing {missing}, unexpected {extra})")
        with torch.no_grad():
            for k, v in own.items():
                if weights[k].shape != v.shape:
                    raise ValueError(f"start weight {k} has shape {tuple(weights[k].shape)}, {name}'s is {tuple(v.shape)}")
                v.copy_(weights[k])  # state() holds the module's own tensors: this writes into the network
        distributed.broadcast_module(net.module, self.dist)

    def _graphed_step(self) -> GraphedStep:
        """The CUDA-graph step (TrainConfig.cuda_graph), after the checks only a built engine can make."""
        if self.device.type != "cuda":
            raise ValueError(f"cuda_graph replays the step on a CUDA GPU; this run is on {self.device.type}")
        if self.dist.world_size > 1:
            raise ValueError("cuda_graph runs on one GPU (its graph holds no collectives); this run has "
                             f"{self.dist.world_size} ranks")
        reason = self.method.capturable()
        if reason:
            raise ValueError(f"cuda_graph: {reason}")
        return GraphedStep(self)

    def trainable_parameters(self) -> list[nn.Parameter]:
        """G's parameters being trained (all, or the LoRA factors)."""
        return [p for p in self.unet.parameters() if p.requires_grad]

    # -- one step -------------------------------------------------------------------------------------------
    def _micro_batch(self, chunk: dict, j: int) -> MicroBatch:
        dev = self.device
        latent = to_device(chunk["latent"], dev, torch.float32) if "latent" in chunk else None
        extra = unet_extra(chunk, dev)
        return MicroBatch(
            z=to_device(chunk["noise"], dev, torch.float32) if "noise" in chunk else None,
            real=self.info.to_unet_space(latent) if latent is not None else None, latent=latent,
            context=to_device(chunk["context"], dev, torch.float32), extra=extra,
            seed=chunk.get("seed"), prompt_index=chunk.get("prompt_index"), rng=chunk_rng(self.config.seed, self.step, j),
        )

    def train_step(self, batch: dict) -> dict[str, float]:
        """One step of every phase the method runs now, on a global batch; the averaged loss terms."""
        check_batch_compatible(batch, self.info, DATA_KEYS[self.method.data])
        c = self.config
        mbs = [self._micro_batch(chunk, j) for j, chunk in my_chunks(batch, self.dist.world_size, c.optim.grad_accumulation, self.dist.rank)]
        self._set_learning_rates()
        if c.compile_blocks and c.compile_mode == "reduce-overhead":
            # CUDA-graph trees: a new step starts here, so the last step's graph outputs (none are kept) may be overwritten
            torch.compiler.cudagraph_mark_step_begin()
        terms = self.graphed(mbs, self.step + 1) if self.graphed is not None else None
        if terms is None:
            with self._warmup_stream():
                terms = {}
                for phase in self.method.phases(self, self.step):
                    terms.update(run_phase(self, phase, mbs, self.step + 1))  # 1-based, as people count steps
        for ema in self._averages():
            ema.update(self.unet)  # outside a graph: its weight ramps with the update count
        self.step += 1
        return terms

    @contextlib.contextmanager
    def _warmup_stream(self):
        """The eager steps before a CUDA-graph capture run on a side stream (torch's rule for capture); else as they are."""
        if not self.config.cuda_graph:
            yield
            return
        main, side = torch.cuda.current_stream(self.device), torch.cuda.Stream(self.device)
        side.wait_stream(main)
        with torch.cuda.stream(side):
            yield
        main.wait_stream(side)

    def _set_learning_rates(self) -> None:
        """Every optimiser's lr for this step: its base lr × the schedule's factor (lr_schedule.py; the other networks'
        lr stays at its base with OptimConfig.lr_d_schedule "constant")."""
        o = self.config.optim
        f = lr_factor(self.step, o.lr_warmup, o.lr_decay, o.lr_decay_steps, o.lr_floor)
        start = self.method.generator_start()  # G holds before it (lr 0: Adam then leaves its weights as they are)
        f_g = 0.0 if self.step < start else lr_factor(self.step - start, o.lr_warmup, o.lr_decay, o.lr_decay_steps - start, o.lr_floor)
        held = self.method.held_with_generator()
        for name, net in self.networks.items():
            for group in net.optimizer.param_groups:
                lr = net.lr * (f_g if name == GENERATOR or name in held else f if o.lr_d_schedule == "shared" else 1.0)
                if not self.config.cuda_graph:
                    group["lr"] = lr
                elif isinstance(group["lr"], torch.Tensor) and group["lr"].is_cuda:  # (cuda:0 != the engine's "cuda")
                    group["lr"].fill_(lr)  # in place: a captured step reads this tensor
                else:  # a resumed state's lr (a float, or a tensor on the host): before any capture
                    group["lr"] = torch.tensor(lr, dtype=torch.float32, device=self.device)

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
        """Everything a resume needs: G's trainable weights, the method's networks, every optimiser, EMA, step, RNG
        states, config. G under "generator"/"opt_g", each extra network under its name and "opt_<key>"."""
        rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        state = {
            "version": STATE_VERSION, "method": self.method.name, "step": self.step, "config": self.config.to_dict(),
            "generator": {n: p for n, p in self.unet.named_parameters() if p.requires_grad}, "opt_g": _plain_lr(self.opt_g.state_dict()),
            "ema": self.ema.state_dict(), "rng": rng,
            "data": {"seed": self.config.seed, "next_batch": self.step},  # the order is a function of (seed, step)
        }
        if self.extra_emas:
            state["ema_extra"] = {ema_key(d): e.state_dict() for d, e in self.extra_emas.items()}
        for net in self.extra_networks():
            state[net.name], state[f"opt_{net.key}"] = net.state(), _plain_lr(net.optimizer.state_dict())
        return state

    def extra_networks(self) -> list[Network]:
        """The method's networks (all but G)."""
        return [n for n in self.networks.values() if n.name != GENERATOR]

    def load_state_dict(self, state: dict) -> None:
        """Restore a state_dict() of an engine built the same way (same UNet, method and config structure). States
        written before methods were named (no "method") are Diffusion2GAN's, which the regression method also reads."""
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"trainer state version {state.get('version')!r} is not supported (this code reads {STATE_VERSION})")
        saved_method = state.get("method")
        if saved_method is not None and saved_method != self.method.name:
            raise ValueError(f"the checkpoint was written by the {saved_method!r} method, this run trains with {self.method.name!r}")
        if saved_method is None and self.method.name not in ("diffusion2gan", "regression"):
            raise ValueError(f"the checkpoint predates training methods (it is Diffusion2GAN's); this run trains with {self.method.name!r}")
        saved, now = _flat(state["config"]), _flat(self.config.to_dict())
        # settings the saved config lacks were added after it was written (the method name, a new method's section)
        diff = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k) and k in saved)
        if diff:
            log.warning("[onestep] resuming with a changed configuration: %s", ", ".join(diff))
        params = {n: p for n, p in self.unet.named_parameters() if p.requires_grad}
        if set(params) != set(state["generator"]):
            raise ValueError("the checkpoint's generator weights do not match this trainer (full fine-tune vs LoRA, or another UNet)")
        for net in self.extra_networks():
            if set(state.get(net.name, {})) != set(net.state()):
                raise ValueError(f"the checkpoint's {net.name} does not match this trainer (full vs LoRA backbone, or another UNet)")
        with torch.no_grad():
            for n, p in params.items():
                p.copy_(state["generator"][n])
        for net in self.extra_networks():
            net.module.load_state_dict(state[net.name], strict=False)
            net.optimizer.load_state_dict(state[f"opt_{net.key}"])
        self.opt_g.load_state_dict(state["opt_g"])
        for net in self.networks.values():
            _match_capturable(net.optimizer, self.config.cuda_graph)
        self.ema.load_state_dict(state["ema"])
        saved_extra = state.get("ema_extra", {})
        for d, ema in self.extra_emas.items():
            if ema_key(d) in saved_extra:
                ema.load_state_dict(saved_extra[ema_key(d)])
            else:  # an average this run did not keep before: it starts from the main one
                ema.start_from(self.ema, self.unet)
                log.info("[onestep] EMA %g starts at step %d from the EMA %g", d, int(state["step"]), self.config.ema_decay)
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
        optimizers = {"opt_g": self.opt_g, **{f"opt_{n.key}": n.optimizer for n in self.extra_networks()}}
        check_fits(state, self.state_dict(), optimizers, name)
        try:
            self.load_state_dict(state)
        except (ValueError, RuntimeError, KeyError, TypeError, AttributeError, IndexError) as e:
            raise CheckpointError(f"{name} does not fit this trainer: {type(e).__name__}: {e}") from None
        return self.step

    # -- export ---------------------------------------------------------------------------------------------
    def averaged(self, ema: bool | float = True) -> dict[str, torch.Tensor] | None:
        """The shadow weights of an average: True the main one (ema_decay's), a float the one with that decay (the main
        one's or one of TrainConfig.ema_extra), False none (the live weights)."""
        if ema is False:
            return None
        if ema is True or ema == self.config.ema_decay:
            return self.ema.shadow
        if ema not in self.extra_emas:
            raise ValueError(f"this run keeps no EMA with decay {ema} (it keeps {[self.config.ema_decay, *self.extra_emas]})")
        return self.extra_emas[ema].shadow

    def generator_state_dict(self, ema: bool | float = True, layout: str = "ldm") -> dict[str, torch.Tensor]:
        """G's full weights (the main EMA by default, or the average `ema` names: Engine.averaged; LoRA merged in) in
        ComfyUI's ldm layout ("ldm") or the adapter's own ("native")."""
        params = self.averaged(ema)
        if lora.lora_layers(self.unet):
            sd = lora.merged_state_dict(self.unet, params)
        else:
            sd = {k: (params or {}).get(k, v).detach() for k, v in self.unet.state_dict().items()}
        sd = {k: v.detach().float().cpu().contiguous() for k, v in sd.items()}
        return self.unet.export_state_dict(sd) if layout == "ldm" else sd

    def lora_state_dict(self, ema: bool | float = True) -> dict[str, torch.Tensor]:
        """`<module>.lora_down.weight` / `.lora_up.weight` / `.alpha` per wrapped layer (names as in the adapter)."""
        return lora.lora_state_dict(self.unet, self.averaged(ema))

    def generator_metadata(self, base: str, latent_format: str, guidance: float | None = None, teacher_hash: str = "", source: str = "") -> format.GeneratorMetadata:
        """The generator file's metadata for this run (onestep.format.save_generator)."""
        s = self.config.generator.spec
        return format.GeneratorMetadata(
            method=self.method.file_method or self.method.name, base=base, prediction=s.prediction, timestep=s.timestep,
            input_convention=s.input_convention, latent_format=latent_format, latent_channels=self.info.latent_channels, guidance=guidance,
            teacher_hash=teacher_hash, training_steps=self.step, source=source or "training.engine",
            notes={"training_method": self.method.name, "training_config": self.config.to_dict(), **self.method.file_notes()},
        )


def _plain_lr(state: dict) -> dict:
    """An optimiser state with its groups' lr as floats (a CUDA-graph run keeps them as device tensors): checkpoints
    stay the same whether or not the run replayed graphs."""
    groups = [{**g, "lr": float(g["lr"])} if isinstance(g.get("lr"), torch.Tensor) else g for g in state.get("param_groups", [])]
    return {**state, "param_groups": groups} if "param_groups" in state else state


def _match_capturable(optimizer, capturable: bool) -> None:
    """After loading an optimiser state: AdamW in the form this run steps it (a CUDA-graph run's checkpoint resumed
    eagerly, or the reverse), its step counts where that form keeps them (capturable: on the weights' device)."""
    inner = getattr(optimizer, "inner", optimizer)  # Bf16WeightsOptimizer wraps AdamW
    if not isinstance(inner, torch.optim.AdamW):
        return
    for group in inner.param_groups:
        group["capturable"] = capturable
        for p in group["params"]:
            st = inner.state.get(p, {})
            if isinstance(st.get("step"), torch.Tensor):
                st["step"] = st["step"].to(p.device if capturable else "cpu", torch.float32)


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out
