"""E-LatentLPIPS weight files: the authors' published checkpoints and the pack's safetensors.

Published (CC-BY-NC, github.com/mingukkang/elatentlpips releases):
  {enc}_latest_vgg16_tuned.pth   state dict of the whole module: net.slice{1..5}.{idx}.*, lin{0..4}.model.1.weight
                                 (+ aliases lins.{0..4}.model.1.weight) — the calibrated LatentLPIPS.
  {enc}_latent_vgg16.pth.tar     the trunk trained as a latent classifier: {"state_dict": module.model.features.* /
                                 module.model.classifier.*, "best_acc1"} — no calibrated heads.
Both are read with torch.load(weights_only=True). The pack's own format is one .safetensors with the
LatentLPIPS state dict (without the alias keys) and header metadata latent_lpips.{format,encoder,channels,heads,source}.
"""
from __future__ import annotations

import os
import re

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ..atomic import atomic_write
from ..weights_only import refusal_reason

from .encoders import LatentEncoder, get_encoder
from .network import SLICES, LatentLPIPS

FORMAT = "latent-lpips"


class WeightsFileError(ValueError):
    """A file that is not E-LatentLPIPS weights; the message names the problem."""


def _slice_of(idx: int) -> int:
    return next(k for k, (lo, hi) in enumerate(SLICES, 1) if lo <= idx < hi)


def encoder_from_filename(path: str) -> str | None:
    """The encoder named by a published file name ({enc}_latest_vgg16_tuned.pth, {enc}_latent_vgg16.pth.tar)."""
    m = re.match(r"(sd15|sd21|sdxl|sd3|flux)_(latest_vgg16_tuned|latent_vgg16)", os.path.basename(path))
    return m.group(1) if m else None


def load(path: str, encoder: str | None = None) -> tuple[LatentLPIPS, LatentEncoder, dict]:
    """(network in eval mode, its latent encoder, info) from a published or converted weights file."""
    name = os.path.basename(path)
    if not os.path.isfile(path):
        raise WeightsFileError(f"{name}: no such file")
    if path.endswith(".safetensors"):
        return _load_safetensors(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise WeightsFileError(f"{name} is not a plain weights file (torch.load with weights_only=True refused it: {refusal_reason(e)})") from None
    if not isinstance(obj, dict):
        raise WeightsFileError(f"{name} does not hold a state dict")
    enc_name = encoder or encoder_from_filename(path)
    if "state_dict" in obj and any(k.startswith("module.model.features.") for k in obj["state_dict"]):
        sd, heads = _trunk_from_classifier(obj["state_dict"]), "uniform (uncalibrated: classifier trunk only)"
    elif any(k.startswith("net.slice1.") for k in obj):
        sd, heads = obj, "published 2AFC calibration"
    else:
        raise WeightsFileError(f"{name} is not an E-LatentLPIPS checkpoint (no net.slice* or module.model.features.* keys)")
    return _build(sd, enc_name, name, heads)


def _trunk_from_classifier(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in sd.items():
        m = re.match(r"module\.model\.features\.(\d+)\.(.+)", k)
        if m:
            idx = int(m[1])
            out[f"net.slice{_slice_of(idx)}.{idx}.{m[2]}"] = v
    return out


def _build(sd: dict[str, torch.Tensor], enc_name: str | None, name: str, heads: str) -> tuple[LatentLPIPS, LatentEncoder, dict]:
    for k, v in sd.items():
        counter = k.endswith("num_batches_tracked")  # BatchNorm's step counter: the one integer tensor
        if not isinstance(v, torch.Tensor) or (v.dtype != torch.int64 if counter else not v.is_floating_point()):
            want = "an int64 counter" if counter else "a floating-point tensor"
            raise WeightsFileError(f"{name}: weight {k} is {str(getattr(v, 'dtype', type(v).__name__)).removeprefix('torch.')}, not {want}")
        if not torch.isfinite(v).all():
            raise WeightsFileError(f"{name}: weight {k} holds NaN or infinite values")
    try:
        return _build_checked(sd, enc_name, name, heads)
    except WeightsFileError:
        raise
    except (ValueError, RuntimeError, KeyError, TypeError, IndexError, ZeroDivisionError) as e:  # shapes that build no network
        raise WeightsFileError(f"{name}: weights do not fit the latent VGG16-BN LPIPS ({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None


def _build_checked(sd: dict[str, torch.Tensor], enc_name: str | None, name: str, heads: str) -> tuple[LatentLPIPS, LatentEncoder, dict]:
    if "net.slice1.0.weight" not in sd:
        raise WeightsFileError(f"{name}: the first conv (net.slice1.0.weight) is missing")
    channels = int(sd["net.slice1.0.weight"].shape[1])
    width = int(sd["net.slice1.0.weight"].shape[0]) / 64
    enc = get_encoder(enc_name or f"custom-{channels}", channels)
    if enc.channels != channels:
        raise WeightsFileError(f"{name}: the network takes {channels} channels but encoder {enc.name} has {enc.channels}")
    model = LatentLPIPS(channels, width=width)
    sd = {k: v for k, v in sd.items() if not k.startswith("lins.")}  # aliases of lin{i}
    if not any(k.startswith("lin0.") for k in sd):  # a trunk without heads: weight every channel alike
        for i, lin in enumerate(model.lins):
            sd[f"lin{i}.model.1.weight"] = torch.full_like(lin.model[1].weight, 1.0 / lin.model[1].weight.shape[1])
    missing, unexpected = model.load_state_dict(sd, strict=False)
    missing = [k for k in missing if not k.startswith("lins.")]
    if missing or unexpected:
        raise WeightsFileError(f"{name}: weights do not fit the latent VGG16-BN LPIPS (missing {missing[:3]}, unexpected {unexpected[:3]})")
    return model.eval(), enc, {"encoder": enc.name, "channels": channels, "width": width, "heads": heads, "source": name}


def _load_safetensors(path: str) -> tuple[LatentLPIPS, LatentEncoder, dict]:
    name = os.path.basename(path)
    try:
        with safe_open(path, framework="pt") as f:
            meta = f.metadata() or {}
            sd = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError) as e:
        raise WeightsFileError(f"{name} is not a readable .safetensors file (truncated or corrupt?): {e}") from None
    if meta.get("latent_lpips.format") != FORMAT:
        raise WeightsFileError(f"{name} is not E-LatentLPIPS weights (no latent_lpips.format={FORMAT} metadata)")
    return _build(sd, meta.get("latent_lpips.encoder"), name, meta.get("latent_lpips.heads", ""))


def save(path: str, model: LatentLPIPS, encoder: LatentEncoder, heads: str, source: str = "") -> None:
    """Write the pack's safetensors (atomic: temp file, then rename)."""
    sd = {k: v.detach().contiguous() for k, v in model.state_dict().items() if not k.startswith("lins.")}
    header = {"latent_lpips.format": FORMAT, "latent_lpips.encoder": encoder.name, "latent_lpips.channels": str(encoder.channels),
              "latent_lpips.heads": heads, "latent_lpips.source": source}
    atomic_write(path, lambda tmp: save_file(sd, tmp, metadata=header))


def convert(src: str, dest: str, encoder: str | None = None) -> dict:
    """Published checkpoint → the pack's safetensors; returns the info."""
    model, enc, info = load(src, encoder)
    save(dest, model, enc, info["heads"], os.path.basename(src))
    return info
