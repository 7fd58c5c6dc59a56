"""Exponential moving average of the generator's trainable weights (Polyak averaging), the weights exported.

θ_ema ← β θ_ema + (1 − β) θ with β = min(decay, (1 + n)/(10 + n)) after n updates, so that short runs (the
in-app case) are not dominated by the initial weights. Without the ramp (ramp=False) β = decay from the first update:
for a run that starts from trained weights, which have nothing to forget — the ramp would cap a 0.999 average at
0.991 for a run's first 1,000 steps. decay = 0 is no EMA: the average would be the live weights
themselves, so no shadow is held (a full fine-tune saves one copy of G's weights; the export reads the live weights).

Low-memory storage (dtype=bfloat16): each update is computed in float32 and rounded to bf16 stochastically (up or
down with the probabilities that make the rounding unbiased), so the (1 − β)-sized steps, far below bf16's
resolution, are not rounded away. The random bits come from a generator seeded with (seed, update count), so a
resumed run rounds exactly as an uninterrupted one.
"""
from __future__ import annotations

import torch
from torch import nn

from .rounding import seeded_generator, stochastic_round_bf16
from .tensor_chunks import CHUNK_ELEMENTS, chunked


def ema_key(decay: float) -> str:
    """An average's name in a checkpoint: its decay, written exactly."""
    return repr(float(decay))


class EMA:
    """Shadow copies of a module's trainable parameters, keyed by parameter name."""

    def __init__(self, module: nn.Module, decay: float, dtype: torch.dtype = torch.float32, seed: int = 0, chunk_elements: int = CHUNK_ELEMENTS,
                 ramp: bool = True):
        self.decay, self.chunk_elements, self.ramp = decay, chunk_elements, ramp
        self.updates = 0
        self.dtype, self.seed = dtype, seed
        self.enabled = decay > 0  # decay 0: every update would copy the weights; hold nothing instead
        self.shadow = {n: p.detach().to(dtype).clone() for n, p in module.named_parameters() if p.requires_grad} if self.enabled else {}

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        """One averaging step towards the module's current weights (multi-tensor kernels; a bf16 shadow a chunk at
        a time: the chunk's shadow and weights concatenated in float32, averaged, rounded, split back)."""
        self.updates += 1
        if not self.enabled:
            return
        weight = 1.0 - (min(self.decay, (1 + self.updates) / (10 + self.updates)) if self.ramp else self.decay)
        pairs = [(self.shadow[n], p.detach()) for n, p in module.named_parameters() if n in self.shadow]
        exact = [(s, p) for s, p in pairs if s.dtype == torch.float32]
        if exact:
            torch._foreach_lerp_([s for s, _ in exact], [p.float() for _, p in exact], weight)
        rounded = [(s, p) for s, p in pairs if s.dtype != torch.float32]
        generators: dict[torch.device, torch.Generator] = {}
        for chunk in chunked(rounded, lambda sp: sp[0].numel(), self.chunk_elements):
            shadows = [s for s, _ in chunk]
            device = shadows[0].device
            if device not in generators:  # one stream of random bits per update, chunks in parameter order
                generators[device] = seeded_generator("ema", self.seed, self.updates, device)
            flat = torch.cat([s.reshape(-1) for s in shadows]).float()
            flat.lerp_(torch.cat([p.reshape(-1).float() for _, p in chunk]), weight)
            flat = stochastic_round_bf16(flat, generators[device])
            torch._foreach_copy_(shadows, [v.view_as(s) for v, s in zip(flat.split([s.numel() for s in shadows]), shadows)])

    @torch.no_grad()
    def start_from(self, other: EMA, module: nn.Module) -> None:
        """Take another average's shadow (the module's live weights where it holds none) and its update count: an
        average added to a resumed run starts where the run's main average is."""
        self.updates = other.updates
        live = dict(module.named_parameters())
        for n, s in self.shadow.items():
            s.copy_(other.shadow[n] if n in other.shadow else live[n])

    def state_dict(self) -> dict:
        """Tensors under 'shadow.<name>' plus the update count."""
        return {"updates": self.updates, **{f"shadow.{n}": t for n, t in self.shadow.items()}}

    def load_state_dict(self, state: dict) -> None:
        """Inverse of state_dict; refuses a state for other parameters."""
        names = {k[len("shadow."):] for k in state if k.startswith("shadow.")}
        if not self.enabled:  # no EMA now: a state written with one resumes on the live weights
            self.updates = int(state["updates"])
            return
        if names != set(self.shadow):
            missing, extra = sorted(set(self.shadow) - names)[:3], sorted(names - set(self.shadow))[:3]
            raise ValueError(f"EMA state is for other parameters (missing {missing}, unexpected {extra})")
        self.updates = int(state["updates"])
        for n in self.shadow:
            self.shadow[n].copy_(state[f"shadow.{n}"])
