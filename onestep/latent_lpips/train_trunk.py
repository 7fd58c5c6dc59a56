"""Train the latent VGG16-BN trunk as a classifier on labelled latents (the paper's step 1 for a new latent
space: the published trunks were trained as ImageNet classifiers on VAE latents). Resumable: the checkpoint
holds weights, optimizer, step and the batch-sampling RNG, so N steps equal N/2 + resume + N/2 exactly."""
from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass
from typing import Callable

import torch
from torch import nn

from .augment import PairedAugment
from .checkpoint import end_of_step, restore, snapshot
from .network import LatentLPIPS, LatentVGG16BN

log = logging.getLogger("latent_lpips")


@dataclass(frozen=True)
class TrunkTrainConfig:
    """Classifier training of the trunk."""

    steps: int = 2000  # optimizer steps
    batch: int = 64  # latents per step
    lr: float = 1e-3  # AdamW learning rate
    weight_decay: float = 1e-4  # AdamW weight decay
    width: float = 1.0  # channel multiplier of the trunk (1 = the published VGG16 widths)
    seed: int = 0  # initialisation and batch sampling
    log_every: int = 50  # steps between progress reports
    checkpoint_every: int = 200  # steps between checkpoints
    # Augmentation preset applied to every training batch (augment.py letters, "" none): the trunk of an E-LatentLPIPS
    # for a new latent space should have seen the transforms the loss's ensemble applies ("bg"), or their features
    # on augmented inputs are noise to it.
    augment: str = ""


class TrunkClassifier(nn.Module):
    """The trunk with a global-average-pool + linear classification head on its last tap."""

    def __init__(self, in_channels: int, num_classes: int, width: float = 1.0):
        super().__init__()
        self.trunk = LatentVGG16BN(in_channels, width)
        self.head = nn.Linear(self.trunk.slice5[-3].num_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(x)[-1].mean(dim=(2, 3)))


class TrunkTrainingStopped(Exception):
    """train_trunk reached its deadline; the checkpoint holds the state to resume from (the message names the step)."""


def train_trunk(
    latents: torch.Tensor, labels: torch.Tensor, cfg: TrunkTrainConfig, checkpoint: str | None = None,
    progress: Callable[[int, float], None] | None = None, device: torch.device | str = "cpu", deadline: float = math.inf,
) -> TrunkClassifier:
    """Train (or resume) the classifier on `device` (bf16 autocast on CUDA); `progress(step, loss)` is called every
    log_every steps. Batches are drawn by a CPU generator, so every device samples the same items. Past the
    time.monotonic() `deadline` it writes the checkpoint and raises TrunkTrainingStopped."""
    device = torch.device(device)
    torch.manual_seed(cfg.seed)
    model = TrunkClassifier(latents.shape[1], int(labels.max()) + 1, cfg.width).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    g = torch.Generator().manual_seed(cfg.seed)
    parts = {"model": model, "optimizer": opt}
    step = restore(checkpoint, parts, g)
    if step:
        log.info("resumed trunk training at step %d", step)
    latents, labels = latents.to(device), labels.to(device)
    augment = PairedAugment(cfg.augment) if cfg.augment else None
    model.train()
    while step < cfg.steps:
        idx = torch.randint(len(latents), (cfg.batch,), generator=g).to(device)
        x = latents[idx]
        if augment is not None:  # parameters from the same CPU generator: resumes exactly
            (x,) = augment(x, generator=g)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = nn.functional.cross_entropy(model(x).float(), labels[idx])
        if not torch.isfinite(loss):
            raise FloatingPointError(f"trunk training diverged at step {step} (loss {loss.item()}); the last checkpoint is kept")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        end_of_step(step, loss, cfg, progress, checkpoint, parts, g)
        if step < cfg.steps and time.monotonic() > deadline:
            if checkpoint:
                snapshot(checkpoint, parts, g, step, asdict(cfg))
            raise TrunkTrainingStopped(f"trunk training stopped at its deadline at step {step}/{cfg.steps} (checkpoint {checkpoint})")
    return model.eval()


@torch.no_grad()
def accuracy(model: TrunkClassifier, latents: torch.Tensor, labels: torch.Tensor, batch: int = 256) -> float:
    """Top-1 accuracy."""
    model.eval()
    hits = sum((model(latents[i:i + batch]).argmax(1) == labels[i:i + batch]).sum().item() for i in range(0, len(latents), batch))
    return hits / len(latents)


def to_latent_lpips(model: TrunkClassifier) -> LatentLPIPS:
    """A LatentLPIPS with the trained trunk and uniform (uncalibrated) heads."""
    width = model.trunk.slice1[0].out_channels / 64
    net = LatentLPIPS(model.trunk.slice1[0].in_channels, width=width)
    net.net.load_state_dict(model.trunk.state_dict())
    for lin in net.lins:
        nn.init.constant_(lin.model[1].weight, 1.0 / lin.model[1].weight.shape[1])
    return net.eval()
