"""Calibrate the linear heads on 2AFC triplets with LPIPS's ranking loss (Zhang et al. 2018, Sec. 3.3): a small
network G maps (d0, d1) to the probability that people prefer p1, trained with BCE against the judgements;
the trunk stays frozen and head weights are clamped non-negative after every step."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from .checkpoint import end_of_step, restore
from .network import LatentLPIPS

log = logging.getLogger("latent_lpips")


@dataclass(frozen=True)
class CalibrateConfig:
    """Head calibration."""

    steps: int = 1000  # optimizer steps
    batch: int = 50  # triplets per step (LPIPS: 50)
    lr: float = 1e-4  # Adam learning rate (LPIPS: 1e-4, beta1 0.5)
    seed: int = 0  # batch sampling
    log_every: int = 50  # steps between progress reports
    checkpoint_every: int = 200  # steps between checkpoints


class RankingNet(nn.Module):
    """LPIPS's BCERankingLoss network: (d0, d1, d0−d1, d0/d1, d1/d0) → P(p1 preferred)."""

    def __init__(self, hidden: int = 32, eps: float = 0.1):
        super().__init__()
        self.eps = eps
        self.net = nn.Sequential(nn.Conv2d(5, hidden, 1), nn.LeakyReLU(0.2), nn.Conv2d(hidden, hidden, 1), nn.LeakyReLU(0.2), nn.Conv2d(hidden, 1, 1), nn.Sigmoid())

    def forward(self, d0: torch.Tensor, d1: torch.Tensor) -> torch.Tensor:
        d0, d1 = d0.view(-1, 1, 1, 1), d1.view(-1, 1, 1, 1)
        x = torch.cat([d0, d1, d0 - d1, d0 / (d1 + self.eps), d1 / (d0 + self.eps)], dim=1)
        return self.net(x).flatten()


def two_afc_score(d0: torch.Tensor, d1: torch.Tensor, judge: torch.Tensor) -> float:
    """Agreement with people: credit judge for d1 < d0, 1 − judge for d0 < d1, half for ties."""
    return ((d0 < d1).float() * (1 - judge) + (d1 < d0).float() * judge + (d0 == d1).float() * 0.5).mean().item()


@torch.no_grad()
def score(model: LatentLPIPS, t: dict[str, torch.Tensor], batch: int = 100) -> float:
    """2AFC score of `model` on triplets t."""
    model.eval()
    d0 = torch.cat([model(t["ref"][i:i + batch], t["p0"][i:i + batch]) for i in range(0, len(t["ref"]), batch)])
    d1 = torch.cat([model(t["ref"][i:i + batch], t["p1"][i:i + batch]) for i in range(0, len(t["ref"]), batch)])
    return two_afc_score(d0, d1, t["judge"])


def calibrate_heads(
    model: LatentLPIPS, triplets: dict[str, torch.Tensor], cfg: CalibrateConfig, checkpoint: str | None = None,
    progress: Callable[[int, float], None] | None = None,
) -> LatentLPIPS:
    """Train the heads of `model` (in place) on triplets {"ref","p0","p1","judge"}; resumable."""
    for p in model.net.parameters():
        p.requires_grad_(False)
    rank = RankingNet()
    params = [p for lin in model.lins for p in lin.parameters()] + list(rank.parameters())
    opt = torch.optim.Adam(params, lr=cfg.lr, betas=(0.5, 0.999))
    g = torch.Generator().manual_seed(cfg.seed)
    parts = {"model": model, "rank": rank, "optimizer": opt}
    step = restore(checkpoint, parts, g)
    n = len(triplets["ref"])
    while step < cfg.steps:
        model.net.eval()  # frozen trunk: BatchNorm keeps its statistics
        for lin in model.lins:
            lin.train()
        idx = torch.randint(n, (cfg.batch,), generator=g)
        ref, p0, p1, judge = (triplets[k][idx] for k in ("ref", "p0", "p1", "judge"))
        loss = nn.functional.binary_cross_entropy(rank(model(ref, p0), model(ref, p1)), judge)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            for lin in model.lins:
                lin.model[1].weight.clamp_(min=0)
        step += 1
        end_of_step(step, loss, cfg, progress, checkpoint, parts, g)
    return model.eval()
