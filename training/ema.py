"""Exponential moving average of the generator's trainable weights (Polyak averaging), the weights exported.

θ_ema ← β θ_ema + (1 − β) θ with β = min(decay, (1 + n)/(10 + n)) after n updates, so that short runs (the
in-app case) are not dominated by the initial weights.
"""
from __future__ import annotations

import torch
from torch import nn


class EMA:
    """Shadow copies of a module's trainable parameters, keyed by parameter name."""

    def __init__(self, module: nn.Module, decay: float):
        self.decay = decay
        self.updates = 0
        self.shadow = {n: p.detach().float().clone() for n, p in module.named_parameters() if p.requires_grad}

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        """One averaging step towards the module's current weights."""
        self.updates += 1
        beta = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for n, p in module.named_parameters():
            if n in self.shadow:
                self.shadow[n].lerp_(p.detach().float(), 1.0 - beta)

    def state_dict(self) -> dict:
        """Tensors under 'shadow.<name>' plus the update count."""
        return {"updates": self.updates, **{f"shadow.{n}": t for n, t in self.shadow.items()}}

    def load_state_dict(self, state: dict) -> None:
        """Inverse of state_dict; refuses a state for other parameters."""
        names = {k[len("shadow."):] for k in state if k.startswith("shadow.")}
        if names != set(self.shadow):
            missing, extra = sorted(set(self.shadow) - names)[:3], sorted(names - set(self.shadow))[:3]
            raise ValueError(f"EMA state is for other parameters (missing {missing}, unexpected {extra})")
        self.updates = int(state["updates"])
        for n in self.shadow:
            self.shadow[n].copy_(state[f"shadow.{n}"])
