"""Proof-scale benchmark core: Fashion-MNIST latents, the evaluator's metrics and classifier (no ComfyUI)."""
import math

import pytest
import torch

from proof_scale.checkpoint import CheckpointError
from proof_scale.classifier import (
    ClassifierConfig,
    ClassifierTrainConfig,
    accuracy,
    load_classifier,
    random_shift,
    save_classifier,
    train_classifier,
)
from proof_scale.data import PROMPTS, load_split, to_images, to_latents
from proof_scale.evaluator import build_reference, load_or_build_reference, load_reference, score
from proof_scale.metrics import frechet_distance, gaussian_stats, in_manifold, knn_radii, precision_recall

TINY_NET = ClassifierConfig(width=4, feature_dim=32)
TINY_TRAIN = ClassifierTrainConfig(steps=80, batch=32, lr=3e-3, warmup=5, log_every=40)


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny convolutions run faster on one core


@pytest.fixture(scope="module")
def test_split():
    return load_split("test", limit=600)


@pytest.fixture(scope="module")
def classifier(one_thread):
    x, y = load_split("train", limit=3000)
    return train_classifier(x, y, TINY_TRAIN, TINY_NET, device="cpu")


def test_latents_are_padded_scaled_and_invert_exactly():
    images, _ = load_split("test", limit=8)
    assert images.shape == (8, 1, 32, 32) and images.min() == -1.0 and images.max() <= 1.0
    assert torch.all(images[:, :, :2] == -1) and torch.all(images[:, :, :, -2:] == -1)  # background padding
    u8 = (torch.arange(28 * 28 * 2) % 256).to(torch.uint8).view(2, 28, 28)
    assert torch.equal(to_images(to_latents(u8)), u8)
    assert len(PROMPTS) == 10 and PROMPTS[0] == "T-shirt/top" and PROMPTS[9] == "Ankle boot"


def test_frechet_distance_matches_closed_forms():
    # 1-D Gaussians: W2² = (m1 − m2)² + (s1 − s2)²
    fd = frechet_distance(torch.tensor([1.0]), torch.tensor([[4.0]]), torch.tensor([3.0]), torch.tensor([[9.0]]))
    assert fd == pytest.approx(4.0 + 1.0, rel=1e-9)
    # Σ1 = I, Σ2 = R diag(b) Rᵀ (not diagonal): tr((Σ1Σ2)^½) = Σ √b
    g = torch.Generator().manual_seed(0)
    d = 6
    r, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    b = torch.linspace(0.5, 4.0, d, dtype=torch.float64)
    mu1, mu2 = torch.zeros(d, dtype=torch.float64), torch.full((d,), 0.5, dtype=torch.float64)
    expected = d * 0.25 + d + b.sum() - 2 * b.sqrt().sum()
    assert frechet_distance(mu1, torch.eye(d, dtype=torch.float64), mu2, r @ torch.diag(b) @ r.T) == pytest.approx(float(expected), rel=1e-9)
    # Commuting diagonal covariances: Σ (√a − √c)²
    a, c = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([4.0, 0.5, 3.0])
    expected = float(((a.sqrt() - c.sqrt()) ** 2).sum())
    assert frechet_distance(torch.zeros(3), torch.diag(a), torch.zeros(3), torch.diag(c)) == pytest.approx(expected, rel=1e-6)


def test_frechet_distance_agrees_with_scipy_sqrtm_on_general_covariances():
    linalg = pytest.importorskip("scipy.linalg")
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(8, 8, generator=g, dtype=torch.float64), torch.randn(8, 5, generator=g, dtype=torch.float64)
    s1, s2 = a @ a.T, b @ b.T  # s2 is singular (rank 5)
    mu1, mu2 = torch.randn(8, generator=g, dtype=torch.float64), torch.randn(8, generator=g, dtype=torch.float64)
    root = linalg.sqrtm((s1 @ s2).numpy()).real
    expected = float(((mu1 - mu2) ** 2).sum() + torch.trace(s1) + torch.trace(s2)) - 2 * float(root.trace())
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-6)


def test_frechet_distance_of_samples_approaches_the_gaussians():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(20000, 3, generator=g) * torch.tensor([1.0, 2.0, 0.5])
    y = torch.randn(20000, 3, generator=g) + torch.tensor([1.0, 0.0, 0.0])
    expected = 1.0 + (1 - 1) ** 2 + (2 - 1) ** 2 + (0.5 - 1) ** 2
    assert frechet_distance(*gaussian_stats(x), *gaussian_stats(y)) == pytest.approx(expected, abs=0.08)


def test_precision_recall_identical_and_disjoint_sets():
    g = torch.Generator().manual_seed(3)
    real = torch.randn(300, 16, generator=g)
    assert precision_recall(real, real.clone(), k=3, block=64) == (1.0, 1.0)
    assert precision_recall(real, real + 100.0, k=3, block=64) == (0.0, 0.0)
    # half the fakes far away: precision ≈ 0.5, recall still high (the near half covers the reals)
    fake = torch.cat([torch.randn(300, 16, generator=g), torch.randn(300, 16, generator=g) + 100.0])
    p, r = precision_recall(real, fake, k=3)
    assert 0.3 < p <= 0.5 and r > 0.6


def test_blocked_kernels_equal_the_whole_matrix():
    g = torch.Generator().manual_seed(4)
    a, b = torch.randn(257, 8, generator=g), torch.randn(130, 8, generator=g)
    radii = knn_radii(a, 3, block=50)
    assert torch.allclose(radii, torch.cdist(a, a).sort(dim=1).values[:, 3])
    assert torch.equal(in_manifold(b, a, radii, block=7), (torch.cdist(b, a) <= radii[None]).any(1))


def test_random_shift_moves_content_and_fills_background():
    x = -torch.ones(4, 1, 32, 32)
    x[:, :, 10:20, 10:20] = 1.0
    y = random_shift(x, 2, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and torch.all(y.sum(dim=(1, 2, 3)) == x.sum(dim=(1, 2, 3)))


def test_classifier_beats_chance_after_short_cpu_training(classifier, test_split):
    assert accuracy(classifier, *test_split) > 0.5  # chance is 0.1


def test_fd_separates_real_from_noise(classifier, test_split):
    real_test, _ = test_split
    real_train, _ = load_split("train", limit=600)
    noise = torch.rand(600, 1, 32, 32, generator=torch.Generator().manual_seed(5)) * 2 - 1
    stats = lambda x: gaussian_stats(classifier.features(x).detach())
    with torch.no_grad():
        ref = stats(real_test)
        fd_real, fd_noise = frechet_distance(*stats(real_train), *ref), frechet_distance(*stats(noise), *ref)
    assert fd_real * 20 < fd_noise


def test_score_real_images_and_noise(classifier, test_split):
    real, _ = test_split
    ref = build_reference(classifier, real)
    train_x, train_y = load_split("train", limit=600)
    good = score(train_x, train_y, ref)
    assert set(good) == {"fd", "precision", "recall", "class_acc"}
    assert good["precision"] > 0.6 and good["recall"] > 0.6 and good["class_acc"] > 0.5
    bad = score(torch.rand(600, 1, 32, 32, generator=torch.Generator().manual_seed(6)) * 2 - 1, train_y, ref)
    assert bad["fd"] > 20 * good["fd"] and bad["precision"] < good["precision"] and bad["recall"] < 0.05
    with pytest.raises(FloatingPointError):
        score(torch.full((2, 1, 32, 32), float("nan")), train_y[:2], ref)


def test_weights_and_reference_cache_round_trip(tmp_path, classifier, test_split):
    real, _ = test_split
    path, cache = str(tmp_path / "clf.safetensors"), str(tmp_path / "ref.safetensors")
    save_classifier(path, classifier, {"test_accuracy": 0.5})
    loaded, info = load_classifier(path)
    assert info == {"test_accuracy": 0.5}
    assert torch.equal(loaded(real[:16]), classifier(real[:16]))
    ref = load_or_build_reference(cache, loaded, real[:200])
    again = load_reference(cache, loaded)
    assert torch.equal(again.radii, ref.radii) and torch.equal(again.cov, ref.cov)
    other = train_classifier(*load_split("train", limit=256), ClassifierTrainConfig(steps=2, batch=8, warmup=1, seed=9), TINY_NET, "cpu")
    with pytest.raises(CheckpointError, match="another classifier"):
        load_reference(cache, other)
    with pytest.raises(CheckpointError, match="not a fmnist-classifier"):
        load_classifier(cache)
    assert not math.isnan(load_or_build_reference(cache, other, real[:200]).mu.sum().item())  # rebuilt for the new weights
