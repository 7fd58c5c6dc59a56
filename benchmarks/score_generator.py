"""Score a proof-scale one-step student outside a pipeline work folder: the same one-step sampling, scoring seeds,
labels and metrics as a finished row (proof_scale/distill.py), from weights that came back from the GPU.

  python -m benchmarks.score_generator --weights A.safetensors [B.safetensors ...] | --generator FILE
      --teacher default_models/proof_scale/fmnist-teacher.safetensors --context CTX --classifier CLS --data FM
      [--seeds 1000000,1000001] [--count 10000] [--prediction eps|flow] [--device cpu] [--json OUT]

--weights: the student's diffusers (native) tensors, possibly split over several files (a device call returns files
of ≤ 16 MiB); --generator: a proof-scale generator file (any layout proof_scale.teacher_import reads). The real
statistics are built from the test split (or read from --reference-cache). On the CPU the student runs in float32
(on CUDA under bf16 autocast with an fp32 output layer, as the pipeline scores); the report says which.
"""
from __future__ import annotations

import argparse
import json
import sys

import torch
from safetensors.torch import load_file

from proof_scale.classifier import load_classifier
from proof_scale.common import EVAL_SEEDS
from proof_scale.data import empty_row, load_split
from proof_scale.distill import one_step, sample_one_step
from proof_scale.evaluator import load_or_build_reference, score_seeds
from proof_scale.sampler import class_labels
from proof_scale.teacher import build_unet
from proof_scale.teacher_import import import_teacher, import_unet
from training.core import OneStepSpec
from training.methods.reflow import FLOW_SPEC


def student_from_weights(net, files: list[str]) -> torch.nn.Module:
    """A float32 student of the teacher's architecture `net` from its native tensors, merged over `files` (a device
    call returns them split into files of ≤ 16 MiB)."""
    student = build_unet(net)
    student.load_state_dict({k: v.float() for f in files for k, v in load_file(f).items()})
    return student


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.score_generator", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--weights", nargs="+", help="the student's native tensors (one or several files, merged)")
    src.add_argument("--generator", help="a proof-scale generator file")
    p.add_argument("--teacher", required=True, help="the teacher file (architecture of the student)")
    p.add_argument("--context", required=True, help='.safetensors with "context" [classes + 1, L, D]')
    p.add_argument("--classifier", required=True)
    p.add_argument("--data", required=True, help="folder with the test split's IDX files")
    p.add_argument("--reference-cache", default=None)
    p.add_argument("--seeds", default=",".join(str(s) for s in EVAL_SEEDS[:2]))
    p.add_argument("--count", type=int, default=10000)
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--timestep", type=int, default=625, help="the student's one-step timestep (ε at t, σ·z input)")
    p.add_argument("--prediction", choices=("eps", "flow"), default="eps",
                   help="eps: ε at --timestep; flow: an InstaFlow student, x0 = z + v(z) at the noise end (--timestep ignored)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    device = torch.device(a.device)
    _, net, _ = import_teacher(a.teacher)
    student = import_unet(a.generator)[0] if a.generator else student_from_weights(net, a.weights)
    table = load_file(a.context)["context"].float()
    spec = FLOW_SPEC if a.prediction == "flow" else OneStepSpec("eps", a.timestep, "sigma_z")
    generator = one_step(student.float().to(device), spec)
    classifier, _ = load_classifier(a.classifier, device)
    real, _ = load_split("test", None, a.data)
    reference = load_or_build_reference(a.reference_cache, classifier, real)
    labels = class_labels(a.count, empty_row(table))
    seeds = tuple(int(s) for s in a.seeds.split(","))
    metrics = score_seeds(lambda seed: sample_one_step(generator, table, labels, seed, a.batch), labels, reference, seeds)
    metrics["precision_mode"] = "bf16 autocast, fp32 output layer" if device.type == "cuda" else "float32"
    metrics["command"] = "python -m benchmarks.score_generator " + " ".join(sys.argv[1:] if argv is None else argv)
    print(json.dumps({k: v for k, v in metrics.items() if k != "per_seed"}, indent=1))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(metrics, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
