"""Data for building E-LatentLPIPS in a new latent space: labelled latents and Fashion-MNIST's IDX files.

A labelled-latents file is a .safetensors with "latents" [N, C, H, W] (float, VAE units) and "labels" [N]
(int64), made by whatever encodes the images into the latent space (a VAE node, or `identity` for a
pixel-like space such as the proof-scale benchmark's). The trainer reads the same files as real images for
Diffusion2GAN's discriminator (training/real_images.py), the labels being the pairs' prompt indices.
"""
from __future__ import annotations

import gzip
import os

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..atomic import atomic_write

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"  # Debian package dataset-fashion-mnist
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


def read_idx(path: str) -> np.ndarray:
    """An IDX (MNIST-format) array, gzip or plain."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if data[:2] != b"\0\0" or data[2] != 0x08:
        raise ValueError(f"{os.path.basename(path)} is not an unsigned-byte IDX file")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def write_idx(path: str, array: np.ndarray) -> None:
    """An unsigned-byte IDX file (gzip when the name ends in .gz; a fixed gzip time, so equal arrays give equal files)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    data = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape) + array.tobytes()
    if path.endswith(".gz"):
        data = gzip.compress(data, compresslevel=9, mtime=0)
    with open(path, "wb") as f:
        f.write(data)


def split_head(src: str, dst: str, split: str, count: int) -> None:
    """The first `count` items of a split's image and label IDX files in `src`, written as the same two files in `dst`
    (a smaller copy of a training split for a machine with little room, e.g. a proof-scale GPU call's 64 MiB)."""
    prefix = {"train": "train", "test": "t10k", "t10k": "t10k"}[split]
    for kind in ("images-idx3", "labels-idx1"):
        name = f"{prefix}-{kind}-ubyte.gz"
        write_idx(os.path.join(dst, name), read_idx(os.path.join(src, name))[:count])


def fashion_mnist(split: str = "train", root: str = FASHION_MNIST_DIR) -> tuple[torch.Tensor, torch.Tensor]:
    """(images uint8 [N, 28, 28], labels int64 [N]) of Fashion-MNIST's train or t10k split."""
    prefix = {"train": "train", "test": "t10k", "t10k": "t10k"}[split]
    images = os.path.join(root, f"{prefix}-images-idx3-ubyte.gz")
    if not os.path.exists(images):
        raise FileNotFoundError(f"Fashion-MNIST not found in {root}: install the Debian package dataset-fashion-mnist")
    labels = read_idx(os.path.join(root, f"{prefix}-labels-idx1-ubyte.gz"))
    return torch.from_numpy(read_idx(images).copy()), torch.from_numpy(labels.astype(np.int64))


def images_to_identity_latents(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 [N, H, W] → float [N, 1, size, size] in [−1, 1]: the identity "VAE" of pixel-like latent spaces."""
    x = images.float().div(127.5).sub(1.0).unsqueeze(1)
    return torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


def save_labelled(path: str, latents: torch.Tensor, labels: torch.Tensor) -> None:
    """Write a labelled-latents file (atomically: a cancelled write leaves no half file)."""
    if latents.ndim != 4 or labels.shape != (latents.shape[0],):
        raise ValueError(f"need latents [N, C, H, W] and labels [N], got {tuple(latents.shape)} and {tuple(labels.shape)}")
    tensors = {"latents": latents.contiguous().float(), "labels": labels.contiguous().long()}
    atomic_write(path, lambda tmp: save_file(tensors, tmp))


def load_labelled(path: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Read a labelled-latents file, checking its layout."""
    d = load_file(path)
    if set(d) != {"latents", "labels"} or d["latents"].ndim != 4 or len(d["latents"]) != len(d["labels"]):
        raise ValueError(f"{os.path.basename(path)} is not a labelled-latents file (latents [N,C,H,W] + labels [N])")
    return d["latents"], d["labels"]
