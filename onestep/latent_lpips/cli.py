"""Command line for E-LatentLPIPS weights.

  convert SRC DEST [--encoder E]            published .pth / .pth.tar → the pack's safetensors
  info FILE                                 what a weights file holds
  fashion-mnist OUT [--split --size]        labelled latents of Fashion-MNIST (identity encoder, 1 channel)
  train-trunk LATENTS OUT [--eval LATENTS]  train the trunk as a classifier → weights with uniform heads
  bapps-triplets ROOT OUT [--subset ...]    BAPPS 2AFC triplets (identity encoder: images as 3-channel latents)
  calibrate WEIGHTS TRIPLETS OUT            calibrate the heads on 2AFC triplets
Training commands report progress and keep a resumable checkpoint (--checkpoint, default OUT + ".ckpt").
"""
from __future__ import annotations

import argparse
import json
import logging
import sys

import os
from dataclasses import fields

from safetensors.torch import load_file, save_file

from .bapps import read_2afc
from .calibrate import CalibrateConfig, calibrate_heads, score
from .datasets import fashion_mnist, images_to_identity_latents, load_labelled, save_labelled
from .encoders import get_encoder
from .train_trunk import TrunkTrainConfig, accuracy, to_latent_lpips, train_trunk
from .weights import WeightsFileError, convert, load, save

log = logging.getLogger("latent_lpips")


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    p = argparse.ArgumentParser(prog="python -m onestep.latent_lpips.cli", description="E-LatentLPIPS weight files.")
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("convert", help="published .pth / .pth.tar → safetensors")
    c.add_argument("src")
    c.add_argument("dest")
    c.add_argument("--encoder", default=None, help="sd15|sd21|sdxl|sd3|flux (default: from the file name, else custom-<C>)")
    i = sub.add_parser("info", help="what a weights file holds")
    i.add_argument("file")
    fm = sub.add_parser("fashion-mnist", help="labelled latents of Fashion-MNIST (identity encoder)")
    fm.add_argument("out")
    fm.add_argument("--split", default="train", choices=["train", "test"])
    fm.add_argument("--size", type=int, default=32, help="latent size (images are resized)")
    fm.add_argument("--limit", type=int, default=None)
    tt = sub.add_parser("train-trunk", help="train the trunk as a classifier on labelled latents")
    tt.add_argument("latents")
    tt.add_argument("out")
    tt.add_argument("--encoder", default=None, help="latent space name (default custom-<C>)")
    tt.add_argument("--eval", default=None, help="labelled latents to report accuracy on")
    _training_args(tt, TrunkTrainConfig())
    bt = sub.add_parser("bapps-triplets", help="BAPPS 2AFC triplets as 3-channel identity latents")
    bt.add_argument("root")
    bt.add_argument("out")
    bt.add_argument("--split", default="val")
    bt.add_argument("--subset", default="traditional")
    bt.add_argument("--size", type=int, default=64)
    bt.add_argument("--limit", type=int, default=None)
    ca = sub.add_parser("calibrate", help="calibrate the linear heads on 2AFC triplets")
    ca.add_argument("weights")
    ca.add_argument("triplets")
    ca.add_argument("out")
    ca.add_argument("--heads-note", default="calibrated on 2AFC triplets", help="what the heads are, recorded in the file")
    _training_args(ca, CalibrateConfig())
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.cmd == "convert":
            if not args.dest.endswith(".safetensors"):
                raise WeightsFileError("the output must be a .safetensors file")
            log.info("wrote %s: %s", args.dest, json.dumps(convert(args.src, args.dest, args.encoder)))
        elif args.cmd == "info":
            print(json.dumps(load(args.file)[2], indent=2))
        elif args.cmd == "fashion-mnist":
            images, labels = fashion_mnist(args.split)
            images, labels = images[: args.limit], labels[: args.limit]
            save_labelled(args.out, images_to_identity_latents(images, args.size), labels)
            log.info("wrote %d labelled %d×%d latents to %s", len(labels), args.size, args.size, args.out)
        elif args.cmd == "train-trunk":
            latents, labels = load_labelled(args.latents)
            cfg = _config(TrunkTrainConfig, args)
            model = train_trunk(latents, labels, cfg, args.checkpoint or args.out + ".ckpt", _report("trunk"))
            heads = "uniform (uncalibrated: trunk trained as a classifier)"
            if args.eval:
                acc = accuracy(model, *load_labelled(args.eval))
                log.info("held-out accuracy %.4f", acc)
                heads += f", held-out accuracy {acc:.4f}"
            enc = get_encoder(args.encoder or f"custom-{latents.shape[1]}", latents.shape[1])
            save(args.out, to_latent_lpips(model), enc, heads, os.path.basename(args.latents))
        elif args.cmd == "bapps-triplets":
            t = read_2afc(args.root, args.split, args.subset, args.size, args.limit)
            save_file({k: v.contiguous() for k, v in t.items()}, args.out)
            log.info("wrote %d triplets to %s", len(t["judge"]), args.out)
        elif args.cmd == "calibrate":
            model, enc, info = load(args.weights)
            triplets = load_file(args.triplets)
            before = score(model, triplets)
            calibrate_heads(model, triplets, _config(CalibrateConfig, args), args.checkpoint or args.out + ".ckpt", _report("calibrate"))
            after = score(model, triplets)
            log.info("2AFC score %.4f → %.4f", before, after)
            save(args.out, model, enc, f"{args.heads_note} (2AFC {after:.4f})", os.path.basename(args.triplets))
        return 0
    except (WeightsFileError, ValueError, FileNotFoundError, FloatingPointError) as e:
        log.error("error: %s", e)
        return 2


def _training_args(parser: argparse.ArgumentParser, defaults) -> None:
    for f in fields(defaults):
        parser.add_argument(f"--{f.name.replace('_', '-')}", type=type(getattr(defaults, f.name)), default=getattr(defaults, f.name))
    parser.add_argument("--checkpoint", default=None, help="resumable state (default: OUT.ckpt); rerun the same command to resume")


def _config(cls, args):
    return cls(**{f.name: getattr(args, f.name) for f in fields(cls)})


def _report(what: str):
    return lambda step, loss: log.info("%s step %d loss %.4f", what, step, loss)


if __name__ == "__main__":
    sys.exit(main())
