"""torch.compile of the UNet blocks a training run calls (TrainConfig.compile_blocks).

Why blocks, not whole networks: the engine calls the same blocks through several paths (G's forward, the
discriminator's encoder pass over a copy of the teacher's encoder, SiD's ψ and φ), some of them the adapters' own
code (DiffusersUNet.encoder_features); compiling each block once covers every path without tracing the adapters.
Why at all: at small widths (the proof-scale teacher: 64/128 channels at 32×32) a step is bound by GroupNorm and
elementwise kernels (59 TFLOP/s of an H200, docs/benchmarks.md), which inductor fuses. Modules are compiled in place
(nn.Module.compile): their state_dict, parameters and LoRA layers are untouched, so checkpoints and exports are the same.
Not with exact R1: inductor has no double backward (TrainConfig refuses the pair; approximated R1 works).
Dynamo keeps one cache per block *class*: every width of it, grad mode, input that needs grad and batch size (CFG's
doubled batch) is a variant of its own, and past torch's recompile limit (8) a class's further variants run eagerly. A
SiD-LSG step with guidance in ψ and φ needs 10 of the cross-attention down and up blocks of the proof-scale UNet (5 of
the others), so the limit is raised to RECOMPILE_LIMIT while blocks are compiled (tests/test_core_training_compile.py).
"""
from __future__ import annotations

import inspect
from collections.abc import Iterable

import torch._dynamo
from torch import nn

RECOMPILE_LIMIT = 32  # variants of one block class's forward that are compiled (torch's default: 8)


def compile_unet_blocks(roots: Iterable[nn.Module], mode: str = "default", backend: str = "inductor") -> int:
    """Compile, once each, the blocks of every UNet adapter found under `roots` (modules with a `blocks()` method:
    training.diffusers_unet.DiffusersUNet, the ComfyUI adapter); returns how many blocks were compiled. `backend`
    "eager" traces without generating code (tests count the variants with it)."""
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, RECOMPILE_LIMIT)
    done: set[int] = set()
    for root in roots:
        for module in root.modules():
            blocks = getattr(module, "blocks", None)
            if not inspect.ismethod(blocks):  # an adapter's method, not a submodule that happens to be named "blocks"
                continue
            for block in blocks():
                if id(block) not in done:
                    block.compile(backend=backend, mode=mode if backend == "inductor" else None, dynamic=False)
                    done.add(id(block))
    return len(done)
