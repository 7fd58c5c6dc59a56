"""Sample-quality metrics on feature vectors.

- Fréchet distance (Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule ...", eq. 6) between
  Gaussians fitted to two feature sets: d² = ‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2(Σ₁Σ₂)^½). FID is this distance in
  Inception-v3 features; here the features are our own classifier's, so it is reported as `fd`, not FID.
  tr((Σ₁Σ₂)^½) = tr((Σ₁^½ Σ₂ Σ₁^½)^½), a symmetric PSD matrix, so both roots come from torch.linalg.eigh
  in float64 (no scipy).
- Improved precision and recall (Kynkäänniemi et al. 2019, "Improved Precision and Recall Metric for
  Assessing Generative Models", eq. 1–3): each set's manifold is the union of balls around its points with
  radius = distance to the k-th nearest neighbour within the set (k = 3); precision = share of generated
  points inside the real manifold, recall = share of real points inside the generated one. Distances are
  computed in row blocks, so 10k × 10k sets need only a block × N matrix at a time.
"""
from __future__ import annotations

import torch

DEFAULT_K = 3  # neighbourhood size of Kynkäänniemi et al.
DEFAULT_BLOCK = 1000  # rows of the distance matrix held at once


def gaussian_stats(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean [D], unbiased covariance [D, D]) in float64."""
    f = features.double()
    mu = f.mean(0)
    d = f - mu
    return mu, d.T @ d / (len(f) - 1)


def _psd_sqrt(m: torch.Tensor) -> torch.Tensor:
    w, v = torch.linalg.eigh((m + m.T) / 2)
    return (v * w.clamp(min=0).sqrt()) @ v.T


def frechet_distance(mu1: torch.Tensor, cov1: torch.Tensor, mu2: torch.Tensor, cov2: torch.Tensor) -> float:
    """Squared Fréchet (2-Wasserstein) distance between N(mu1, cov1) and N(mu2, cov2)."""
    mu1, cov1, mu2, cov2 = (t.double() for t in (mu1, cov1, mu2, cov2))
    s1 = _psd_sqrt(cov1)
    inner = s1 @ cov2 @ s1
    tr_sqrt = torch.linalg.eigvalsh((inner + inner.T) / 2).clamp(min=0).sqrt().sum()
    return float(((mu1 - mu2) ** 2).sum() + torch.trace(cov1) + torch.trace(cov2) - 2 * tr_sqrt)


def knn_radii(features: torch.Tensor, k: int = DEFAULT_K, block: int = DEFAULT_BLOCK) -> torch.Tensor:
    """Distance of each point to its k-th nearest neighbour within the set (itself excluded)."""
    f = features.float()
    if len(f) <= k:
        raise ValueError(f"k-NN radii need more than k={k} points, got {len(f)}")
    out = [torch.cdist(f[i:i + block], f).kthvalue(k + 1, dim=1).values for i in range(0, len(f), block)]
    return torch.cat(out)


def in_manifold(queries: torch.Tensor, points: torch.Tensor, radii: torch.Tensor, block: int = DEFAULT_BLOCK) -> torch.Tensor:
    """Bool [Q]: whether each query lies within radii[j] of some points[j]."""
    q, p, r = queries.float(), points.float(), radii.float().to(points.device)
    out = [(torch.cdist(q[i:i + block], p) <= r[None, :]).any(dim=1) for i in range(0, len(q), block)]
    return torch.cat(out)


def precision_recall(
    real: torch.Tensor, fake: torch.Tensor, k: int = DEFAULT_K, real_radii: torch.Tensor | None = None, block: int = DEFAULT_BLOCK,
) -> tuple[float, float]:
    """(precision, recall) of generated features `fake` against `real`; pass cached real radii to skip them."""
    real_radii = knn_radii(real, k, block) if real_radii is None else real_radii
    fake_radii = knn_radii(fake, k, block)
    precision = in_manifold(fake, real, real_radii, block).float().mean().item()
    recall = in_manifold(real, fake, fake_radii, block).float().mean().item()
    return precision, recall
