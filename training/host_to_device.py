"""Host → GPU copies that do not drain the GPU's queue.

A training step draws its noise, timesteps and dropout masks on the CPU (per-micro-batch generators: the same numbers
on any device, and an exact resume). `cpu_tensor.to("cuda")` waits for every kernel queued before it (PyTorch
synchronises the stream after a blocking host copy), so each such copy in the middle of a step stops the CPU from
running ahead of the GPU: at the proof scale a step is ~15,000 small kernels, and the GPU idles while the CPU
launches the ones after each wait. From pinned memory the copy is queued like a kernel instead; PyTorch's pinned-memory
cache keeps the source alive until the copy has run.
"""
from __future__ import annotations

import torch


_PINNING = [True]  # off after the first failure (a host without pinnable memory): blocking copies, the same values


def to_device(x: torch.Tensor, device: torch.device | str, dtype: torch.dtype | None = None) -> torch.Tensor:
    """x on `device` (then cast to `dtype` there, as x.to(device, dtype) casts): a CPU tensor bound for a CUDA device
    goes through pinned memory with a non-blocking copy; anything else is x.to(device, dtype)."""
    device = torch.device(device)
    if device.type != "cuda" or x.device.type != "cpu" or not _PINNING[0]:
        return x.to(device, dtype)
    try:
        pinned = x.pin_memory()
    except RuntimeError:
        _PINNING[0] = False
        return x.to(device, dtype)
    moved = pinned.to(device, non_blocking=True)
    return moved if dtype is None else moved.to(dtype)


def dict_to_device(tensors: dict[str, torch.Tensor], device: torch.device | str) -> dict[str, torch.Tensor]:
    """Every tensor of the dict on `device`, as to_device moves it."""
    return {k: to_device(v, device) for k, v in tensors.items()}


def copy_into(dst: torch.Tensor, src: torch.Tensor) -> None:
    """dst.copy_(src), a host tensor bound for a CUDA buffer through pinned memory without waiting (as to_device)."""
    if dst.device.type == "cuda" and src.device.type == "cpu" and _PINNING[0]:
        try:
            dst.copy_(src.pin_memory(), non_blocking=True)
            return
        except RuntimeError:
            _PINNING[0] = False
    dst.copy_(src)
