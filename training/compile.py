"""torch.compile of the UNet blocks a training run calls (TrainConfig.compile_blocks).

Why blocks, not whole networks: the engine calls the same blocks through several paths (G's forward, the
discriminator's encoder pass over a copy of the teacher's encoder, SiD's ψ and φ), some of them the adapters' own
code (DiffusersUNet.encoder_features); compiling each block once covers every path without tracing the adapters.
Why at all: at small widths (the proof-scale teacher: 64/128 channels at 32×32) a step is bound by GroupNorm and
elementwise kernels (59 TFLOP/s of an H200, docs/benchmarks.md), which inductor fuses. Modules are compiled in place
(nn.Module.compile): their state_dict, parameters and LoRA layers are untouched, so checkpoints and exports are the same.
Not with exact R1: inductor has no double backward (TrainConfig refuses the pair; approximated R1 works).
"""
from __future__ import annotations

import inspect
from collections.abc import Iterable

from torch import nn


def compile_unet_blocks(roots: Iterable[nn.Module], mode: str = "default") -> int:
    """Compile, once each, the blocks of every UNet adapter found under `roots` (modules with a `blocks()` method:
    training.diffusers_unet.DiffusersUNet, the ComfyUI adapter); returns how many blocks were compiled."""
    done: set[int] = set()
    for root in roots:
        for module in root.modules():
            blocks = getattr(module, "blocks", None)
            if not inspect.ismethod(blocks):  # an adapter's method, not a submodule that happens to be named "blocks"
                continue
            for block in blocks():
                if id(block) not in done:
                    block.compile(mode=mode, dynamic=False)
                    done.add(id(block))
    return len(done)
