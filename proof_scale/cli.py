"""Command line of the proof-scale benchmark (run from the repository root).

  train-classifier OUT                      the evaluator: train on the train split, report test accuracy
  train-teacher OUT --context TABLE         the text-conditioned diffusion teacher (TABLE: .safetensors with
                                            "context" [11, L, D], or random:L:D for a seeded stand-in)
  sample-teacher TEACHER OUT                multi-step samples (labelled latents: "latents" + "labels")
  score SAMPLES --classifier C              {fd, precision, recall, class_acc} vs the real test set
  sweep-teacher TEACHER --classifier C      sample + score over steps × CFG; the best FD is reported
  export-ldm TEACHER OUT                    the teacher's UNet in ComfyUI's ldm layout (+ unet_config metadata)
Outputs are written atomically; metrics are printed as JSON (and written with --json).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import fields

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from onestep.atomic import atomic_write
from onestep.schedule import SPACINGS

from .checkpoint import CheckpointError
from .classifier import ClassifierConfig, ClassifierTrainConfig, accuracy, load_classifier, save_classifier, train_classifier
from .data import FASHION_MNIST_DIR, empty_row, load_split
from .evaluator import load_or_build_reference, score
from .sampler import SAMPLERS, class_labels, sample_teacher
from .teacher import (
    TeacherNetConfig,
    TeacherTrainConfig,
    build_unet,
    ldm_state_dict,
    ldm_unet_config,
    load_teacher,
    parameter_count,
    random_context_table,
    save_teacher,
    train_teacher,
)

log = logging.getLogger("proof_scale")


def _parse(default):
    if isinstance(default, tuple):
        elem = _parse(default[0])
        return lambda s: tuple(elem(v) for v in s.split(","))
    if isinstance(default, bool):
        return lambda s: s.lower() in ("1", "true", "yes", "on")
    return type(default)


def _config_args(parser: argparse.ArgumentParser, defaults) -> None:
    for f in fields(defaults):
        value = getattr(defaults, f.name)
        shown = ",".join(str(v) for v in value) if isinstance(value, tuple) else value
        parser.add_argument(f"--{f.name.replace('_', '-')}", type=_parse(value), default=value, help=f"(default {shown})")


def _config(cls, args, **overrides):
    return cls(**{**{f.name: getattr(args, f.name) for f in fields(cls)}, **overrides})


def _device(name: str | None) -> torch.device:
    return torch.device(name or ("cuda" if torch.cuda.is_available() else "cpu"))


def context_prompts(spec: str) -> list[str] | None:
    """The class prompts a context-table file was encoded from (its "prompts" metadata, the empty prompt dropped)."""
    if spec.startswith("random:"):
        return None
    with safe_open(spec, "pt") as f:
        prompts = json.loads((f.metadata() or {}).get("prompts", "null"))
    return [p for p in prompts if p] if prompts else None


def read_context(spec: str) -> torch.Tensor:
    """A context table [K+1, L, D] from a .safetensors file (tensor "context") or "random:L:D[:seed[:classes]]"."""
    if spec.startswith("random:"):
        parts = [int(v) for v in spec.split(":")[1:]]
        return random_context_table(*parts)
    tensors = load_file(spec)
    if "context" not in tensors:
        raise ValueError(f"{spec} has no tensor named 'context'")
    return tensors["context"].float()


def write_labelled(path: str, latents: torch.Tensor, labels: torch.Tensor, meta: dict) -> None:
    """Labelled latents ("latents" [N,1,32,32] float32, "labels" [N] int64) written atomically."""
    tensors = {"latents": latents.contiguous().float(), "labels": labels.contiguous().long()}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata={k: json.dumps(v) for k, v in meta.items()}))


def write_json(path: str | None, obj) -> None:
    """Print `obj` as JSON and, with a path, write it there atomically."""
    text = json.dumps(obj, indent=2)
    sys.stdout.write(text + "\n")
    if path:
        def write(tmp: str) -> None:
            with open(tmp, "w") as f:
                f.write(text + "\n")

        atomic_write(path, write)


def _evaluator(args) -> tuple[object, torch.Tensor]:
    classifier, _ = load_classifier(args.classifier, _device(args.device))
    real, _ = load_split("test", args.limit, args.data)
    return load_or_build_reference(args.reference_cache or args.classifier + ".ref.safetensors", classifier, real), real


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    p = argparse.ArgumentParser(prog="python -m proof_scale.cli", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default=None, help="cuda, cpu, ... (default: cuda when available)")
    p.add_argument("--limit", type=int, default=None, help="use only the first N images of each split (smoke runs)")
    p.add_argument("--data", default=FASHION_MNIST_DIR, help="folder of the labelled set's four IDX files (default: Debian's Fashion-MNIST)")
    sub = p.add_subparsers(dest="cmd", required=True)
    tc = sub.add_parser("train-classifier", help="train the evaluator classifier")
    tc.add_argument("out")
    _config_args(tc, ClassifierConfig())
    _config_args(tc, ClassifierTrainConfig())
    tt = sub.add_parser("train-teacher", help="train the diffusion teacher")
    tt.add_argument("out")
    tt.add_argument("--context", required=True, help='.safetensors with "context" [11, L, D], or random:L:D[:seed]')
    _config_args(tt, TeacherNetConfig())
    _config_args(tt, TeacherTrainConfig())
    st = sub.add_parser("sample-teacher", help="multi-step samples of the teacher")
    st.add_argument("teacher")
    st.add_argument("out")
    _sampling_args(st)
    sc = sub.add_parser("score", help="metrics of labelled latents vs the real test set")
    sc.add_argument("samples")
    _scoring_args(sc)
    sw = sub.add_parser("sweep-teacher", help="sample + score over steps × CFG")
    sw.add_argument("teacher")
    sw.add_argument("--steps", type=lambda s: [int(v) for v in s.split(",")], default=[10, 25, 50])
    sw.add_argument("--cfg", type=lambda s: [float(v) for v in s.split(",")], default=[1.0, 1.5, 2.0, 3.0, 4.0])
    sw.add_argument("--count", type=int, default=10000)
    sw.add_argument("--seed", type=int, default=0)
    sw.add_argument("--sampler", default="euler", choices=sorted(SAMPLERS))
    sw.add_argument("--spacing", default="linspace", choices=SPACINGS, help="the sampler's timesteps: DDIM's linspace, or uniform in log σ")
    sw.add_argument("--batch", type=int, default=1000)
    sw.add_argument("--fp32", action="store_true", help="run the UNet in float32 (default: bf16 autocast on CUDA)")
    _scoring_args(sw)
    ex = sub.add_parser("export-ldm", help="teacher UNet in ComfyUI's ldm layout")
    ex.add_argument("teacher")
    ex.add_argument("out")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    try:
        return COMMANDS[args.cmd](args)
    except (CheckpointError, ValueError, FileNotFoundError, FloatingPointError) as e:
        log.error("error: %s", e)
        return 2


def _sampling_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--count", type=int, default=10000, help="samples; item i gets class i mod 10")
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--cfg", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sampler", default="euler", choices=sorted(SAMPLERS))
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--fp32", action="store_true", help="run the UNet in float32 (default: bf16 autocast on CUDA)")


def _scoring_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--classifier", required=True, help="weights from train-classifier")
    parser.add_argument("--reference-cache", default=None, help="cached real statistics (default CLASSIFIER.ref.safetensors)")
    parser.add_argument("--json", default=None, help="also write the result here")


def cmd_train_classifier(args) -> int:
    cfg, net, device = _config(ClassifierTrainConfig, args), _config(ClassifierConfig, args), _device(args.device)
    x, y = load_split("train", args.limit, args.data)
    start = time.monotonic()
    model = train_classifier(x, y, cfg, net, device)
    seconds = time.monotonic() - start
    acc = accuracy(model, *load_split("test", args.limit, args.data))
    log.info("test accuracy %.4f after %.0f s on %s", acc, seconds, device)
    save_classifier(args.out, model, {"train": cfg.__dict__, "test_accuracy": acc, "seconds": seconds, "device": str(device)})
    log.info("wrote %s", args.out)
    return 0


def cmd_train_teacher(args) -> int:
    table = read_context(args.context)
    net = _config(TeacherNetConfig, args, context_dim=int(table.shape[2]))
    cfg, device = _config(TeacherTrainConfig, args), _device(args.device)
    x, y = load_split("train", args.limit, args.data)
    log.info("teacher %s, %.1f M parameters, context %s", net, parameter_count(build_unet(net)) / 1e6, tuple(table.shape))
    start = time.monotonic()
    unet, losses = train_teacher(x, y, table, cfg, net, device)
    seconds = time.monotonic() - start
    tail = losses[-min(len(losses), 200):]
    info = {"train": cfg.__dict__, "steps_done": len(losses), "final_loss": sum(tail) / len(tail), "seconds": seconds,
            "device": str(device), "context": args.context if args.context.startswith("random:") else "file"}
    save_teacher(args.out, unet, net, table, info)
    log.info("wrote %s (%d steps, %.0f s, loss %.4f)", args.out, len(losses), seconds, info["final_loss"])
    return 0


def cmd_sample_teacher(args) -> int:
    unet, table, _, _ = load_teacher(args.teacher, _device(args.device))
    labels = class_labels(args.count, empty_row(table))
    start = time.monotonic()
    x = sample_teacher(unet, table, labels, args.steps, args.cfg, args.seed, args.sampler, args.batch, bf16=not args.fp32)
    log.info("%d samples, %d steps, cfg %g in %.1f s", args.count, args.steps, args.cfg, time.monotonic() - start)
    meta = {"teacher": args.teacher, "steps": args.steps, "cfg": args.cfg, "seed": args.seed, "sampler": args.sampler}
    write_labelled(args.out, x, labels, meta)
    log.info("wrote %s", args.out)
    return 0


def cmd_score(args) -> int:
    samples = load_file(args.samples)
    ref, _ = _evaluator(args)
    write_json(args.json, {"samples": args.samples, **score(samples["latents"], samples["labels"], ref)})
    return 0


def cmd_sweep_teacher(args) -> int:
    ref, _ = _evaluator(args)
    unet, table, _, _ = load_teacher(args.teacher, _device(args.device))
    labels = class_labels(args.count, empty_row(table))
    rows = []
    for steps in args.steps:
        for cfg in args.cfg:
            x = sample_teacher(unet, table, labels, steps, cfg, args.seed, args.sampler, args.batch, bf16=not args.fp32, spacing=args.spacing)
            rows.append({"steps": steps, "cfg": cfg, **score(x, labels, ref)})
            log.info("steps %d cfg %g: %s", steps, cfg, json.dumps({k: round(v, 4) for k, v in rows[-1].items()}))
    best = min(rows, key=lambda r: r["fd"])
    write_json(args.json, {"teacher": args.teacher, "sampler": args.sampler, "spacing": args.spacing, "count": args.count, "best": best, "rows": rows})
    return 0


def cmd_export_ldm(args) -> int:
    unet, _, net, _ = load_teacher(args.teacher)
    meta = {"proof_scale.format": "fmnist-teacher-ldm", "proof_scale.unet_config": json.dumps(ldm_unet_config(net))}
    sd = {k: v.contiguous() for k, v in ldm_state_dict(unet).items()}
    atomic_write(args.out, lambda tmp: save_file(sd, tmp, metadata=meta))
    log.info("wrote %s (%d tensors, ldm layout)", args.out, len(sd))
    return 0


COMMANDS = {  # sub-command → handler
    "train-classifier": cmd_train_classifier, "train-teacher": cmd_train_teacher, "sample-teacher": cmd_sample_teacher,
    "score": cmd_score, "sweep-teacher": cmd_sweep_teacher, "export-ldm": cmd_export_ldm,
}

if __name__ == "__main__":
    sys.exit(main())
