"""bfloat16 storage of trained weights: unbiased (stochastic) rounding, and an optimiser step for bf16 parameters.

Rounding a float32 update to the nearest bf16 loses every change below half a bf16 step (2^-8 of the value): an
EMA step of (1 − β) = 1e-3 or an optimiser step at lr 1e-5 vanishes. Rounding up or down at random, with the
probabilities that make the result unbiased, keeps those changes in expectation (Gupta et al. 2015; Zamirai et
al. 2020). The random bits come from generators seeded by (purpose, seed, count), so a resumed run rounds exactly
as an uninterrupted one.
"""
from __future__ import annotations

import hashlib

import torch

from .tensor_chunks import CHUNK_ELEMENTS, chunked


def stochastic_round_bf16(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """float32 → bfloat16, rounding up or down at random with probability proportional to the distance (unbiased)."""
    bits = x.contiguous().view(torch.int32)
    noise = torch.randint(0, 1 << 16, x.shape, dtype=torch.int32, device=x.device, generator=generator)
    # bf16 keeps the top 16 bits of a float32: adding uniform noise below them, then truncating, rounds the magnitude
    # up with probability (dropped bits)/2^16; the sign bit is untouched, so negatives round symmetrically.
    return ((bits + noise) & -65536).view(torch.float32).to(torch.bfloat16)


def seeded_generator(purpose: str, seed: int, count: int, device: torch.device) -> torch.Generator:
    """A generator on `device` whose stream is a function of (purpose, seed, count) only."""
    s = int.from_bytes(hashlib.sha256(f"{purpose}:{seed}:{count}".encode()).digest()[:8], "little") >> 1
    return torch.Generator(device=device).manual_seed(s)


class Bf16WeightsOptimizer:
    """Steps a torch optimiser over bf16-stored parameters a chunk at a time: the chunk's parameters and gradients
    are lifted to float32, the wrapped optimiser updates those copies in one step (its states are float32, created
    on the first step), and the results are rounded back to bf16 stochastically, tensor by tensor in parameter
    order. Only one chunk (tensor_chunks.CHUNK_ELEMENTS) is ever held in float32, so the weights and gradients cost
    half of float32 storage; one wrapped step per chunk (not per tensor) keeps the optimiser's multi-tensor kernels.
    float32 parameters in the same optimiser step normally. Behaves as the wrapped optimiser for param_groups,
    zero_grad and (load_)state_dict."""

    def __init__(self, inner: torch.optim.Optimizer, seed: int = 0, chunk_elements: int = CHUNK_ELEMENTS):
        self.inner, self.seed, self.steps = inner, seed, 0
        self.chunk_elements = chunk_elements

    @property
    def param_groups(self) -> list[dict]:
        return self.inner.param_groups

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.inner.zero_grad(set_to_none=set_to_none)

    @torch.no_grad()
    def step(self) -> None:
        self.steps += 1
        groups = self.inner.param_groups
        saved = [g["params"] for g in groups]
        generators: dict[torch.device, torch.Generator] = {}
        try:
            for g in groups:
                g["params"] = []
            for group, params in zip(groups, saved):
                for chunk in chunked([p for p in params if p.grad is not None], torch.Tensor.numel, self.chunk_elements):
                    group["params"] = chunk  # the wrapped optimiser sees this chunk only
                    lifted = [p for p in chunk if p.dtype == torch.bfloat16]
                    for p in lifted:
                        p.data = p.data.float()
                        p.grad = p.grad.float()
                    self.inner.step()
                    for p in lifted:
                        if p.device not in generators:
                            generators[p.device] = seeded_generator("weights", self.seed, self.steps, p.device)
                        p.data = stochastic_round_bf16(p.data, generators[p.device])
                        p.grad = None  # the float32 copy goes now; the trainer zeroes gradients after the step anyway
                group["params"] = []
        finally:
            for g, params in zip(groups, saved):
                g["params"] = params

    def state_dict(self) -> dict:
        return {"inner": self.inner.state_dict(), "rounding_steps": self.steps}

    def load_state_dict(self, state: dict) -> None:
        inner = state["inner"]
        self.inner.load_state_dict(inner)
        # torch casts loaded states to their parameter's dtype, bf16 here: put the float32 values back
        ids = [i for g in inner["param_groups"] for i in g["params"]]
        params = [p for g in self.inner.param_groups for p in g["params"]]
        for i, p in zip(ids, params):
            if p.dtype != torch.bfloat16:
                continue
            for key, value in inner["state"].get(i, {}).items():
                if torch.is_tensor(value) and value.is_floating_point() and key != "step":
                    self.inner.state[p][key] = value.to(p.device, torch.float32)
        self.steps = int(state["rounding_steps"])
