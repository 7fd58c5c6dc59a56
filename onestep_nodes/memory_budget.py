"""Refuse, before anything is allocated, a model call that cannot fit: ComfyUI's own estimate of the call
(BaseModel.memory_required, what its samplers plan with) plus the latent buffers, against all the memory of the device
it runs on. Such a call would run out of memory or, on a CPU, swap for minutes in one operation that no interrupt
reaches (Collect Teacher Pairs at 4096² and batch 256 held 15 GB and ignored /interrupt until the server was killed;
One-Step Generate at 16384² ran for minutes at ~9 GB). One estimate and one message for every node that checks: One-Step
Generate, Collect Teacher Pairs and the training nodes."""
from __future__ import annotations

import math

import comfy.model_management as mm
import torch

GIB = 2**30


def call_bytes(model, shape: list[int]) -> float:
    """Estimated peak bytes of one call of `model` (a MODEL) on latents of `shape` [B, C, h, w]."""
    return model.model.memory_required(shape) + 3 * 4 * math.prod(shape)


def check_model_call(model, shape: list[int], what: str, call: str, advice: str) -> None:
    """Raise a ValueError naming `what` (the inputs that set the size) when one call on `shape` cannot fit the device."""
    device = mm.get_torch_device()
    need, have = call_bytes(model, shape), mm.get_total_memory(device)
    if need > have:
        raise ValueError(f"{what}: {call} needs about {need / GIB:,.1f} GiB (ComfyUI's estimate for this model), more than the "
                         f"{have / GIB:,.1f} GiB of {device}; {advice}")


def ram_bytes() -> int:
    """All the memory of the machine (where shards and datasets are held)."""
    return mm.get_total_memory(torch.device("cpu"))
