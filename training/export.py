"""The one place a trained generator becomes files: the generator file (onestep/format.py) with its provenance —
method, teacher fingerprint, guidance, training steps, the training config — and, for a LoRA run, the LoRA in
ComfyUI's generic key format for core's LoRA loaders. The node, the CLI and the proof-scale rows all write through
it (via TrainingSession.export)."""
from __future__ import annotations

import dataclasses
import os

import torch
from safetensors.torch import save_file

from .core import atomic_write, format


def export_generator(engine, path: str | os.PathLike, base: str, latent_format: str, *, teacher_hash: str, guidance: float | None = None,
                     source: str = "", weights: dict[str, torch.Tensor] | None = None, training_steps: int | None = None,
                     unet_config: dict | None = None, notes: dict | None = None, lora_path: str | None = None,
                     lora_prefix: str = "diffusion_model.") -> format.GeneratorMetadata:
    """Write `weights` (ldm layout; default: the engine's EMA generator) as a generator file and return its metadata.
    `training_steps` defaults to the engine's step (give the step of selected weights), `unet_config` records what the
    weights do not tell (attention heads of non-standard widths), `notes` are added to the training notes; a LoRA run
    with `lora_path` also writes its EMA LoRA there."""
    if not teacher_hash:
        raise ValueError("a generator file needs its teacher's fingerprint (teacher_hash)")
    meta = engine.generator_metadata(base, latent_format, guidance=guidance, teacher_hash=teacher_hash, source=source)
    meta = dataclasses.replace(meta, training_steps=engine.step if training_steps is None else training_steps,
                               unet_config=dict(unet_config) if unet_config else meta.unet_config, notes={**meta.notes, **(notes or {})})
    format.save_generator(path, engine.generator_state_dict(ema=True) if weights is None else weights, meta)
    if lora_path and engine.config.generator.lora_rank > 0:
        sd = {lora_prefix + (k[len("unet."):] if k.startswith("unet.") else k): v for k, v in engine.lora_state_dict(ema=True).items()}
        header = {"onestep.method": meta.method, "onestep.steps": str(engine.step)}
        atomic_write(lora_path, lambda tmp: save_file(sd, tmp, metadata=header))
    return meta


def native_weights(unet, ldm: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A generator file's weights (ldm layout) under the adapter's own parameter names — export_state_dict inverted, so a
    run can start from a finished run's file (InstaFlow's distillation from the 2-rectified flow: Engine.start_generator_from)."""
    names = list(unet.state_dict())
    tags = unet.export_state_dict({n: torch.tensor(i) for i, n in enumerate(names)})  # a pure renaming: follow each name through it
    to_native = {key: names[int(tag)] for key, tag in tags.items()}
    params = {n for n, _ in unet.named_parameters()}
    missing = sorted(k for k, n in to_native.items() if n in params and k not in ldm)[:3]
    if missing:
        raise ValueError(f"the generator file's weights are for another UNet (it lacks {missing})")
    return {to_native[k]: v for k, v in ldm.items() if to_native.get(k) in params}
