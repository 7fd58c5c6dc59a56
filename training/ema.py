"""Exponential moving average of the generator's trainable weights (Polyak averaging), the weights exported.

θ_ema ← β θ_ema + (1 − β) θ with β = min(decay, (1 + n)/(10 + n)) after n updates, so that short runs (the
in-app case) are not dominated by the initial weights.

Low-memory storage (dtype=bfloat16): each update is computed in float32 and rounded to bf16 stochastically (up or
down with the probabilities that make the rounding unbiased), so the (1 − β)-sized steps, far below bf16's
resolution, are not rounded away. The random bits come from a generator seeded with (seed, update count), so a
resumed run rounds exactly as an uninterrupted one.
"""
from __future__ import annotations

import torch
from torch import nn

from .rounding import seeded_generator, stochastic_round_bf16


class EMA:
    """Shadow copies of a module's trainable parameters, keyed by parameter name."""

    def __init__(self, module: nn.Module, decay: float, dtype: torch.dtype = torch.float32, seed: int = 0):
        self.decay = decay
        self.updates = 0
        self.dtype, self.seed = dtype, seed
        self.shadow = {n: p.detach().to(dtype).clone() for n, p in module.named_parameters() if p.requires_grad}

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        """One averaging step towards the module's current weights."""
        self.updates += 1
        beta = min(self.decay, (1 + self.updates) / (10 + self.updates))
        generators: dict[torch.device, torch.Generator] = {}
        for n, p in module.named_parameters():
            if n not in self.shadow:
                continue
            s = self.shadow[n]
            if s.dtype == torch.float32:
                s.lerp_(p.detach().float(), 1.0 - beta)
                continue
            if s.device not in generators:  # one stream of random bits per update, in parameter order
                generators[s.device] = seeded_generator("ema", self.seed, self.updates, s.device)
            s.copy_(stochastic_round_bf16(s.float().lerp_(p.detach().float(), 1.0 - beta), generators[s.device]))

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
