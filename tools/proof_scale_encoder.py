"""The proof-scale text encoder: a seeded random-weight stand-in file, and the context table the teacher trains on.

The encoder is a small CLIP in ComfyUI's own CLIP machinery (onestep_nodes/proof_scale_models.py: SD1 tokenizer, a
CLIPTextModel of width 64, 2 layers), so CLIPTextEncode in ComfyUI conditions the teacher and student exactly as
the trainer did. The context table [11, 77, 64] holds the encodings of the ten class names (proof_scale/data.py
PROMPTS) and of the empty prompt (row 10), made by that CLIP as CLIPTextEncode makes them; it is saved as
safetensors with key "context" (and the prompts, the encoder file's digest and config as metadata).

`write_stand_in_set` writes a whole random-weight model set (encoder, teacher, student) of the right shapes
into a folder, for tests and until the trained weights exist; `unet_metadata` gives the exact generator-format
metadata a teacher ("teacher") or student (one-step, ε at t=999) file of this set carries.

Usage (repository root, ComfyUI tree on PYTHONPATH):
  python -m tools.proof_scale_encoder random ENCODER.safetensors [--seed 0]         # write a random-weight encoder
  python -m tools.proof_scale_encoder table ENCODER.safetensors TABLE.safetensors   # encode the prompts
  python -m tools.proof_scale_encoder stand-ins FOLDER                               # random encoder + teacher + student
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import sys

import torch
from safetensors.torch import save_file


log = logging.getLogger("onestep")
TABLE_KEY = "context"  # the table's tensor name, read by proof_scale's teacher trainer
# Standard deviation of the token and position embeddings: CLIP's own initializer. With fan-in scaled layers
# (LAYER_GAIN 1) the eleven prompts then encode to finite tables whose rows differ by 15–40 % of their norm
# (seed 0, fp16 and fp32 alike; fp16 − fp32 ≤ 3e-3). Larger stds (0.1–1) give smaller but still clear
# differences (≥ 11 %); the tests check distinctness with check_distinct.
EMBED_STD = 0.02
LAYER_GAIN = 1.0  # fan-in scaled normal init of the attention and MLP weights (std gain/sqrt(fan_in))


def comfy_adapter():
    """The pack's proof-scale node module (ComfyUI tree on PYTHONPATH)."""
    from onestep_nodes.headless import use_cpu_without_gpu

    use_cpu_without_gpu()
    from onestep_nodes import proof_scale_models

    return proof_scale_models


def randomize_text_model(model: torch.nn.Module, seed: int, embed_std: float = EMBED_STD, gain: float = LAYER_GAIN) -> torch.nn.Module:
    """Seeded random weights: N(0, embed_std) embeddings, fan-in scaled normal matrices, zero biases, unit norms."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "embedding" in name:
                p.copy_(torch.randn(p.shape, generator=g) * embed_std)
            elif name.endswith("bias"):
                p.zero_()
            elif p.ndim == 1:
                p.fill_(1.0)
            else:
                p.copy_(torch.randn(p.shape, generator=g) * (gain / math.sqrt(p.shape[1])))
    return model


def random_encoder(seed: int = 0, config: dict | None = None):
    """A random-weight proof-scale CLIP (comfy.sd.CLIP)."""
    ps = comfy_adapter()
    config = dict(config or ps.TINY_CLIP_CONFIG)
    clip = ps.build_clip(config)
    randomize_text_model(ps.text_model(clip), seed)
    return clip, config


def write_random_encoder(path: str, seed: int = 0, dtype: torch.dtype = torch.float16) -> None:
    """Write a seeded random-weight encoder file (the stand-in until a trained one exists)."""
    ps = comfy_adapter()
    clip, config = random_encoder(seed)
    ps.save_text_encoder(path, clip, config, dtype, notes={"weights": f"random (seed {seed}, embedding std {EMBED_STD})"})


def context_table(clip, prompts: tuple[str, ...] | list[str]) -> torch.Tensor:
    """[len(prompts) + 1, L, D] float32: each prompt's CLIPTextEncode conditioning, then the empty prompt's."""
    ps = comfy_adapter()
    return torch.cat([ps.encode_prompt(clip, p).float().cpu() for p in [*prompts, ""]])


def check_distinct(table: torch.Tensor, min_relative: float = 0.05) -> float:
    """Smallest pairwise distance between rows relative to the mean row norm; raises if rows collapse or are not finite."""
    if not torch.isfinite(table).all():
        raise ValueError("the context table has non-finite values")
    flat = table.flatten(1).double()
    dist = torch.cdist(flat, flat) + torch.eye(len(flat), dtype=flat.dtype) * 1e30
    rel = float(dist.min() / flat.norm(dim=1).mean())
    if rel < min_relative:
        raise ValueError(f"prompts encode almost identically (smallest relative distance {rel:.3g} < {min_relative})")
    return rel


def write_table(encoder_path: str, table_path: str, prompts: list[str] | None = None) -> torch.Tensor:
    """Encode the class prompts (default: Fashion-MNIST's ten class names) + "" with the encoder file and save the
    table (key "context"; the prompts in its metadata, which the pipeline records and the pairs manifest lists)."""
    from proof_scale.data import PROMPTS

    prompts = list(prompts or PROMPTS)
    ps = comfy_adapter()
    clip = ps.load_text_encoder(encoder_path)
    table = context_table(clip, prompts)
    rel = check_distinct(table)
    with open(encoder_path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    meta = {"prompts": json.dumps([*prompts, ""]), "encoder_sha256": digest, "encoder_file": os.path.basename(encoder_path)}
    os.makedirs(os.path.dirname(os.path.abspath(table_path)), exist_ok=True)
    save_file({TABLE_KEY: table.contiguous()}, table_path, metadata=meta)
    log.info("context table %s %s, smallest relative distance between prompts %.3f", table_path, tuple(table.shape), rel)
    return table


STAND_IN_FILES = {  # role → file name of the random-weight stand-ins in models/onestep
    "teacher": "proof-scale-teacher-random.safetensors",
    "student": "proof-scale-student-random.safetensors",
    "text_encoder": "proof-scale-text-encoder-random.safetensors",
}


def unet_metadata(role: str, net, **extra):
    """Generator-format metadata of the set's teacher (role "teacher") or one-step student (role "student")."""
    from onestep.format import GeneratorMetadata
    from proof_scale.teacher import ldm_unet_config
    from training.config import DEFAULT_SPEC

    # the teacher's timestep is unused (multi-step sampling); the student's is the trainer's one-step default (t=625)
    fields = {"method": "teacher" if role == "teacher" else "diffusion2gan", "base": "custom", "prediction": "eps",
              "timestep": 999 if role == "teacher" else DEFAULT_SPEC.timestep,
              "input_convention": "sigma_z", "latent_format": "fmnist32", "latent_channels": 1, "unet_config": ldm_unet_config(net),
              "source": "proof-scale (issue 6)"}
    return GeneratorMetadata(**{**fields, **extra})


def write_unet(path: str, role: str, net=None, seed: int = 0, **meta):
    """A random-weight teacher or student file of the colleague's diffusers architecture, converted to ldm keys."""
    from onestep.format import save_generator
    from proof_scale.teacher import TeacherNetConfig, build_unet, ldm_state_dict

    net = net or TeacherNetConfig(context_dim=int(comfy_adapter().TINY_CLIP_CONFIG["hidden_size"]))
    torch.manual_seed(seed)
    unet = build_unet(net)
    md = unet_metadata(role, net, **meta)
    save_generator(path, ldm_state_dict(unet), md)
    return unet, md


def write_stand_in_set(folder: str, net=None, seed: int = 0) -> dict[str, str]:
    """Random-weight encoder, teacher and student in `folder` (existing files are kept); role → path."""
    os.makedirs(folder, exist_ok=True)
    paths = {role: os.path.join(folder, name) for role, name in STAND_IN_FILES.items()}
    makers = {
        "text_encoder": lambda p: write_random_encoder(p, seed),
        "teacher": lambda p: write_unet(p, "teacher", net, seed, notes={"weights": "random stand-in"}),
        "student": lambda p: write_unet(p, "student", net, seed + 1, notes={"weights": "random stand-in"}),
    }
    for role, path in paths.items():
        if not os.path.exists(path):
            makers[role](path)
    return paths


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    ap = argparse.ArgumentParser(prog="python -m tools.proof_scale_encoder", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("random", help="write a seeded random-weight encoder file")
    r.add_argument("encoder")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--fp32", action="store_true", help="store fp32 weights (default fp16)")
    t = sub.add_parser("table", help="encode the class names + the empty prompt")
    t.add_argument("encoder")
    t.add_argument("table")
    t.add_argument("--classes", default=None, help="a text file of class names, one per line in label order (default: Fashion-MNIST's ten)")
    s = sub.add_parser("stand-ins", help="write a random-weight encoder, teacher and student (default architecture)")
    s.add_argument("folder")
    a = ap.parse_args(argv)
    if a.cmd == "random":
        write_random_encoder(a.encoder, a.seed, torch.float32 if a.fp32 else torch.float16)
    elif a.cmd == "table":
        names = None
        if a.classes:
            with open(a.classes, encoding="utf-8") as fh:
                names = [line.strip() for line in fh if line.strip()]
        write_table(a.encoder, a.table, names)
    else:
        for role, path in write_stand_in_set(a.folder).items():
            log.info("%s: %s", role, path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
