"""Node: Latent Perceptual Diff — E-LatentLPIPS between two LATENTs, with a per-item table and a heat map."""
from __future__ import annotations

import os

import comfy.model_management as mm
import folder_paths
import torch
from comfy_api.latest import io

from onestep.latent_lpips import ELatentLPIPS
from onestep.latent_lpips.augment import parse_preset
from onestep.latent_lpips.weights import load
from onestep.latent_spaces import latent_space
from onestep.ranges import check_declared
from . import model_folder
from .constants import CATEGORY, check_choices
from .inputs import seed_input

PRESETS = ["bg", "b", "g", "go", "bgc", "bgco", "none"]
_NETS: dict[tuple[str, float], tuple] = {}


def load_weights(name: str):
    """(network, encoder, info) for a file in models/latent_lpips, cached until the file changes."""
    path = folder_paths.get_full_path_or_raise(model_folder.LATENT_LPIPS_FOLDER, name)
    key = (path, os.path.getmtime(path))
    if key not in _NETS:
        _NETS.clear()
        _NETS[key] = load(path)
    return _NETS[key]


def check_latent_space(model, encoder_name: str) -> None:
    """Refuse comparing latents of a model whose latent space the weights were not made for."""
    fmt = type(model.get_model_object("latent_format")).__name__
    try:
        allowed = latent_space(fmt).encoders
    except ValueError:  # a latent space the pack does not know: nothing to check against
        return
    if allowed is not None and encoder_name not in allowed:
        raise ValueError(f"these E-LatentLPIPS weights are for {encoder_name} latents, but the model makes {fmt} latents; pick weights for {fmt}")


def heat_map(d: torch.Tensor, factor: int) -> torch.Tensor:
    """[N,1,h,w] distances → [N, h·f, w·f, 3] colour images (black → purple → orange → yellow), one scale for all."""
    d = torch.nn.functional.interpolate(d, scale_factor=factor, mode="bilinear", align_corners=False)[:, 0]
    t = (d / d.amax().clamp_min(1e-12)).clamp(0, 1)
    anchors = torch.tensor([[0.0, 0.0, 0.02], [0.34, 0.06, 0.43], [0.87, 0.32, 0.23], [0.99, 0.99, 0.6]], device=d.device)
    pos = t * (len(anchors) - 1)
    lo = pos.floor().long().clamp(max=len(anchors) - 2)
    w = (pos - lo).unsqueeze(-1)
    return anchors[lo] * (1 - w) + anchors[lo + 1] * w


class OneStepLatentPerceptualDiff(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="OneStepLatentPerceptualDiff", display_name="Latent Perceptual Diff", category=CATEGORY, is_output_node=True,
            description=("How far two latents are apart perceptually (E-LatentLPIPS, computed on latents, no decoding), with a heat map "
                         "of where they differ."),
            inputs=[
                io.Latent.Input("latent_a", tooltip="First latents (a batch of 1 is compared with every item of b)."),
                io.Latent.Input("latent_b", tooltip="Second latents."),
                io.Combo.Input("weights", options=folder_paths.get_filename_list(model_folder.LATENT_LPIPS_FOLDER), tooltip=(
                    "E-LatentLPIPS weights in models/latent_lpips (published .pth or converted .safetensors) for this latent space.")),
                io.Int.Input("draws", default=8, min=1, max=256, tooltip="Augmentations averaged (the ensemble)."),
                seed_input("Seed of the augmentations: the same seed gives the same distance."),
                io.Combo.Input("augment", options=PRESETS, tooltip=(
                    "b: flips/quarter turns/integer shifts; g: scale/rotation/shifts; c: colour; o: cutout; none: plain LatentLPIPS.")),
                io.Boolean.Input("l1", default=True, tooltip="Add the mean absolute difference of the latents, as E-LatentLPIPS does."),
                io.Model.Input("model", optional=True, tooltip="The model that made the latents: checks they are from the weights' latent space."),
            ],
            outputs=[
                io.Float.Output(display_name="distance", tooltip="Mean distance over the batch."),
                io.String.Output(display_name="table", tooltip="Distance per item."),
                io.Image.Output(display_name="heat_map", tooltip="Where the latents differ, one image per item (brighter = further)."),
            ],
        )

    @classmethod
    def validate_inputs(cls, weights=None, augment=None) -> bool | str:
        return check_choices(cls, weights=weights, augment=augment)

    @classmethod
    def fingerprint_inputs(cls, weights=None, **_) -> str:
        return model_folder.file_fingerprint(model_folder.LATENT_LPIPS_FOLDER, weights)

    @classmethod
    def execute(cls, latent_a, latent_b, weights: str, draws: int, seed: int, augment: str, l1: bool, model=None) -> io.NodeOutput:
        check_declared(cls.INPUT_TYPES(), locals())  # ranges again: a linked value skips ComfyUI's, NaN passes it
        net, encoder, info = load_weights(weights)
        if model is not None:
            check_latent_space(model, encoder.name)
        a, b = latent_a["samples"], latent_b["samples"]
        if a.ndim != 4 or b.ndim != 4:
            raise ValueError(f"Latent Perceptual Diff compares image latents [batch, channels, h, w]; got {tuple(a.shape)} and {tuple(b.shape)}")
        if a.shape[0] != b.shape[0] and 1 not in (a.shape[0], b.shape[0]):
            raise ValueError(f"batch sizes {a.shape[0]} and {b.shape[0]} do not match (a batch of 1 is broadcast)")
        n = max(a.shape[0], b.shape[0])
        a, b = a.expand(n, *a.shape[1:]), b.expand(n, *b.shape[1:])
        metric = ELatentLPIPS(net, encoder, parse_preset("" if augment == "none" else augment), l1)
        metric.check(a, b)
        device = mm.get_torch_device()
        metric.to(device)
        a, b = a.to(device, torch.float32), b.to(device, torch.float32)
        with torch.no_grad():
            dist = metric.evaluate(a, b, draws, seed).cpu()
            image = heat_map(metric.distance_map(a, b), 8).cpu()
        metric.to(mm.unet_offload_device())
        rows = [f"E-LatentLPIPS ({encoder.name}, heads: {info['heads']}, augment {augment}, {draws} draws, seed {seed})"]
        rows += [f"item {i}: {v:.4f}" for i, v in enumerate(dist.tolist())]
        rows.append(f"mean: {dist.mean():.4f}")
        table = "\n".join(rows)
        return io.NodeOutput(float(dist.mean()), table, image, ui={"text": [table]})


NODES = [OneStepLatentPerceptualDiff]
