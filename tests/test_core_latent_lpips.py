"""E-LatentLPIPS core: distance properties, paired augmentation, published weight layouts (no ComfyUI)."""
import pytest
import torch

from onestep.latent_lpips import ELatentLPIPS, LatentLPIPS, get_encoder
from onestep.latent_lpips.augment import PairedAugment
from onestep.latent_lpips.weights import WeightsFileError, convert, load


def metric(preset="bgco", seed=0, channels=4, enc="sd15"):
    torch.manual_seed(seed)
    net = LatentLPIPS(channels).eval()
    for lin in net.lins:  # published heads are non-negative
        lin.model[1].weight.data.uniform_(0.0, 1.0)
    return ELatentLPIPS(net, get_encoder(enc), preset)


def latents(n=2, seed=1, c=4, size=16):
    return torch.randn(n, c, size, size, generator=torch.Generator().manual_seed(seed))


def test_zero_for_identical_inputs_even_when_augmented():
    m, x = metric(), latents()
    assert torch.all(m(x, x.clone()) == 0)  # independent transforms of the two would make this positive
    assert torch.all(m.evaluate(x, x.clone(), draws=4) == 0)


def test_symmetric_and_positive():
    m, a, b = metric(), latents(seed=1), latents(seed=2)
    dab, dba = m.evaluate(a, b, draws=4, seed=7), m.evaluate(b, a, draws=4, seed=7)
    assert torch.allclose(dab, dba, rtol=1e-5) and torch.all(dab > 0)


def test_evaluation_is_deterministic_per_seed():
    m, a, b = metric(), latents(seed=1), latents(seed=2)
    assert torch.equal(m.evaluate(a, b, draws=3, seed=5), m.evaluate(a, b, draws=3, seed=5))
    assert not torch.equal(m.evaluate(a, b, draws=3, seed=5), m.evaluate(a, b, draws=3, seed=6))


def test_gradients_reach_both_inputs():
    m = metric()
    a, b = latents(seed=1).requires_grad_(), latents(seed=2).requires_grad_()
    m(a, b).sum().backward()
    assert a.grad.abs().sum() > 0 and b.grad.abs().sum() > 0


def test_the_same_transform_hits_both_inputs():
    aug = PairedAugment("bgco")
    a, b = latents(seed=1), latents(seed=2)
    ta, tb = aug(a, b, generator=torch.Generator().manual_seed(3))
    p = aug.sample(2, 16, 16, torch.Generator().manual_seed(3))
    assert torch.allclose(ta, aug.apply(a, p)) and torch.allclose(tb, aug.apply(b, p))
    # A pair that differs only by a transform of the ensemble (b = xflip(a)): were the two sides augmented
    # independently, some draws would flip just one side back and score 0; paired draws never do.
    m, g = metric("b"), torch.Generator().manual_seed(4)
    draws = torch.stack([m(a, torch.flip(a, dims=[3]), generator=g) for _ in range(12)])
    assert torch.all(draws > 0.2 * draws.mean())


def test_flips_and_quarter_turns_are_exact_dihedral_moves():
    from onestep.latent_lpips.augment import AugmentConfig

    aug = PairedAugment("b", AugmentConfig(xint_max=0.0))
    x = latents(n=16, size=8)
    y = aug(x, generator=torch.Generator().manual_seed(0))[0]
    dihedral = [torch.rot90(t, k, dims=(2, 3)) for t in (x, torch.flip(x, dims=[3])) for k in range(4)]
    for i in range(16):  # each item is exactly one of the 8 flips/rotations of itself: no interpolation, no shift
        assert min(float((d[i] - y[i]).abs().max()) for d in dihedral) < 1e-4


def test_spatial_map_shape():
    m, a, b = metric(), latents(), latents(seed=2)
    d = m.distance_map(a, b)
    assert d.shape == (2, 1, 16, 16) and torch.all(d >= 0)


def test_bad_inputs_are_named():
    m = metric()
    with pytest.raises(ValueError, match="4-channel sd15"):
        m.check(latents(c=16), latents(c=16))
    with pytest.raises(ValueError, match="NaN"):
        x = latents()
        x[0, 0, 0, 0] = float("nan")
        m.check(x, latents())
    with pytest.raises(ValueError, match="shapes differ"):
        m.check(latents(size=16), latents(size=24))
    with pytest.raises(ValueError, match="unknown augmentation"):
        PairedAugment("bx")


def published_state_dict(seed=0, channels=4):
    torch.manual_seed(seed)
    net = LatentLPIPS(channels)
    for lin in net.lins:
        lin.model[1].weight.data.uniform_(0, 1)
    return net, net.state_dict()  # includes lin{i}.* and the lins.{i}.* aliases, as published


def test_published_tuned_layout_round_trip(tmp_path):
    net, sd = published_state_dict()
    assert "lins.0.model.1.weight" in sd and "lin0.model.1.weight" in sd and "net.slice1.1.running_mean" in sd
    src = tmp_path / "sd15_latest_vgg16_tuned.pth"
    torch.save(sd, src)
    loaded, enc, info = load(str(src))
    assert enc.name == "sd15" and info["heads"] == "published 2AFC calibration"
    dest = tmp_path / "sd15.safetensors"
    convert(str(src), str(dest))
    again, enc2, _ = load(str(dest))
    a, b = latents(seed=1), latents(seed=2)
    net.eval()
    with torch.no_grad():
        assert torch.allclose(net(a, b), loaded(a, b)) and torch.allclose(net(a, b), again(a, b))
    assert enc2 == enc


def test_published_classifier_layout(tmp_path):
    torch.manual_seed(0)
    from onestep.latent_lpips.network import vgg16_bn_features

    feats = vgg16_bn_features(16)
    sd = {f"module.model.features.{k}": v for k, v in feats.state_dict().items()}
    sd["module.model.classifier.0.weight"] = torch.randn(10, 512)
    src = tmp_path / "sd3_latent_vgg16.pth.tar"
    torch.save({"state_dict": sd, "best_acc1": 71.2}, src)
    model, enc, info = load(str(src))
    assert enc.name == "sd3" and enc.channels == 16 and "uncalibrated" in info["heads"]
    assert torch.equal(model.net.slice4.get_submodule("24").weight, feats[24].weight)
    assert torch.allclose(model.lin0.model[1].weight, torch.full_like(model.lin0.model[1].weight, 1 / 64))


def test_foreign_files_are_refused(tmp_path):
    torch.save({"a": torch.zeros(1)}, tmp_path / "x.pth")
    with pytest.raises(WeightsFileError, match="not an E-LatentLPIPS checkpoint"):
        load(str(tmp_path / "x.pth"))
    with open(tmp_path / "y.pth", "wb") as f:
        torch.save({"m": torch.nn.Linear(1, 1)}, f)
    with pytest.raises(WeightsFileError, match="weights_only"):
        load(str(tmp_path / "y.pth"))
    from safetensors.torch import save_file

    save_file({"a": torch.zeros(1)}, tmp_path / "z.safetensors")
    with pytest.raises(WeightsFileError, match="not E-LatentLPIPS weights"):
        load(str(tmp_path / "z.safetensors"))


def test_cli_converts_and_reports(tmp_path, capsys):
    from onestep.latent_lpips.cli import main

    _, sd = published_state_dict()
    torch.save(sd, tmp_path / "sdxl_latest_vgg16_tuned.pth")
    assert main(["convert", str(tmp_path / "sdxl_latest_vgg16_tuned.pth"), str(tmp_path / "out.safetensors")]) == 0
    assert main(["info", str(tmp_path / "out.safetensors")]) == 0
    assert '"encoder": "sdxl"' in capsys.readouterr().out
    assert main(["convert", str(tmp_path / "missing.pth"), str(tmp_path / "x.safetensors")]) == 2
    assert not (tmp_path / "x.safetensors").exists()


def fmnist_latents(n, split, size=16, seed=0):
    from onestep.latent_lpips.datasets import fashion_mnist, images_to_identity_latents

    images, labels = fashion_mnist(split)
    idx = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))[:n]
    return images_to_identity_latents(images[idx], size), labels[idx]


def test_trunk_learns_fashion_mnist_classes():
    from onestep.latent_lpips.train_trunk import TrunkTrainConfig, accuracy, train_trunk

    x, y = fmnist_latents(2048, "train")
    xt, yt = fmnist_latents(500, "test")
    model = train_trunk(x, y, TrunkTrainConfig(steps=150, batch=64, width=0.125, lr=3e-3))
    assert accuracy(model, xt, yt) > 0.5  # chance is 0.1


@pytest.mark.parametrize("augment", ["", "bg"])
def test_trunk_training_resumes_exactly(tmp_path, augment):
    from onestep.latent_lpips.train_trunk import TrunkTrainConfig, train_trunk

    x, y = fmnist_latents(256, "train")
    cfg = TrunkTrainConfig(steps=8, batch=16, width=0.125, checkpoint_every=4, augment=augment)
    straight = train_trunk(x, y, cfg)
    ckpt = str(tmp_path / "t.ckpt")
    train_trunk(x, y, TrunkTrainConfig(**{**cfg.__dict__, "steps": 4}), ckpt)
    resumed = train_trunk(x, y, cfg, ckpt)
    a, b = straight.state_dict(), resumed.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    if augment:  # the augmentations reach the batches: the same run without them ends elsewhere
        plain = train_trunk(x, y, TrunkTrainConfig(**{**cfg.__dict__, "augment": ""})).state_dict()
        assert not all(torch.equal(a[k], plain[k]) for k in a)


def write_bapps(root, n=6, size=16, seed=0):
    """A BAPPS-layout 2AFC folder: one of p0/p1 is heavily distorted, and people prefer the other."""
    import os

    import numpy as np
    from PIL import Image

    g = np.random.default_rng(seed)
    folder = os.path.join(root, "val", "traditional")
    for sub in ("ref", "p0", "p1", "judge"):
        os.makedirs(os.path.join(folder, sub), exist_ok=True)
    for i in range(n):
        ref = g.integers(0, 255, (size, size, 3)).astype(np.uint8)
        p0 = np.clip(ref + g.normal(0, 8, ref.shape), 0, 255).astype(np.uint8)
        p1 = np.clip(ref + g.normal(0, 80, ref.shape), 0, 255).astype(np.uint8)
        if i % 2:
            p0, p1 = p1, p0
        for key, img in (("ref", ref), ("p0", p0), ("p1", p1)):
            Image.fromarray(img).save(os.path.join(folder, key, f"{i:06d}.png"))
        np.save(os.path.join(folder, "judge", f"{i:06d}.npy"), np.array([float(i % 2)], dtype=np.float32))


def test_bapps_reader_and_calibration(tmp_path):
    from onestep.latent_lpips.bapps import read_2afc
    from onestep.latent_lpips.calibrate import CalibrateConfig, calibrate_heads, score

    write_bapps(str(tmp_path), n=24)
    t = read_2afc(str(tmp_path), "val", "traditional", size=16)
    assert t["ref"].shape == (24, 3, 16, 16) and t["judge"].shape == (24,) and t["ref"].min() >= -1
    torch.manual_seed(0)
    net = LatentLPIPS(3, width=0.125)
    with torch.no_grad():
        for lin in net.lins:
            lin.model[1].weight.uniform_(0.0, 0.01)
    losses = []
    calibrate_heads(net, t, CalibrateConfig(steps=80, batch=12, lr=1e-2, log_every=1), progress=lambda step, loss: losses.append(loss))
    assert all(bool((lin.model[1].weight >= 0).all()) for lin in net.lins)
    assert sum(losses[-10:]) < 0.5 * sum(losses[:10])  # the ranking loss falls
    assert score(net, t) >= 0.9


def test_cli_builds_weights_for_a_new_latent_space(tmp_path):
    from onestep.latent_lpips.cli import main

    assert main(["fashion-mnist", str(tmp_path / "train.safetensors"), "--size", "16", "--limit", "256"]) == 0
    assert main(["train-trunk", str(tmp_path / "train.safetensors"), str(tmp_path / "fm.safetensors"),
                 "--steps", "4", "--batch", "16", "--width", "0.125", "--eval", str(tmp_path / "train.safetensors")]) == 0
    model, enc, info = load(str(tmp_path / "fm.safetensors"))
    assert enc.name == "custom-1" and "held-out accuracy" in info["heads"] and info["width"] == 0.125
    write_bapps(str(tmp_path / "bapps"), n=8)
    assert main(["bapps-triplets", str(tmp_path / "bapps"), str(tmp_path / "t.safetensors"), "--size", "16"]) == 0
