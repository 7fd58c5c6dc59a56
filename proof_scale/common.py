"""What the proof-scale stages share: the benchmark's seeds and latent space, JSON records written atomically, and
the exception of a stage stopped at its deadline."""
from __future__ import annotations

import json

import torch

from onestep.atomic import atomic_write

EVAL_SEEDS = (1_000_000, 1_000_001, 1_000_002)  # scoring noise streams: the teacher is scored on (by default) all, each row on two
VAL_SEED = 2_000_000  # model selection (teacher sweep, student checkpoints) never sees the scoring noise
LATENT_FORMAT = "fmnist32"  # generator files: the benchmark's identity latent space (1×32×32 in [−1, 1])
EXIT_INCOMPLETE = 3
METRICS = ("fd", "precision", "recall", "class_acc", "nfe", "seconds")  # every row of the report has these
SCHEDULER = "linspace-999-0"  # proof_scale.sampler.discrete_sigmas: t = round(linspace(999, 0, steps)), then σ=0
TINY_CONTEXT = (4, 16)  # random context table [11, 4, 16] for --tiny


class Incomplete(Exception):
    """A stage stopped at the deadline with resumable state; the message says where."""


def write_json(path: str, obj) -> None:
    """JSON written atomically."""
    text = json.dumps(obj, indent=2, allow_nan=True)

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text + "\n")

    atomic_write(path, write)


def read_json(path: str):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def sync(device: torch.device) -> None:
    """Wait for the device (timings)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory(device: torch.device, before: dict | None = None) -> dict:
    """This process's peak GPU memory in GiB (allocated by tensors, reserved by the caching allocator: what a second
    row on the same GPU cannot have), the larger of this call's and `before`'s (a row's earlier calls); {} off CUDA."""
    if device.type != "cuda":
        return {}
    now = {"peak_allocated_gib": torch.cuda.max_memory_allocated(device) / 2**30,
           "peak_reserved_gib": torch.cuda.max_memory_reserved(device) / 2**30}
    return {k: round(max(v, (before or {}).get(k, 0.0)), 2) for k, v in now.items()}
