"""The benchmark's evaluator network: a small CNN classifier of Fashion-MNIST latents ([N, 1, 32, 32] in
[−1, 1]) whose penultimate layer is the feature space of the Fréchet distance and of k-NN precision/recall
(see evaluator.py). Trained by the project, so the metrics are reproducible without downloaded weights."""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import nn

from .checkpoint import load_tensors, save_tensors

log = logging.getLogger("proof_scale")
KIND = "fmnist-classifier"


@dataclass(frozen=True)
class ClassifierConfig:
    """Architecture of the classifier."""

    width: int = 32  # channels of the first conv stage (stages: width, 2·width, 4·width at 32, 16, 8 px)
    feature_dim: int = 256  # penultimate (feature) layer width: the metrics' feature space
    dropout: float = 0.3  # dropout before the classification head (training only)
    num_classes: int = 10  # classes of the labelled set (set from its labels by the pipeline)


@dataclass(frozen=True)
class ClassifierTrainConfig:
    """Supervised training on the train split."""

    steps: int = 3000  # optimizer steps (≈ 13 epochs at batch 256)
    batch: int = 256  # images per step
    lr: float = 2e-3  # AdamW peak learning rate (cosine decay to 0 after warmup)
    warmup: int = 100  # linear warmup steps
    weight_decay: float = 5e-4  # AdamW weight decay
    max_shift: int = 1  # random translation augmentation, pixels (0 = none); the padding makes it lossless
    seed: int = 0  # initialisation, batch order and augmentation
    log_every: int = 200  # steps between progress reports


def _stage(cin: int, cout: int) -> nn.Sequential:
    conv = lambda i, o: [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True)]
    return nn.Sequential(*conv(cin, cout), *conv(cout, cout), nn.MaxPool2d(2))


class Classifier(nn.Module):
    """Three conv stages (32→16→8→4 px), a linear feature layer, a linear head."""

    def __init__(self, cfg: ClassifierConfig = ClassifierConfig()):
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        self.trunk = nn.Sequential(_stage(1, w), _stage(w, 2 * w), _stage(2 * w, 4 * w), nn.Flatten())
        self.feature = nn.Sequential(nn.Linear(4 * w * 16, cfg.feature_dim, bias=False), nn.BatchNorm1d(cfg.feature_dim))
        self.head = nn.Sequential(nn.ReLU(), nn.Dropout(cfg.dropout), nn.Linear(cfg.feature_dim, cfg.num_classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features [N, feature_dim] (batch-normalised, before the ReLU)."""
        return self.feature(self.trunk(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits [N, 10]."""
        return self.head(self.features(x))


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image by an integer offset in [−max_shift, max_shift]², filling with the background (−1)."""
    if max_shift == 0:
        return x
    n, _, h, w = x.shape
    xp = nn.functional.pad(x, (max_shift,) * 4, value=-1.0)
    d = torch.randint(0, 2 * max_shift + 1, (2, n), generator=generator, device=x.device)
    rows = (torch.arange(h, device=x.device)[None, :] + d[0][:, None])[:, :, None]
    cols = (torch.arange(w, device=x.device)[None, :] + d[1][:, None])[:, None, :]
    return xp[torch.arange(n, device=x.device)[:, None, None], 0, rows, cols].unsqueeze(1)


def _lr_factor(step: int, cfg: ClassifierTrainConfig) -> float:
    if step < cfg.warmup:
        return (step + 1) / cfg.warmup
    return 0.5 * (1.0 + math.cos(math.pi * (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)))


def train_classifier(
    latents: torch.Tensor, labels: torch.Tensor, cfg: ClassifierTrainConfig = ClassifierTrainConfig(),
    net: ClassifierConfig = ClassifierConfig(), device: str | torch.device | None = None,
    progress: Callable[[int, float], None] | None = None,
) -> Classifier:
    """Train a classifier on (latents [N,1,32,32], labels [N]); on CUDA when available, bf16 autocast there."""
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(cfg.seed)
    model = Classifier(net).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr_factor(s, cfg))
    x_all, y_all = latents.to(device), labels.to(device)
    g = torch.Generator(device).manual_seed(cfg.seed)
    start = time.monotonic()
    for step in range(1, cfg.steps + 1):
        idx = torch.randint(len(x_all), (cfg.batch,), generator=g, device=device)
        x = random_shift(x_all[idx], cfg.max_shift, g)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = nn.functional.cross_entropy(model(x).float(), y_all[idx])
        if not torch.isfinite(loss):
            raise FloatingPointError(f"classifier training diverged at step {step} (loss {loss.item()})")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % cfg.log_every == 0 or step == cfg.steps:
            log.info("classifier step %d/%d loss %.4f (%.0f s)", step, cfg.steps, loss.item(), time.monotonic() - start)
            if progress is not None:
                progress(step, loss.item())
    return model.eval()


@torch.no_grad()
def predict(model: Classifier, latents: torch.Tensor, batch: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    """(features [N, feature_dim] float32, predicted classes [N]) on the model's device, in eval mode."""
    model.eval()
    device = next(model.parameters()).device
    feats, preds = [], []
    for i in range(0, len(latents), batch):
        f = model.features(latents[i:i + batch].to(device).float())
        feats.append(f.float())
        preds.append(model.head(f).argmax(1))
    return torch.cat(feats), torch.cat(preds)


def accuracy(model: Classifier, latents: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy."""
    preds = predict(model, latents)[1]
    return (preds.cpu() == labels.cpu()).float().mean().item()


def save_classifier(path: str, model: Classifier, info: dict | None = None) -> None:
    """Write the weights (safetensors) with the architecture and `info` (training config, accuracy) as metadata."""
    save_tensors(path, model.state_dict(), KIND, {"config": asdict(model.cfg), "info": info or {}})


def load_classifier(path: str, device: str | torch.device = "cpu") -> tuple[Classifier, dict]:
    """(classifier in eval mode, its info) from a file written by save_classifier."""
    tensors, meta = load_tensors(path, KIND)
    model = Classifier(ClassifierConfig(**meta["config"]))
    model.load_state_dict(tensors)
    return model.to(device).eval(), meta.get("info", {})
