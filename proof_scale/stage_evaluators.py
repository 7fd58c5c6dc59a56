"""The proof-scale evaluators' stages: the classifier (FD, precision/recall and class accuracy are measured in its
feature space; evaluator.py) and the E-LatentLPIPS trunk of the 1×32×32 latent space (trained as a classifier on
the latents, with the augmentations the loss applies). `run` is proof_scale.pipeline's Run."""
from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, replace

import torch

from onestep.latent_lpips import ELatentLPIPS, get_encoder
from onestep.latent_lpips import weights as lpips_weights
from onestep.latent_lpips.train_trunk import TrunkClassifier, TrunkTrainingStopped, to_latent_lpips, train_trunk

from .classifier import accuracy, load_classifier, save_classifier, train_classifier
from .common import Incomplete, sync
from .data import load_split, num_classes
from .evaluator import load_or_build_reference, score

log = logging.getLogger("proof_scale")


def stage_classifier(run) -> dict:
    s, t0 = run.scale, time.monotonic()
    weights = run.path("classifier.safetensors")
    seconds = None
    if os.path.isfile(weights):
        model, info = load_classifier(weights, run.device)
        seconds = info.get("seconds")
    else:
        x, y = load_split("train", s.train_limit, run.data)
        log.info("classifier: training %d steps at batch %d on %d images (%s)", s.classifier_train.steps, s.classifier_train.batch, len(x), run.device)
        start = time.monotonic()
        model = train_classifier(x, y, s.classifier_train, replace(s.classifier_net, num_classes=num_classes(y)), run.device)
        sync(run.device)
        seconds = time.monotonic() - start
        acc = accuracy(model, *load_split("test", s.test_limit, run.data))
        save_classifier(weights, model, {"train": asdict(s.classifier_train), "test_accuracy": acc, "seconds": seconds, "device": str(run.device)})
    real, labels = load_split("test", s.test_limit, run.data)
    acc = accuracy(model, real, labels)
    ref = load_or_build_reference(run.path("classifier.ref.safetensors"), model, real)
    real_self = score(real, labels, ref)  # the real test set against itself: FD 0, the floor of the metrics
    log.info("classifier: test accuracy %.4f (%d test images), trained in %s s", acc, len(real), f"{seconds:.0f}" if seconds else "?")
    return run.record(run.path("classifier.json"), {
        "test_accuracy": acc, "train_seconds": seconds, "test_images": len(real), "net": asdict(s.classifier_net),
        "train": asdict(s.classifier_train), "real_vs_itself": real_self,
    }, t0)


@torch.no_grad()
def _trunk_accuracy(model: TrunkClassifier, latents: torch.Tensor, labels: torch.Tensor, batch: int = 1000) -> float:
    model.eval()
    device = next(model.parameters()).device
    hits = 0
    for i in range(0, len(latents), batch):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            hits += (model(latents[i:i + batch].to(device)).argmax(1).cpu() == labels[i:i + batch]).sum().item()
    return hits / len(latents)


def stage_latent_lpips(run) -> dict:
    s, t0 = run.scale, time.monotonic()
    out, ckpt = run.path("latent_lpips.safetensors"), run.path("latent_lpips.ckpt")
    x, y = load_split("train", s.train_limit, run.data)
    xt, yt = load_split("test", s.test_limit, run.data)
    encoder = get_encoder("custom-1", 1)
    if os.path.isfile(out):
        net, _, info = lpips_weights.load(out)
        acc = None  # measured when the weights were made (see info["heads"])
    else:
        log.info("latent-lpips: training the latent VGG16-BN trunk (width %g) as a Fashion-MNIST classifier: %d steps at batch %d",
                 s.trunk.width, s.trunk.steps, s.trunk.batch)
        start = time.monotonic()
        report = lambda k, loss: log.info("latent-lpips: trunk step %d/%d loss %.4f", k, s.trunk.steps, loss)
        try:
            model = train_trunk(x, y, s.trunk, ckpt, report, run.device, run.deadline)
        except TrunkTrainingStopped as e:
            raise Incomplete(f"latent-lpips: {e}") from None
        seconds = time.monotonic() - start
        acc = _trunk_accuracy(model, xt, yt)
        log.info("latent-lpips: trunk test accuracy %.4f after %.0f s", acc, seconds)
        heads = (f"uniform (uncalibrated): no human 2AFC judgements exist for this 1x32x32 Fashion-MNIST latent space; trunk trained "
                 f"as a Fashion-MNIST classifier on the latents ({s.trunk.steps} steps, batch {s.trunk.batch}, width {s.trunk.width:g}), "
                 f"test accuracy {acc:.4f}")
        net = to_latent_lpips(model.float().cpu())
        lpips_weights.save(out, net, encoder, heads, "proof_scale.pipeline: Fashion-MNIST train split as 1x32x32 latents in [-1, 1]")
        _, _, info = lpips_weights.load(out)
    metric = ELatentLPIPS(net, encoder).to(run.device).eval()
    with torch.no_grad():  # a sanity number: a latent vs itself (0) and vs another test latent
        a = xt[: min(256, len(xt), s.eval_count)].to(run.device)
        d_self = metric.evaluate(a, a, draws=2).mean().item()
        d_other = metric.evaluate(a, a.roll(1, 0), draws=2).mean().item()
    log.info("latent-lpips: %s; E-LatentLPIPS(x, x) %.4f, E-LatentLPIPS(x, other x) %.4f", info["heads"], d_self, d_other)
    return run.record(run.path("latent_lpips.json"), {"weights": out, "info": info, "trunk": asdict(s.trunk), "test_accuracy": acc,
                                                       "distance_same": d_self, "distance_other": d_other}, t0)
