"""One training run as the ComfyUI node, the CLI (also under torchrun) and the proof-scale rows drive it: the data
checked against the UNet and the method, the engine built from the typed config, resume from the run's checkpoint,
a loss history kept next to it, previews of the student on fixed items, and the export (export.py).

Data: a teacher-pairs dataset folder (onestep/pairs) or any map-style Dataset of items in its layout; a
prompts-only method takes items with just the conditioning ("context", optional "pooled"), and the empty prompt's
conditioning for CFG (`unconditional`, or the dataset's own: prompts.PromptDataset)."""
from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable

import torch

from .config import TrainConfig
from .core import size_notes
from .core import ELatentLPIPS, PairDataset, atomic_write, collate_pairs, format
from .device_data import DevicePairs
from .engine import Engine, RunResult
from .export import export_generator
from .loss_curve import loss_curve
from .methods import DATA_KEYS, Method, Resources
from .unet_interface import IncompatibleDataError, TrainableUNet, check_batch_compatible, unet_extra

log = logging.getLogger("onestep")


class TrainingSession:
    """An engine bound to its data and a run folder (checkpoint.safetensors + history.json). Without a run folder
    the checkpoint is `checkpoint` (none if not given) and the history stays in memory."""

    def __init__(self, unet: TrainableUNet, config: TrainConfig, data: str | torch.utils.data.Dataset, run_dir: str | None,
                 elpips: ELatentLPIPS | None = None, device: torch.device | None = None, resume: bool = True, *,
                 checkpoint: str | None = None, method: Method | None = None, unconditional: dict | None = None):
        self.dataset = PairDataset(data) if isinstance(data, (str, os.PathLike)) else data
        self.pairs = isinstance(self.dataset, PairDataset)
        if unconditional is not None:
            source = lambda: dict(unconditional)  # noqa: E731
        else:  # prompts data (prompts.PromptDataset) brings its own; a pairs dataset has its negative prompt (read lazily)
            source = getattr(self.dataset, "unconditional", None) or getattr(self.dataset, "negative", None)
        resources = Resources(elpips=elpips, unconditional=source)
        self.trainer = Engine(unet, config, resources, device, method=method)  # the config's method unless one is given
        check_batch_compatible(self.dataset[0], unet.info, DATA_KEYS[self.trainer.method.data])
        if len(self.dataset) < config.batch_size:
            raise IncompatibleDataError(f"batch_size {config.batch_size} is more than the {len(self.dataset)} items the dataset holds: "
                                        "lower batch_size (or collect more pairs)")
        self.run_dir = run_dir
        self.checkpoint = checkpoint
        self.history_path = None
        if run_dir is not None:
            os.makedirs(run_dir, exist_ok=True)
            self.checkpoint = checkpoint or os.path.join(run_dir, "checkpoint.safetensors")
            self.history_path = os.path.join(run_dir, "history.json")
        self.history: dict[str, list[tuple[int, float]]] = {}
        self.warnings: list[str] = []  # the method's notices about the run's health (also logged), e.g. a dead D
        self._device_pairs: DevicePairs | None = None
        if resume and self.checkpoint and os.path.isfile(self.checkpoint):
            step = self.trainer.load(self.checkpoint)
            if self.history_path and os.path.isfile(self.history_path):
                with open(self.history_path, encoding="utf-8") as f:
                    self.history = {k: [tuple(p) for p in v if p[0] <= step] for k, v in json.load(f).items()}
            log.info("[onestep] resuming from %s at step %d", self.checkpoint, step)

    @property
    def step(self) -> int:
        return self.trainer.step

    def run(self, steps: int, on_step: Callable[[int, dict], bool] | None = None, num_workers: int = 0) -> RunResult:
        """Train to `steps` (resumed steps count); records every step's loss terms; on_step → True stops (checkpointed)."""
        def record(step: int, logs: dict) -> bool:
            for k, v in logs.items():
                self.history.setdefault(k, []).append((step, float(v)))
            note = self.trainer.method.notice(step, logs)
            if note:
                self.warnings.append(note)
                if self.trainer.dist.is_main:
                    log.warning("[onestep] %s", note)
            stop = bool(on_step(step, logs)) if on_step else False
            if stop or step == steps or (self.trainer.config.save_every and step % self.trainer.config.save_every == 0):
                self.save_history()
            return stop

        result = self.trainer.run(self.training_data(), steps, record, checkpoint=self.checkpoint, collate_fn=collate_pairs, num_workers=num_workers)
        self.save_history()
        return result

    def training_data(self) -> torch.utils.data.Dataset | DevicePairs:
        """Pairs on the training device when the config allows and they fit (a quarter of the GPU's memory at most
        under "auto"), else the Dataset; both give the same batches in the same order."""
        where, device = self.trainer.config.data_on_device, self.trainer.device
        if not self.pairs or where == "never" or (where == "auto" and device.type != "cuda"):
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
        if self.history_path is None or not self.trainer.dist.is_main:
            return
        text = json.dumps(self.history)
        atomic_write(self.history_path, lambda tmp: open(tmp, "w", encoding="utf-8").write(text))

    def loss_curve(self):
        """[H, W, 3] float image of the loss history."""
        return loss_curve(self.history)

    @torch.no_grad()
    def previews(self, count: int = 4) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(student latents, teacher latents or None) [n, C, h, w] for the data's first items (fixed noise)."""
        items = [self.dataset[i] for i in range(min(count, len(self.dataset)))]
        batch = collate_pairs(items)
        t = self.trainer
        dev = t.device
        noise = batch["noise"] if "noise" in batch else t.method.draw_noise(t, len(items), torch.Generator().manual_seed(t.config.seed))
        extra = unet_extra(batch, dev)
        was_training = t.unet.training
        t.unet.eval()
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=t.config.bf16):  # weights stored in bf16 need it
            x0 = t.generator(noise.to(dev), batch["context"].to(dev), **extra)
        t.unet.train(was_training)
        return t.info.to_latent(x0.float()).cpu(), batch.get("latent")

    def export(self, generator_path: str, base: str, latent_format: str, lora_path: str | None = None, lora_prefix: str = "diffusion_model.",
               unet_config: dict | None = None, *, teacher_hash: str | None = None, guidance: float | None = None, source: str | None = None,
               weights: dict[str, torch.Tensor] | None = None, training_steps: int | None = None, notes: dict | None = None) -> format.GeneratorMetadata:
        """Write the generator (export.export_generator; by default the EMA weights) and, for a LoRA run, the LoRA for
        core's loaders. With a pairs dataset the teacher's fingerprint, the guidance and the source come from it."""
        if self.pairs:
            s = self.dataset.settings
            teacher_hash = teacher_hash or s.teacher[:16]
            guidance = s.cfg if guidance is None else guidance
            source = source or f"{self.trainer.method.name} from pairs {os.path.basename(os.path.normpath(self.dataset.folder))}"
            if s.sdxl_size:  # what to set in CLIP Text Encode SDXL at inference to meet the training's conditioning
                notes = {**size_notes(s.sdxl_size), **(notes or {})}
        if guidance is None:
            guidance = self.trainer.method.guidance()
        return export_generator(self.trainer, generator_path, base, latent_format, teacher_hash=teacher_hash or "", guidance=guidance,
                                source=source or self.trainer.method.name, weights=weights, training_steps=training_steps,
                                unet_config=unet_config, notes=notes, lora_path=lora_path, lora_prefix=lora_prefix)
