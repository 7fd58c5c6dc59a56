"""One Diffusion2GAN training run over a teacher-pairs dataset, as the ComfyUI node and the CLI drive it: the
dataset checked against the UNet, resume from the run's checkpoint, a loss history kept next to it, previews of
the student on fixed dataset items, and the export as a generator file (and a LoRA for core's LoRA loaders)."""
from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Callable

import torch
from safetensors.torch import save_file

from .config import TrainConfig
from .device_data import DevicePairs
from .core import ELatentLPIPS, PairDataset, atomic_write, collate_pairs, format
from .loss_curve import loss_curve
from .trainer import RunResult, Trainer
from .unet_interface import IncompatibleDataError, TrainableUNet, check_batch_compatible

log = logging.getLogger("onestep")


class TrainingSession:
    """A trainer bound to a dataset and a run folder (checkpoint.safetensors + history.json)."""

    def __init__(self, unet: TrainableUNet, config: TrainConfig, dataset_folder: str, run_dir: str,
                 elpips: ELatentLPIPS | None = None, device: torch.device | None = None, resume: bool = True):
        self.dataset = PairDataset(dataset_folder)
        check_batch_compatible(self.dataset[0], unet.info)
        if len(self.dataset) < config.batch_size:
            raise IncompatibleDataError(f"the dataset holds {len(self.dataset)} pairs, fewer than one batch of {config.batch_size}")
        self.run_dir = run_dir
        os.makedirs(run_dir, exist_ok=True)
        self.checkpoint = os.path.join(run_dir, "checkpoint.safetensors")
        self.history_path = os.path.join(run_dir, "history.json")
        self.trainer = Trainer(unet, config, elpips, device)
        self.history: dict[str, list[tuple[int, float]]] = {}
        self._device_pairs: DevicePairs | None = None
        if resume and os.path.isfile(self.checkpoint):
            step = self.trainer.load(self.checkpoint)
            if os.path.isfile(self.history_path):
                with open(self.history_path, encoding="utf-8") as f:
                    self.history = {k: [tuple(p) for p in v if p[0] <= step] for k, v in json.load(f).items()}
            log.info("[onestep] resumed %s at step %d", run_dir, step)

    @property
    def step(self) -> int:
        return self.trainer.step

    def run(self, steps: int, on_step: Callable[[int, dict], bool] | None = None) -> RunResult:
        """Train to `steps` (resumed steps count); records every step's loss terms; on_step → True stops (checkpointed)."""
        def record(step: int, logs: dict) -> bool:
            for k, v in logs.items():
                self.history.setdefault(k, []).append((step, float(v)))
            stop = bool(on_step(step, logs)) if on_step else False
            if stop or step == steps or (self.trainer.config.save_every and step % self.trainer.config.save_every == 0):
                self.save_history()
            return stop

        result = self.trainer.run(self.training_data(), steps, record, checkpoint=self.checkpoint)
        self.save_history()
        return result

    def training_data(self) -> PairDataset | DevicePairs:
        """The pairs on the training device when the config allows and they fit (a quarter of the GPU's memory at
        most under "auto"), else the Dataset; both give the same batches in the same order."""
        where, device = self.trainer.config.data_on_device, self.trainer.device
        if where == "never" or (where == "auto" and device.type != "cuda"):
            return self.dataset
        if self._device_pairs is None:
            if where == "auto" and DevicePairs.nbytes(self.dataset) > torch.cuda.get_device_properties(device).total_memory // 4:
                return self.dataset
            try:
                self._device_pairs = DevicePairs(self.dataset, device)
            except ValueError as e:  # prompts of different token lengths: the Dataset path repeats them per batch
                if where == "always":
                    raise
                log.info("[onestep] pairs stay on the host: %s", e)
                return self.dataset
        return self._device_pairs

    def save_history(self) -> None:
        text = json.dumps(self.history)
        atomic_write(self.history_path, lambda tmp: open(tmp, "w", encoding="utf-8").write(text))

    def loss_curve(self):
        """[H, W, 3] float image of the loss history."""
        return loss_curve(self.history)

    @torch.no_grad()
    def previews(self, count: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
        """(student latents, teacher latents) [n, C, h, w] for the dataset's first items (fixed seeds)."""
        items = [self.dataset[i] for i in range(min(count, len(self.dataset)))]
        batch = collate_pairs(items)
        t = self.trainer
        dev = t.device
        extra = {"pooled": batch["pooled"].to(dev)} if "pooled" in batch else {}
        was_training = t.unet.training
        t.unet.eval()
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=t.config.bf16):  # weights stored in bf16 need it
            x0 = t.generator(batch["noise"].to(dev), batch["context"].to(dev), **extra)
        t.unet.train(was_training)
        return t.info.to_latent(x0.float()).cpu(), batch["latent"]

    def export(self, generator_path: str, base: str, latent_format: str, lora_path: str | None = None, lora_prefix: str = "diffusion_model.",
               unet_config: dict | None = None) -> format.GeneratorMetadata:
        """Write the EMA generator in the generator format (and, for a LoRA run, the LoRA for core's loaders);
        `unet_config` records what the weights do not tell (attention heads of non-standard widths)."""
        s = self.dataset.settings
        meta = self.trainer.generator_metadata(base, latent_format, guidance=s.cfg, teacher_hash=s.teacher[:16],
                                               source=f"Diffusion2GAN from pairs {os.path.basename(os.path.normpath(self.dataset.folder))}")
        if unet_config:
            meta = dataclasses.replace(meta, unet_config=dict(unet_config))
        format.save_generator(generator_path, self.trainer.generator_state_dict(ema=True), meta)
        if lora_path and self.trainer.config.generator.lora_rank > 0:
            sd = {lora_prefix + k[len("unet."):] if k.startswith("unet.") else lora_prefix + k: v for k, v in self.trainer.lora_state_dict(ema=True).items()}
            atomic_write(lora_path, lambda tmp: save_file(sd, tmp, metadata={"onestep.method": "diffusion2gan", "onestep.steps": str(self.step)}))
        return meta
