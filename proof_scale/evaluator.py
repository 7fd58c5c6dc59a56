"""Scoring generated Fashion-MNIST latents with the project's classifier (classifier.py).

score(images, labels, reference) → {fd, precision, recall, class_acc}:
  - fd: Fréchet distance (Heusel et al. 2017) between Gaussian fits of the classifier's penultimate features
    of the generated images and of the real test set. Not FID: the feature network is ours, not Inception.
  - precision / recall: Kynkäänniemi et al. 2019, k-NN manifolds (k = 3) in the same feature space.
  - class_acc: share of generated images the classifier assigns to the class of their prompt.
Generated images are clamped to [−1, 1] and quantized to the uint8 grid (as saving them as images would)
before scoring, so they are treated exactly like the real ones. The real side (features, μ, Σ, k-NN radii)
is computed once per classifier and cached in a safetensors file tied to the classifier's weight digest.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch

from .checkpoint import CheckpointError, digest, load_tensors, save_tensors
from .classifier import Classifier, load_classifier, predict
from .data import load_split, to_images, to_latents
from .metrics import DEFAULT_K, frechet_distance, gaussian_stats, knn_radii, precision_recall

log = logging.getLogger("proof_scale")
KIND = "fmnist-reference"


@dataclass
class Reference:
    """The real side of the metrics, for one classifier."""

    classifier: Classifier  # the feature network (eval mode, on the device the metrics run on)
    features: torch.Tensor  # [N, D] features of the real images
    mu: torch.Tensor  # [D] float64 mean of the features
    cov: torch.Tensor  # [D, D] float64 covariance of the features
    radii: torch.Tensor  # [N] k-NN radii of the real features
    k: int = DEFAULT_K  # neighbourhood size of precision/recall

    @property
    def classifier_digest(self) -> str:
        """sha256 of the classifier weights these statistics belong to."""
        return digest(self.classifier.state_dict())


def prepare(images: torch.Tensor) -> torch.Tensor:
    """Clamp to [−1, 1] and quantize to the 8-bit grid of real images (the round trip through an image file)."""
    return to_latents(to_images(images))


def build_reference(classifier: Classifier, real: torch.Tensor, k: int = DEFAULT_K) -> Reference:
    """Statistics of real latents [N, 1, 32, 32] (e.g. the whole test split)."""
    feats, _ = predict(classifier, prepare(real))
    mu, cov = gaussian_stats(feats)
    return Reference(classifier, feats, mu, cov, knn_radii(feats, k), k)


def save_reference(path: str, ref: Reference) -> None:
    """Cache the statistics (safetensors; the classifier digest in the metadata)."""
    tensors = {"features": ref.features, "mu": ref.mu, "cov": ref.cov, "radii": ref.radii}
    save_tensors(path, tensors, KIND, {"k": ref.k, "classifier_sha256": ref.classifier_digest, "count": len(ref.features)})


def load_reference(path: str, classifier: Classifier) -> Reference:
    """Cached statistics; CheckpointError if they belong to other classifier weights."""
    t, meta = load_tensors(path, KIND)
    if meta["classifier_sha256"] != digest(classifier.state_dict()):
        raise CheckpointError(f"{path} holds statistics of another classifier")
    device = next(classifier.parameters()).device
    return Reference(classifier, t["features"].to(device), t["mu"].to(device), t["cov"].to(device), t["radii"].to(device), int(meta["k"]))


def load_or_build_reference(path: str | None, classifier: Classifier, real: torch.Tensor, k: int = DEFAULT_K) -> Reference:
    """The cached statistics at `path` if they match the classifier and k, else built (and cached when path is set)."""
    if path and os.path.exists(path):
        try:
            ref = load_reference(path, classifier)
            if ref.k == k and len(ref.features) == len(real):
                return ref
        except CheckpointError as e:
            log.info("rebuilding reference statistics: %s", e)
    ref = build_reference(classifier, real, k)
    if path:
        save_reference(path, ref)
    return ref


def work_reference(work: str, data: str, test_limit: int | None, device: torch.device) -> Reference:
    """A work folder's scoring reference: its classifier, the test split of `data` (its first test_limit items), the
    statistics cached beside the classifier (classifier.ref.safetensors)."""
    classifier, _ = load_classifier(os.path.join(work, "classifier.safetensors"), device)
    real, _ = load_split("test", test_limit, data)
    return load_or_build_reference(os.path.join(work, "classifier.ref.safetensors"), classifier, real)


@torch.no_grad()
def score(images: torch.Tensor, labels: torch.Tensor, reference: Reference) -> dict[str, float]:
    """{fd, precision, recall, class_acc} of generated latents [N, 1, 32, 32] made for class prompts `labels` [N]."""
    if images.ndim != 4 or images.shape[1:] != (1, 32, 32) or len(images) != len(labels):
        raise ValueError(f"expected images [N, 1, 32, 32] and labels [N], got {tuple(images.shape)} and {tuple(labels.shape)}")
    if not torch.isfinite(images).all():
        raise FloatingPointError(f"{int((~torch.isfinite(images)).sum())} non-finite values in the generated images")
    feats, preds = predict(reference.classifier, prepare(images))
    mu, cov = gaussian_stats(feats)
    fd = frechet_distance(mu, cov, reference.mu, reference.cov)
    precision, recall = precision_recall(reference.features, feats, reference.k, real_radii=reference.radii)
    class_acc = (preds.cpu() == labels.cpu()).float().mean().item()
    return {"fd": fd, "precision": precision, "recall": recall, "class_acc": class_acc}


def score_seeds(sample, labels: torch.Tensor, reference: Reference, seeds: tuple[int, ...], done: list[dict] | None = None) -> dict:
    """A row scored on one sample set per noise seed: the metrics' means, `fd_seeds` and `fd_spread` (max − min FD,
    the noise a ratio of two rows has to beat), the mean sampling seconds and `per_seed` (each seed's metrics).
    `sample(seed)` → latents [N, 1, 32, 32]; `done`: per-seed results scored before (their seeds are not sampled again)."""
    import time

    known = {p["seed"]: p for p in done or []}
    per = []
    for seed in seeds:
        if seed in known:
            per.append(known[seed])
            continue
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.monotonic()
        x = sample(seed)
        per.append({**score(x, labels, reference), "seconds": time.monotonic() - start, "seed": seed})
    row = {k: sum(p[k] for p in per) / len(per) for k in ("fd", "precision", "recall", "class_acc", "seconds")}
    fds = [p["fd"] for p in per]
    return {**row, "fd_seeds": fds, "fd_spread": max(fds) - min(fds), "seeds": list(seeds), "per_seed": per}


def per_seed_results(row: dict) -> list[dict]:
    """The per-seed results of a scored row; a record written before rows kept them has them only for one seed."""
    if "per_seed" in row:
        return row["per_seed"]
    if len(row.get("seeds", [])) == 1:
        return [{**{k: row[k] for k in ("fd", "precision", "recall", "class_acc", "seconds")}, "seed": row["seeds"][0]}]
    return []
