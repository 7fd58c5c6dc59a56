"""Where a proof-scale one-step student differs from the real images, in terms a trainer setting can act on.

  python -m benchmarks.student_diagnosis --generator NAME=FILE [NAME=FILE ...] [--weights NAME=FILE[,FILE...] ...] \
      --context CTX --classifier CLS --data FM [--count 2000] [--seed 1000000] [--teacher FILE --teacher-count 300] \
      [--timesteps 0,10,25,50,100] [--device cpu|cuda] [--json OUT]

For each student (proof-scale generator files, or with --weights the native tensors a device call brings back, split
over several files, in the --teacher's architecture; ε at t = 625 with σ·z input unless --timestep says otherwise), on
`count` samples of the balanced class prompts, against the whole test split:
- FD split into its mean term ‖μ − μ_r‖² (a systematic shift) and its covariance term (shape and spread), and the
  features' total variance against the real images' (< 1: less diverse);
- per class, the squared distance between the class's mean features and the real class's (which classes are off);
- the radial power spectrum of the images against the real images' (< 1 at high radii: blur).
A second table puts the spectrum beside the noise that the discriminator's re-noising adds at each timestep
(x_t / sqrt(ᾱ_t) = x0 + σ_t·ε, white: σ_t² · H·W per frequency bin of the unnormalised FFT), so one can read at
which of D's timesteps a difference of that size is still visible. With --teacher, the teacher (Euler 50, CFG 1.5, the
same noise seed) is read the same way on its first `teacher-count` prompts — the students' target, not the real images:
its FD at a few hundred samples is biased high, its spectrum and variance are not (3 s a sample on 2 CPU cores).
Each student is then also read against the teacher sample by sample (same noise and prompt: the pairs it was trained
on are made this way): per-sample latent RMSE (mean, median, 90th percentile, and the share of the squared error held by
the worst tenth: 0.1 if the error is spread evenly), how often the classifier names another class, and, in the
classifier's features with each class's mean removed, the student's spread against the teacher's and the slope and
correlation of the student's features on the teacher's — slope ≈ spread < 1 with a high correlation is a shrunken
teacher (the regression's pull to the mean), a low correlation at full spread is a student that goes its own way — and
the systematic offset ‖E[f_student − f_teacher]‖² (unbiased; over all pairs, and the mean over classes of each class's):
comparable to a student's mean term against the real images, it says the student's shift is its own, not its teacher's.
Float32, on the CPU unless --device says otherwise (only the sampling moves: on a GPU the teacher's 10,000 samples
take about a minute instead of eight hours, so its FD terms need no few-hundred-sample bias).
"""
from __future__ import annotations

import argparse
import sys

import torch
from safetensors.torch import load_file

from benchmarks.score_generator import student_from_weights
from onestep.schedule import SD_SCHEDULE
from proof_scale.classifier import load_classifier, predict
from proof_scale.common import write_json
from proof_scale.data import empty_row, load_split
from proof_scale.distill import one_step, sample_one_step
from proof_scale.evaluator import prepare
from proof_scale.metrics import frechet_distance, gaussian_stats
from proof_scale.sampler import class_labels, sample_teacher
from proof_scale.teacher_import import import_teacher, import_unet
from training.core import OneStepSpec


def fd_terms(mu: torch.Tensor, cov: torch.Tensor, mu_r: torch.Tensor, cov_r: torch.Tensor) -> dict[str, float]:
    """{fd, mean_term, cov_term, variance_ratio}: the two terms add up to fd."""
    fd = frechet_distance(mu, cov, mu_r, cov_r)
    mean_term = float(((mu.double() - mu_r.double()) ** 2).sum())
    return {"fd": fd, "mean_term": mean_term, "cov_term": fd - mean_term,
            "variance_ratio": float(torch.trace(cov.double()) / torch.trace(cov_r.double()))}


def radial_power(images: torch.Tensor) -> torch.Tensor:
    """Mean power |FFT|² of images [N, 1, H, H] per integer radius 0..H/2 from the centre of the shifted spectrum."""
    x = images[:, 0].double()
    power = torch.fft.fftshift(torch.fft.fft2(x), dim=(-2, -1)).abs().pow(2).mean(0)
    h = power.shape[-1]
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(h), indexing="ij")
    radius = ((yy - h // 2) ** 2 + (xx - h // 2) ** 2).double().sqrt().round().long()
    return torch.stack([power[radius == r].mean() for r in range(h // 2 + 1)])


def noise_power(timestep: int, pixels: int) -> float:
    """Per-bin power of D's re-noise in x0 units at `timestep`: σ_t² · pixels (white noise, unnormalised FFT)."""
    return SD_SCHEDULE.sigma(timestep) ** 2 * pixels


def per_class_shift(feats: torch.Tensor, labels: torch.Tensor, real_feats: torch.Tensor, real_labels: torch.Tensor) -> list[float]:
    """‖mean features of class c − the real class's‖² for each class present in both."""
    classes = sorted(set(labels.tolist()) & set(real_labels.tolist()))
    return [float(((feats[labels == c].double().mean(0) - real_feats[real_labels == c].double().mean(0)) ** 2).sum()) for c in classes]


def paired(student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor, classifier) -> dict[str, float]:
    """A student's samples against its teacher's for the same noise and prompts (both [N, 1, H, W]): see the docstring."""
    err = (student.double() - teacher.double()).pow(2).flatten(1).mean(1)
    worst = err.sort(descending=True).values[:max(1, len(err) // 10)]
    (fs, ps), (ft, pt) = predict(classifier, prepare(student)), predict(classifier, prepare(teacher))
    fs, ft = fs.double(), ft.double()
    offset = unbiased_sq_mean(fs - ft)
    offsets = [unbiased_sq_mean(fs[labels == c] - ft[labels == c]) for c in labels.unique()]
    for c in labels.unique():  # within-class deviations: what is left once each class's mean is removed
        fs[labels == c] -= fs[labels == c].mean(0)
        ft[labels == c] -= ft[labels == c].mean(0)
    cross, var_s, var_t = float((fs * ft).sum()), float(fs.pow(2).sum()), float(ft.pow(2).sum())
    return {"rmse_mean": float(err.sqrt().mean()), "rmse_median": float(err.sqrt().median()),
            "rmse_p90": float(err.sqrt().quantile(0.9)), "worst_tenth_share": float(worst.sum() / err.sum()),
            "class_disagreement": float((ps != pt).double().mean()), "spread_ratio": var_s / var_t,
            "slope": cross / var_t, "correlation": cross / (var_s * var_t) ** 0.5,
            "offset": offset, "class_offset": sum(offsets) / len(offsets)}


def unbiased_sq_mean(d: torch.Tensor) -> float:
    """‖E d‖² from samples d [n, p] without the ‖mean‖² estimate's bias tr(Cov d)/n: paired differences vary far less
    than the samples themselves, so a class's systematic offset from the teacher is readable from a few dozen pairs."""
    return float(d.mean(0).pow(2).sum() - d.var(0, unbiased=True).sum() / len(d))


def diagnose(images: torch.Tensor, labels: torch.Tensor, classifier, real: dict) -> dict:
    """The three readings of one sample set against `real` ({feats, labels, stats, spectrum})."""
    feats, _ = predict(classifier, prepare(images))
    out = fd_terms(*gaussian_stats(feats), *real["stats"])
    out["class_shift"] = per_class_shift(feats, labels, real["feats"], real["labels"])
    out["spectrum_ratio"] = (radial_power(images.clamp(-1, 1)) / real["spectrum"]).tolist()
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.student_diagnosis", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--generator", nargs="+", default=[], help="NAME=FILE, a proof-scale generator file each")
    p.add_argument("--weights", nargs="+", default=[], help="NAME=FILE[,FILE...], a student's native tensors each (needs --teacher)")
    p.add_argument("--context", required=True, help='.safetensors with "context" [classes + 1, L, D]')
    p.add_argument("--classifier", required=True)
    p.add_argument("--data", required=True, help="folder with the test split's IDX files")
    p.add_argument("--count", type=int, default=2000)
    p.add_argument("--seed", type=int, default=1000000)
    p.add_argument("--batch", type=int, default=500)
    p.add_argument("--timestep", type=int, default=625, help="the students' one-step timestep (ε at t, σ·z input)")
    p.add_argument("--teacher", default=None, help="the proof-scale teacher file: the architecture of --weights, and its samples are read too")
    p.add_argument("--teacher-count", type=int, default=300, help="the teacher's samples to read (0: none)")
    p.add_argument("--timesteps", default="0,10,25,50,100", help="D's timesteps to set the spectrum beside")
    p.add_argument("--device", default="cpu", help="where the students and the teacher sample (float32 either way)")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    if not a.generator + a.weights or (a.weights and not a.teacher):
        p.error("give --generator and/or --weights (with --teacher, whose architecture the weights have)")
    table = load_file(a.context)["context"].float()
    classifier, _ = load_classifier(a.classifier, "cpu")
    real_images, real_labels = load_split("test", None, a.data)
    real_feats, _ = predict(classifier, prepare(real_images))
    real = {"feats": real_feats, "labels": real_labels, "stats": gaussian_stats(real_feats), "spectrum": radial_power(real_images)}
    labels = class_labels(a.count, empty_row(table))
    report = {"command": "python -m benchmarks.student_diagnosis " + " ".join(sys.argv[1:] if argv is None else argv),
              "count": a.count, "seed": a.seed, "real_spectrum": real["spectrum"].tolist(), "students": {}}
    students = [(name, import_unet(path)[0]) for name, _, path in (g.partition("=") for g in a.generator)]
    if a.weights:
        net = import_teacher(a.teacher)[1]
        students += [(name, student_from_weights(net, paths.split(","))) for name, _, paths in (w.partition("=") for w in a.weights)]
    firsts = {}  # each student's first teacher_count samples, read against the teacher's for the same noise
    for name, student in students:
        generator = one_step(student.float().to(a.device), OneStepSpec("eps", a.timestep, "sigma_z"))
        images = sample_one_step(generator, table, labels, a.seed, a.batch, bf16=False)
        report["students"][name] = diagnose(images, labels, classifier, real)
        firsts[name] = images[:a.teacher_count]
    if a.teacher and a.teacher_count > 0:
        teacher, _, _ = import_teacher(a.teacher)
        few = labels[:a.teacher_count]
        images = sample_teacher(teacher.float().to(a.device), table, few, 50, 1.5, seed=a.seed, batch=100 if a.device == "cpu" else a.batch, bf16=False)
        report["students"][f"teacher ({len(few)})"] = diagnose(images, few, classifier, real)
        report["paired"] = {name: paired(firsts[name], images, few, classifier) for name in firsts}
    print(report["command"])
    print("\n| student | FD | mean term | covariance term | feature variance / real's | class shift (classes 0–9) |")
    print("|---|---|---|---|---|---|")
    for name, r in report["students"].items():
        shifts = " ".join(f"{v:.1f}" for v in r["class_shift"])
        print(f"| {name} | {r['fd']:.2f} | {r['mean_term']:.2f} | {r['cov_term']:.2f} | {r['variance_ratio']:.3f} | {shifts} |")
    if report.get("paired"):
        print(f"\n| student against the teacher, same noise ({a.teacher_count}) | latent RMSE mean / median / p90 | worst tenth's "
              "share of the squared error | other class | within-class spread / teacher's | slope | correlation | offset ‖E Δf‖² "
              "(all / per class) |")
        print("|---|---|---|---|---|---|---|---|")
        for name, r in report["paired"].items():
            print(f"| {name} | {r['rmse_mean']:.3f} / {r['rmse_median']:.3f} / {r['rmse_p90']:.3f} | {r['worst_tenth_share']:.2f} | "
                  f"{r['class_disagreement']:.3f} | {r['spread_ratio']:.3f} | {r['slope']:.3f} | {r['correlation']:.3f} | "
                  f"{r['offset']:.2f} / {r['class_offset']:.2f} |")
    radii = range(0, len(real["spectrum"]), 2)
    steps = [int(t) for t in a.timesteps.split(",") if t]
    pixels = real_images.shape[-1] * real_images.shape[-2]
    print("\n| radius | real power | " + " | ".join(f"{n} / real" for n in report["students"]) + " | "
          + " | ".join(f"D's noise at t={t}" for t in steps) + " |")
    print("|" + "---|" * (2 + len(report["students"]) + len(steps)))
    for r in radii:
        cells = [f"{report['students'][n]['spectrum_ratio'][r]:.2f}" for n in report["students"]]
        cells += [f"{noise_power(t, pixels):.1f}" for t in steps]
        print(f"| {r} | {real['spectrum'][r]:.1f} | " + " | ".join(cells) + " |")
    if a.json:
        write_json(a.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
