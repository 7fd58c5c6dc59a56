"""A trained teacher back from its generator file (method "teacher", ComfyUI's ldm layout; e.g. the shipped
default_models/proof_scale set): the diffusers UNet the pipeline trains and samples with, and its architecture.

Rerunning the benchmark on the shipped teacher keeps the shipped set coherent (teacher, student, encoder) and saves
the teacher's training time on a one-GPU budget; the rows are then scored against exactly the teacher users get.
"""
from __future__ import annotations

from diffusers import UNet2DConditionModel

from onestep import format as gen_format
from onestep.unet_keys import diffusers_to_ldm

from .teacher import TeacherNetConfig, build_unet, ldm_unet_config


def net_config(unet_config: dict) -> TeacherNetConfig:
    """The TeacherNetConfig whose ldm_unet_config is `unet_config` (raises when there is none)."""
    n = unet_config["num_res_blocks"][0]
    base = unet_config["model_channels"]
    net = TeacherNetConfig(
        block_out_channels=tuple(base * m for m in unet_config["channel_mult"]),
        attention=tuple(bool(d) for d in unet_config["transformer_depth"][::n]), layers_per_block=n,
        heads=unet_config["num_heads"], context_dim=unet_config["context_dim"],
    )
    if ldm_unet_config(net) != {k: unet_config.get(k) for k in ldm_unet_config(net)}:
        raise ValueError("this generator file's unet_config is not a proof-scale teacher architecture")
    return net


def import_teacher(path: str) -> tuple[UNet2DConditionModel, TeacherNetConfig, gen_format.GeneratorMetadata]:
    """(float32 diffusers UNet in eval mode, architecture, metadata) of a teacher generator file."""
    unet, net, meta = import_unet(path)
    if meta.method != "teacher" or meta.prediction != "eps":
        raise ValueError(f"{path} is not a proof-scale teacher file (method {meta.method!r}, prediction {meta.prediction!r})")
    return unet, net, meta


def import_unet(path: str) -> tuple[UNet2DConditionModel, TeacherNetConfig, gen_format.GeneratorMetadata]:
    """`import_teacher` for any generator file of a proof-scale architecture (e.g. a shipped one-step student)."""
    sd, meta = gen_format.load_generator(path)
    if not meta.unet_config:
        raise ValueError(f"{path} records no unet_config: not a proof-scale generator file")
    net = net_config(meta.unet_config)
    unet = build_unet(net)
    own = unet.state_dict()
    name_of = {id(v): k for k, v in own.items()}  # diffusers_to_ldm renames keys and keeps the tensor objects
    ldm_to_diffusers = {ldm: name_of[id(v)] for ldm, v in diffusers_to_ldm(own).items()}
    if set(sd) != set(ldm_to_diffusers):
        raise ValueError(f"{path}: weights do not match the architecture of its unet_config")
    unet.load_state_dict({ldm_to_diffusers[k]: v.float() for k, v in sd.items()})
    return unet.eval().requires_grad_(False), net, meta

