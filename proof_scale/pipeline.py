"""The proof-scale benchmark in one command (issue 6): teacher → teacher pairs → one-step students, scored.

  python -m proof_scale.pipeline --work runs/proof_scale --stage STAGE [--context CONTEXT.safetensors] [--tiny]

Stages, in order (`--stage all` runs them all; a comma-separated list runs several):
  classifier      the evaluator's classifier (classifier.py) + the cached real-side statistics; test accuracy
  teacher         the diffusion teacher (teacher.py) on the context table of --context (≤ --teacher-seconds)
  teacher-eval    sweep steps × CFG on --sweep-count samples; the best FD setting re-scored on --eval-count → row `teacher`
  pairs           teacher pairs at that setting in the pack's dataset format (onestep/pairs), --pairs items
  latent-lpips    E-LatentLPIPS weights for the 1×32×32 space: the VGG trunk trained as a Fashion-MNIST classifier
                  on the latents (onestep/latent_lpips/train_trunk.py), uniform heads (no 2AFC data for this space)
  distill-ROW     a one-step generator from the pairs with the Diffusion2GAN trainer (training/session.py), exported
                  as a generator file and scored on --eval-count one-step samples; ROW is one of
                  diffusion2gan (E-LatentLPIPS + conditional diffusion GAN after a regression warm-up),
                  regression_mse, regression_latentlpips (no augmentation ensemble), regression_elatentlpips
  report          benchmarks/results/proof_scale.json + a markdown table with the targets

Every stage skips work whose output exists (its record `<work>/<stage>.json`, written last), writes its files
atomically, and logs its wall time. Training stages (teacher, latent-lpips, distill-*) and the long sampling
stages (teacher-eval, pairs) stop at the --max-seconds deadline of the process; all but the teacher then leave a
resumable state and the process exits with status 3: run the same command again to continue. Status 2: an error.

Full scale on one H100, one call per line (each < 9 min; repeat a call that exits 3), Fashion-MNIST's .gz files
in DATA, the context table [11, 77, 64] from tools/proof_scale_encoder.py in CTX:
  --stage classifier,latent-lpips --data DATA
  --stage teacher --context CTX --data DATA
  --stage teacher-eval --data DATA
  --stage pairs --data DATA
  --stage distill-diffusion2gan --data DATA
  --stage distill-regression_mse,distill-regression_latentlpips --data DATA
  --stage distill-regression_elatentlpips,report --data DATA

The latent space is the benchmark's identity "VAE" (data.py): images padded to 32×32, in [−1, 1]; so the
trainer's UNet adapter uses latent_scale 1 and the E-LatentLPIPS encoder is custom-1 (identity normalisation).
Scoring noise comes from common.EVAL_SEEDS (the teacher is scored on all three, each student on two: the FD range
over them is each row's noise), shared by teacher and students; model selection (the teacher's sweep, the students'
checkpoints) uses VAL_SEED; the pairs use per-item seeds 0..N−1 (then N..N+heldout, held out) with ComfyUI's
per-seed noise, so neither selection nor scoring reuses a training noise. Rows (rows.py) train through the pack's
TrainingSession; distill.py selects, exports and scores them; `distill-ROW@key=value:key=value` runs a variant.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shlex
import sys
import time
from dataclasses import asdict, dataclass, replace

import torch

from onestep import format as gen_format
from onestep.latent_lpips import ELatentLPIPS, get_encoder
from onestep.latent_lpips import weights as lpips_weights
from onestep.latent_lpips.datasets import FASHION_MNIST_DIR
from onestep.latent_lpips.train_trunk import (
    TrunkClassifier,
    TrunkTrainConfig,
    TrunkTrainingStopped,
    to_latent_lpips,
    train_trunk,
)
from onestep.pairs import collect as pair_collect
from onestep.pairs.manifest import Manifest, PairSettings, prompts_hash
from onestep.pairs.shards import file_sha256
from onestep.pairs.validate import validate

from .checkpoint import CheckpointError, digest
from .classifier import (
    ClassifierConfig,
    ClassifierTrainConfig,
    accuracy,
    load_classifier,
    save_classifier,
    train_classifier,
)
from .cli import read_context
from .common import EVAL_SEEDS, EXIT_INCOMPLETE, LATENT_FORMAT, VAL_SEED, Incomplete, read_json, sync, write_json
from .data import EMPTY_PROMPT_INDEX, PROMPTS, SIZE, load_split
from .distill import stage_distill
from .evaluator import load_or_build_reference, score, score_seeds
from .sampler import (
    class_labels,
    sample_teacher,
    sample_teacher_from_noise,
    seed_noise,
)
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
from .rows import BASE_ROWS, ROW_DEFAULTS, parse_row, parse_settings, row_dir_name
from .teacher_import import import_teacher

log = logging.getLogger("proof_scale")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_RESULTS = os.path.join("benchmarks", "results", "proof_scale.json")
DISTILL_ROWS = tuple(BASE_ROWS)  # the table's distillation rows (rows.py); variants ROW@key=value run as distill-VARIANT
ROWS = ("teacher", *DISTILL_ROWS)
STAGES = ("classifier", "teacher", "teacher-eval", "pairs", "latent-lpips", *(f"distill-{r}" for r in DISTILL_ROWS), "report")
METRICS = ("fd", "precision", "recall", "class_acc", "nfe", "seconds")
SCHEDULER = "linspace-999-0"  # proof_scale.sampler.discrete_sigmas: t = round(linspace(999, 0, steps)), then σ=0
DEFAULT_MAX_SECONDS = 510.0  # full scale: each call ends within ~9 min (imports + this + the final save/score)


@dataclass(frozen=True)
class Scale:
    """Every size of a pipeline run (FULL: the H100 benchmark; TINY: a CPU smoke run of the same code)."""

    train_limit: int | None  # Fashion-MNIST train images used (None: all 60k)
    test_limit: int | None  # test images of the real side of the metrics (None: all 10k)
    classifier_net: ClassifierConfig
    classifier_train: ClassifierTrainConfig
    teacher_net: TeacherNetConfig  # context_dim is taken from the context table
    teacher_train: TeacherTrainConfig  # max_seconds: the teacher's own time cap
    sweep_steps: tuple[int, ...]  # teacher sampling steps tried
    sweep_cfg: tuple[float, ...]  # CFG scales tried
    sweep_count: int  # samples per sweep point
    eval_count: int  # samples of every scored row
    sample_batch: int  # prompts per sampling call (CFG doubles the UNet batch)
    pairs: int  # teacher pairs collected
    pairs_batch: int  # items per teacher call while collecting
    pairs_shard: int  # items per shard file
    heldout: int  # teacher pairs of the seeds after the training pairs', kept out of training (over-fitting check)
    trunk: TrunkTrainConfig  # E-LatentLPIPS trunk (classifier) training
    row: dict  # every distillation row's plan before its own settings (rows.PLAN_TYPES: steps, batch, lr, GAN, ...)
    teacher_seeds: int  # scoring noise streams of the teacher row (its FD spread); at most len(EVAL_SEEDS)
    row_seeds: int  # scoring noise streams of each distillation row
    val_count: int  # one-step samples of each model-selection point (validation noise)
    select_every: int  # steps between model-selection points (0: none; the final EMA is scored)
    save_every: int  # trainer checkpoints (besides the end and a deadline stop)
    log_every: int  # progress lines of the distillation


FULL = Scale(
    train_limit=None, test_limit=None,
    classifier_net=ClassifierConfig(), classifier_train=ClassifierTrainConfig(),
    teacher_net=TeacherNetConfig(), teacher_train=TeacherTrainConfig(max_seconds=450.0),
    sweep_steps=(10, 25, 50), sweep_cfg=(1.0, 1.5, 2.0, 3.0), sweep_count=2000, eval_count=10000, sample_batch=2000,
    pairs=200000, pairs_batch=2000, pairs_shard=10000, heldout=2000,
    trunk=TrunkTrainConfig(steps=3000, batch=256, lr=1e-3, weight_decay=1e-4, width=0.25, log_every=250, checkpoint_every=500, augment="bg"),
    row=ROW_DEFAULTS, teacher_seeds=3, row_seeds=2, val_count=2000, select_every=500, save_every=1000, log_every=200,
)
TINY = Scale(
    train_limit=256, test_limit=100,
    classifier_net=ClassifierConfig(width=4, feature_dim=16), classifier_train=ClassifierTrainConfig(steps=20, batch=16, warmup=5, log_every=10),
    teacher_net=TeacherNetConfig(block_out_channels=(32, 32), attention=(False, True), layers_per_block=1, heads=2, context_dim=16),
    teacher_train=TeacherTrainConfig(steps=6, batch=4, warmup=2, log_every=3),
    sweep_steps=(1, 2), sweep_cfg=(1.0, 2.0), sweep_count=12, eval_count=20, sample_batch=10,
    pairs=16, pairs_batch=4, pairs_shard=8, heldout=8,
    trunk=TrunkTrainConfig(steps=4, batch=8, width=1 / 16, log_every=2, checkpoint_every=2, augment="bg"),
    row={**ROW_DEFAULTS, "steps": 3, "batch": 4, "lr_warmup": 1, "gan_warmup": 1, "ema_decay": 0.9, "r1_every": 2},
    teacher_seeds=3, row_seeds=2, val_count=12, select_every=2, save_every=0, log_every=1,
)
TINY_CONTEXT = (4, 16)  # random context table [11, 4, 16] for --tiny


class _OutOfTime(Exception):
    pass


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (torch {torch.__version__})"
    return f"cpu (torch {torch.__version__}, {torch.get_num_threads()} threads)"


class Run:
    """One invocation: arguments, scale, paths, device and the deadline."""

    def __init__(self, args: argparse.Namespace, argv: list[str]):
        self.args = args
        self.start = time.monotonic()
        limit = args.max_seconds if args.max_seconds is not None else (0.0 if args.tiny else DEFAULT_MAX_SECONDS)
        self.deadline = self.start + limit if limit > 0 else math.inf
        if args.deadline_unix is not None:  # an absolute deadline (proof_scale.parallel): this process's imports count too
            self.deadline = min(self.deadline, self.start + args.deadline_unix - time.time())
        self.device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.work = args.work
        self.data = args.data
        self.command = args.label or "python -m proof_scale.pipeline " + " ".join(shlex.quote(a) for a in argv)
        s = TINY if args.tiny else FULL
        over = {k: getattr(args, k) for k in ("pairs", "sweep_count", "eval_count", "teacher_seeds", "row_seeds") if getattr(args, k) is not None}
        if args.sweep_steps:
            over["sweep_steps"] = tuple(args.sweep_steps)
        if args.sweep_cfg:
            over["sweep_cfg"] = tuple(args.sweep_cfg)
        row = {**s.row, **parse_settings(args.row_set or ""), **{k: v for k, v in (("steps", args.distill_steps), ("batch", args.distill_batch), ("lr", args.lr),
                                               ("gan_warmup", args.gan_warmup)) if v is not None}}
        tt = s.teacher_train
        if args.teacher_steps is not None:
            tt = replace(tt, steps=args.teacher_steps)
        if args.teacher_seconds is not None:
            tt = replace(tt, max_seconds=args.teacher_seconds)
        self.scale = replace(s, teacher_train=tt, row=row, **over)
        self.results = args.results or (os.path.join(self.work, "proof_scale.json") if args.tiny else os.path.join(REPO, DEFAULT_RESULTS))

    def path(self, *parts: str) -> str:
        return os.path.join(self.work, *parts)

    def row_defaults(self) -> dict:
        """The plan every distillation row starts from (rows.plan)."""
        return dict(self.scale.row)

    def left(self) -> float:
        """Seconds to the deadline."""
        return self.deadline - time.monotonic()

    def record(self, path: str, obj: dict, stage_start: float) -> dict:
        obj = {**obj, "command": self.command, "device": _device_name(self.device), "stage_seconds": time.monotonic() - stage_start}
        write_json(path, obj)
        return obj

    # shared inputs of several stages
    def reference(self):
        classifier, _ = load_classifier(self.path("classifier.safetensors"), self.device)
        real, _ = load_split("test", self.scale.test_limit, self.data)
        return load_or_build_reference(self.path("classifier.ref.safetensors"), classifier, real)

    def require(self, stage: str, record: str) -> dict:
        path = self.path(record)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"stage {stage!r} has not finished ({record} is missing in {self.work}): run --stage {stage} first")
        return read_json(path)


# -- stages -------------------------------------------------------------------------------------------------
def stage_classifier(run: Run) -> dict:
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
        model = train_classifier(x, y, s.classifier_train, s.classifier_net, run.device)
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


def stage_teacher(run: Run) -> dict:
    s, t0 = run.scale, time.monotonic()
    if run.args.tiny:
        table, source = random_context_table(*TINY_CONTEXT), f"random:{TINY_CONTEXT[0]}:{TINY_CONTEXT[1]} (--tiny)"
    elif run.args.context:
        table, source = read_context(run.args.context), run.args.context
    else:
        raise ValueError("the teacher stage needs --context FILE (.safetensors with 'context' [11, L, D]: the ten class prompts, then the empty prompt)")
    out = run.path("teacher.safetensors")
    if os.path.isfile(out):
        unet, _, net, info = load_teacher(out)
    elif run.args.teacher_import:  # a teacher trained before (e.g. the shipped one): the rows distill exactly it
        unet, net, meta = import_teacher(run.args.teacher_import)
        if net.context_dim != table.shape[2]:
            raise ValueError(f"{run.args.teacher_import} takes text of width {net.context_dim}, the context table has {table.shape[2]}")
        info = {"imported_from": os.path.basename(run.args.teacher_import), "imported_sha256": file_sha256(run.args.teacher_import),
                "steps_done": meta.training_steps, "teacher_train": meta.notes.get("teacher_train"), "seconds": 0.0,
                "device": str(run.device), "context": source, "context_sha256": digest({"context": table})}
        save_teacher(out, unet, net, table, info)
        log.info("teacher: imported %s (%d training steps) → %s", run.args.teacher_import, meta.training_steps, out)
    else:
        net = replace(s.teacher_net, context_dim=int(table.shape[2]))
        cap = s.teacher_train.max_seconds if s.teacher_train.max_seconds > 0 else math.inf
        cap = min(cap, max(1.0, run.left() - 30.0))  # leave time to save
        cfg = replace(s.teacher_train, max_seconds=0.0 if math.isinf(cap) else cap)
        x, y = load_split("train", s.train_limit, run.data)
        log.info("teacher: %s, %.2f M parameters, context %s from %s; up to %d steps at batch %d, max %s s",
                 net, parameter_count(build_unet(net)) / 1e6, tuple(table.shape), source, cfg.steps, cfg.batch, f"{cfg.max_seconds:.0f}" if cfg.max_seconds else "∞")
        start = time.monotonic()
        unet, losses = train_teacher(x, y, table, cfg, net, run.device)
        sync(run.device)
        seconds = time.monotonic() - start
        tail = losses[-min(len(losses), 200):]
        info = {"train": asdict(cfg), "steps_done": len(losses), "final_loss": sum(tail) / len(tail), "seconds": seconds,
                "device": str(run.device), "context": source, "context_sha256": digest({"context": table})}
        save_teacher(out, unet, net, table, info)
        log.info("teacher: %d steps in %.0f s, final loss %.4f → %s", len(losses), seconds, info["final_loss"], out)
    comfy_file = export_teacher_generator(run, unet.cpu(), net, info)
    return run.record(run.path("teacher.json"), {"net": asdict(net), "parameters": parameter_count(build_unet(net)), **info,
                                                 "generator_file": comfy_file}, t0)


def export_teacher_generator(run: Run, unet: torch.nn.Module, net: TeacherNetConfig, info: dict) -> str | None:
    """The teacher also as a generator-format file (method "teacher": core's plain multi-step ε sampling), the form
    ComfyUI's proof-scale model set loads; None where this checkout's generator format has no teacher method."""
    if "teacher" not in gen_format.METHODS:
        log.info("teacher: the generator format here has no 'teacher' method; not writing a ComfyUI teacher file")
        return None
    path = run.path("generators", "teacher.safetensors")
    meta = gen_format.GeneratorMetadata(
        method="teacher", base="custom", prediction="eps", timestep=999, input_convention="sigma_z", latent_format=LATENT_FORMAT,
        latent_channels=1, training_steps=int(info.get("steps_done", 0)), source="proof_scale.pipeline teacher",
        unet_config=ldm_unet_config(net), notes={"teacher_train": info.get("train", {}), "context": info.get("context")},
    )
    gen_format.save_generator(path, ldm_state_dict(unet), meta)
    return path


def stage_teacher_eval(run: Run) -> dict:
    s, t0 = run.scale, time.monotonic()
    run.require("teacher", "teacher.json")
    ref = run.reference()
    unet, table, _, _ = load_teacher(run.path("teacher.safetensors"), run.device)
    partial_path = run.path("teacher_eval.partial.json")
    partial = read_json(partial_path) if os.path.isfile(partial_path) else {"rows": []}
    rows = partial["rows"]
    labels = class_labels(s.sweep_count)
    nfe = lambda steps, cfg: steps * (2 if cfg != 1.0 else 1)

    def predicted(count: int, steps: int, cfg: float) -> float:
        """Seconds to sample `count` at this setting, from the sweep points measured so far (0 before the first)."""
        work = sum(r["count"] * nfe(r["steps"], r["cfg"]) for r in rows)
        return sum(r["sample_seconds"] for r in rows) / work * count * nfe(steps, cfg) if work else 0.0

    for steps in s.sweep_steps:
        for cfg in s.sweep_cfg:
            if any(r["steps"] == steps and r["cfg"] == cfg and r["count"] == s.sweep_count for r in rows):
                continue
            if run.left() < 1.2 * predicted(s.sweep_count, steps, cfg) or run.left() <= 0:
                raise Incomplete(f"teacher-eval: deadline reached after {len(rows)} sweep points (kept in {partial_path})")
            start = time.monotonic()
            x = sample_teacher(unet, table, labels, steps, cfg, VAL_SEED, "euler", s.sample_batch)  # never the scoring noise
            rows.append({"steps": steps, "cfg": cfg, "count": s.sweep_count, "sample_seconds": time.monotonic() - start, **score(x, labels, ref)})
            write_json(partial_path, partial)
            r = rows[-1]
            log.info("teacher-eval: steps %d cfg %g: fd %.4f precision %.3f recall %.3f class_acc %.4f (%.1f s)",
                     steps, cfg, r["fd"], r["precision"], r["recall"], r["class_acc"], r["sample_seconds"])
    sweep = [r for r in rows if r["steps"] in s.sweep_steps and r["cfg"] in s.sweep_cfg and r["count"] == s.sweep_count]
    best = min(sweep, key=lambda r: r["fd"])
    log.info("teacher-eval: best of the sweep: %d steps, CFG %g (fd %.4f on %d samples); scoring %d samples", best["steps"], best["cfg"], best["fd"], s.sweep_count, s.eval_count)
    seeds = EVAL_SEEDS[: s.teacher_seeds]
    if run.left() < 1.2 * predicted(len(seeds) * s.eval_count, best["steps"], best["cfg"]) + 10:
        raise Incomplete(f"teacher-eval: sweep done, but too little time left for {len(seeds)} × {s.eval_count} samples of the best setting")
    labels = class_labels(s.eval_count)
    sample = lambda seed: sample_teacher(unet, table, labels, best["steps"], best["cfg"], seed, "euler", s.sample_batch)
    row = {**score_seeds(sample, labels, ref, seeds), "nfe": best["steps"] * (2 if best["cfg"] != 1.0 else 1)}
    log.info("teacher-eval: row teacher %s", json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}))
    return run.record(run.path("teacher_eval.json"), {
        "row": row, "steps": best["steps"], "cfg": best["cfg"], "sampler": "euler", "scheduler": SCHEDULER, "count": s.eval_count,
        "batch": s.sample_batch, "seeds": list(seeds), "sweep_seed": VAL_SEED, "sweep": sweep,
    }, t0)


class ProofScaleTeacher:
    """onestep.pairs.collect's Teacher over proof_scale's sampler: per-seed noise as ComfyUI makes it, the context
    table's rows as conditioning (prompt i → row i, the negative/empty prompt → row 10), teacher latents = samples."""

    def __init__(self, unet: torch.nn.Module, table: torch.Tensor, steps: int, cfg: float, sampler: str = "euler", batch: int = 1000):
        self.unet, self.table, self.steps, self.cfg, self.sampler, self.batch = unet, table, steps, cfg, sampler, batch

    def noise(self, seed: int) -> torch.Tensor:
        return seed_noise(seed)

    def conditioning(self, prompt_index: int) -> dict[str, torch.Tensor]:
        row = EMPTY_PROMPT_INDEX if prompt_index < 0 else prompt_index
        return {"cond": self.table[row][None].float().cpu()}

    def sample(self, noise: torch.Tensor, prompt_indices: list[int], hint_indices: list[int] | None) -> torch.Tensor:
        labels = torch.tensor(prompt_indices, dtype=torch.long)
        return sample_teacher_from_noise(self.unet, self.table, noise, labels, self.steps, self.cfg, self.sampler, self.batch)


def _pair_devices(run: Run) -> list[torch.device]:
    """The devices the pairs stage collects on, one process each (ranks take shards k ≡ r mod N): every visible GPU
    by default; --pairs-devices N caps that (on the CPU it runs N processes, which tests the multi-rank path)."""
    n = run.args.pairs_devices
    if run.device.type != "cuda":
        return [run.device] * max(1, n or 1)
    n = torch.cuda.device_count() if n is None else max(1, min(n, torch.cuda.device_count()))
    return [torch.device("cuda", r) for r in range(n)] if n > 1 else [run.device]


def _collect_rank(rank: int, devices: list[str], folder: str, teacher_path: str, settings: PairSettings, batch: int, deadline: float) -> None:
    """One rank of a multi-device pairs collection (a torch.multiprocessing.spawn worker): its shards on devices[rank],
    shard files only (the parent adopts them into the manifest); stops before a shard that would pass the deadline
    (time.monotonic is system-wide, so the parent's deadline holds here)."""
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s [pairs rank {rank}] %(message)s", datefmt="%H:%M:%S", stream=sys.stdout)
    world = len(devices)
    if devices[rank] == "cpu":
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))  # the ranks share the cores
    unet, table, _, _ = load_teacher(teacher_path, torch.device(devices[rank]))
    manifest = Manifest.load(folder)  # made and reconciled by the parent: no reconcile here (it would remove other ranks' temp files)
    last = [time.monotonic()]

    def progress(done: int, total: int, latent: torch.Tensor) -> None:
        if done % settings.shard_size and done != total:
            return
        now, shard_seconds = time.monotonic(), time.monotonic() - last[0]
        last[0] = now
        if done < total and deadline - now < 1.2 * shard_seconds:
            raise _OutOfTime

    try:
        pair_collect.collect(folder, manifest, ProofScaleTeacher(unet, table, settings.steps, settings.cfg, settings.sampler, batch),
                             rank=rank, world=world, progress=progress, write_manifest=False)
    except _OutOfTime:
        log.info("pairs rank %d: deadline reached; the shards written are kept", rank)


def stage_pairs(run: Run) -> dict:
    s, t0 = run.scale, time.monotonic()
    run.require("teacher", "teacher.json")
    ev = run.require("teacher-eval", "teacher_eval.json")
    teacher_path = run.path("teacher.safetensors")
    devices = _pair_devices(run)
    unet, table, _, _ = load_teacher(teacher_path, devices[0])
    prompts = list(PROMPTS)
    settings = PairSettings(
        teacher=file_sha256(teacher_path), latent_format=LATENT_FORMAT, latent_shape=(1, SIZE, SIZE), sampler=ev["sampler"],
        scheduler=SCHEDULER, steps=int(ev["steps"]), cfg=float(ev["cfg"]), negative="", prompts_sha256=prompts_hash(prompts),
        seed_start=0, count=s.pairs, batch_size=s.pairs_batch, shard_size=s.pairs_shard, text_encoder=digest({"context": table.cpu()}),
    )
    folder = run.path("pairs")
    info = {"teacher_name": "proof_scale teacher.safetensors", "made_by": "proof_scale.pipeline",
            "noise": "per seed: torch.manual_seed(seed); torch.randn([1, 1, 32, 32]) (ComfyUI prepare_noise)",
            "conditioning": "row i of the teacher's context table for prompt i; row 10 (the empty prompt) is the negative"}
    manifest = pair_collect.open_dataset(folder, settings, prompts, info)
    timing_path = run.path("pairs_timing.json")
    timing = read_json(timing_path) if os.path.isfile(timing_path) else {"items": 0, "seconds": 0.0}
    todo = sum(len(settings.shard_items(k)) for k in manifest.missing())
    log.info("pairs: %d of %d pairs to make (%d steps, CFG %g, batch %d, %d per shard) on %d device(s)", todo, s.pairs, settings.steps,
             settings.cfg, s.pairs_batch, s.pairs_shard, len(devices))
    start, last = time.monotonic(), [time.monotonic(), 0]
    if len(devices) > 1 and todo:
        del unet
        torch.multiprocessing.spawn(_collect_rank, args=([str(d) for d in devices], folder, teacher_path, settings, s.pairs_batch, run.deadline), nprocs=len(devices))
        manifest = pair_collect.open_dataset(folder, settings, prompts, info)  # adopts the ranks' shards (checked in full)
        manifest.save(folder)
        made = todo - sum(len(settings.shard_items(k)) for k in manifest.missing())
        timing["items"] += made
        timing["seconds"] += time.monotonic() - start
        write_json(timing_path, timing)
        log.info("pairs: %d pairs made by %d processes in %.0f s", made, len(devices), time.monotonic() - start)
        if manifest.missing():
            raise Incomplete(f"pairs: deadline reached with {len(manifest.shards)}/{settings.num_shards} shards written")
    else:
        def progress(done: int, total: int, latent: torch.Tensor) -> None:
            if done % s.pairs_shard and done != total:
                return  # mid-shard: only whole shards count (and only they may be interrupted)
            now = time.monotonic()
            shard_seconds = now - last[0]
            timing["items"] += done - last[1]
            timing["seconds"] += shard_seconds
            last[0], last[1] = now, done
            write_json(timing_path, timing)
            log.info("pairs: %d/%d this run, %.1f pairs/s, %.0f s", done, total, timing["items"] / max(timing["seconds"], 1e-9), now - start)
            if done < total and run.left() < 1.2 * shard_seconds:  # the next shard would not finish in time
                raise _OutOfTime

        try:
            pair_collect.collect(folder, manifest, ProofScaleTeacher(unet, table, settings.steps, settings.cfg, settings.sampler, s.pairs_batch), progress=progress)
        except _OutOfTime:
            raise Incomplete(f"pairs: deadline reached with {len(manifest.shards)}/{settings.num_shards} shards written") from None
    report = validate(folder)
    if not report.ok:
        raise ValueError("the pairs dataset does not validate:\n" + report.text())
    log.info("pairs: %s", report.text().replace("\n", " | "))
    if s.heldout:  # the seeds after the training pairs': never trained on, they show over-fitting (distill.Selection)
        held = replace(settings, seed_start=s.pairs, count=s.heldout, shard_size=s.heldout)
        manifest = pair_collect.open_dataset(run.path("pairs_heldout"), held, prompts, {**info, "held_out": "never trained on"})
        if manifest.missing():
            unet, table, _, _ = load_teacher(teacher_path, devices[0])
            pair_collect.collect(run.path("pairs_heldout"), manifest, ProofScaleTeacher(unet, table, held.steps, held.cfg, held.sampler, s.pairs_batch))
    return run.record(run.path("pairs.json"), {
        "folder": folder, "count": s.pairs, "heldout": s.heldout, "shards": settings.num_shards, "settings": settings.to_json(), "devices": len(devices),
        "collect_seconds": timing["seconds"], "pairs_per_second": timing["items"] / max(timing["seconds"], 1e-9),
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


def stage_latent_lpips(run: Run) -> dict:
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


def _result_path(row: str) -> str:
    return os.path.join("distill", row_dir_name(row), "result.json")


def stage_report(run: Run) -> dict:
    t0 = time.monotonic()
    records = {
        "classifier": run.require("classifier", "classifier.json"), "teacher": run.require("teacher", "teacher.json"),
        "teacher-eval": run.require("teacher-eval", "teacher_eval.json"), "pairs": run.require("pairs", "pairs.json"),
        "latent-lpips": run.require("latent-lpips", "latent_lpips.json"),
    }
    rows = {"teacher": records["teacher-eval"]["row"]}
    variants = sorted(r for r in (run.args.variants or []) if r not in DISTILL_ROWS)
    for r in (*DISTILL_ROWS, *variants):
        records[f"distill-{r}"] = rec = run.require(f"distill-{r}", _result_path(r))
        rows[r] = {**rec["row"], "plan": rec["plan"]}
    for name, row in rows.items():
        bad = [k for k in METRICS if not isinstance(row.get(k), (int, float)) or not math.isfinite(row[k])]
        if bad:
            raise ValueError(f"row {name} has missing or non-finite {bad}")
    plans = {r: records[f"distill-{r}"]["plan"] for r in DISTILL_ROWS}
    shared = ("steps", "batch", "lr", "ema_decay", "lr_warmup", "lr_decay", "timestep", "seed")
    mismatch = sorted({k for k in shared for p in plans.values() if p[k] != plans["diffusion2gan"][k]})
    meta = {
        "device": records["distill-diffusion2gan"]["device"], "torch": torch.__version__, "plan": plans["diffusion2gan"],
        "same_settings_all_rows": not mismatch,
        "pairs": records["pairs"]["count"], "heldout_pairs": records["pairs"].get("heldout", 0), "pairs_per_second": records["pairs"]["pairs_per_second"],
        "teacher_sampling": {k: records["teacher-eval"][k] for k in ("steps", "cfg", "sampler", "scheduler")},
        "teacher_train": {k: records["teacher"].get(k) for k in ("steps_done", "seconds", "final_loss", "parameters", "context", "imported_from")},
        "teacher_sweep": records["teacher-eval"]["sweep"], "sweep_seed": VAL_SEED,
        "classifier_test_accuracy": records["classifier"]["test_accuracy"],
        "latent_lpips": {"heads": records["latent-lpips"]["info"].get("heads"), "width": records["latent-lpips"]["trunk"]["width"],
                         "augment": records["latent-lpips"]["trunk"].get("augment", "")},
        "eval_count": records["teacher-eval"]["count"], "eval_seeds": list(EVAL_SEEDS), "tiny": bool(run.args.tiny),
        "commands": {k: v["command"] for k, v in records.items()} | {"report": run.command},
        "stage_seconds": {k: v.get("stage_seconds") for k, v in records.items()},
    }
    if mismatch:
        log.warning("report: the distillation rows differ in %s — the ablation is not like for like", mismatch)
    keep = (*METRICS, "fd_seeds", "fd_spread", "training_samples", "train_seconds", "selected_step", "steps")
    out = {name: {k: row[k] for k in keep if k in row} for name, row in rows.items() if name in ROWS}
    out["variants"] = {name: {**{k: rows[name][k] for k in keep if k in rows[name]}, "plan": rows[name]["plan"]} for name in variants}
    out["meta"] = meta
    write_json(run.results, out)
    text = markdown(out)
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
    log.info("report: wrote %s", run.results)
    return {"results": run.results, "stage_seconds": time.monotonic() - t0}


def _fd(r: dict) -> str:
    seeds = r.get("fd_seeds") or [r["fd"]]
    return f"{r['fd']:.2f} ({min(seeds):.2f}–{max(seeds):.2f})" if len(seeds) > 1 else f"{r['fd']:.2f}"


def markdown(result: dict) -> str:
    """The results table (FD: mean over the scoring seeds, their range in brackets), the targets and the commands."""
    t = result["teacher"]
    lines = ["| row | FD (range over seeds) | FD / teacher | precision | recall | class acc | NFE | training samples | GPU s (training) |",
             "|---|---|---|---|---|---|---|---|---|"]
    named = [(n, result[n]) for n in ROWS] + list(result.get("variants", {}).items())
    for name, r in named:
        samples = f"{r['training_samples'] / 1e6:.2f} M" if "training_samples" in r else "—"
        gpu = f"{r['train_seconds']:.0f}" if "train_seconds" in r else "—"
        lines.append(f"| {name} | {_fd(r)} | {r['fd'] / t['fd'] if t['fd'] > 0 else float('nan'):.2f} | {r['precision']:.3f} | "
                     f"{r['recall']:.3f} | {r['class_acc']:.4f} | {r['nfe']} | {samples} | {gpu} |")
    d = result["diffusion2gan"]
    ratio = d["fd"] / t["fd"] if t["fd"] > 0 else float("inf")
    acc_gap = (d["class_acc"] - t["class_acc"]) * 100
    rec = d["recall"] / t["recall"] if t["recall"] > 0 else 0.0
    order = [result[r]["fd"] for r in ("regression_mse", "regression_latentlpips", "regression_elatentlpips", "diffusion2gan")]
    ok = lambda b: "**met**" if b else "**missed**"
    m = result["meta"]
    p = m["plan"]
    lines += [
        "",
        (f"Targets: diffusion2gan FD ≤ 1.10 × teacher: {ratio:.2f}× → {ok(ratio <= 1.10)}; class accuracy within 2 points: "
         f"{acc_gap:+.2f} points → {ok(abs(acc_gap) <= 2.0)}; recall ≥ 0.8 × teacher: {rec:.2f}× → {ok(rec >= 0.8)}; "
         f"order mse > latentlpips > elatentlpips > diffusion2gan in FD: {' > '.join(f'{v:.2f}' for v in order)} → "
         f"{ok(all(a > b for a, b in zip(order, order[1:])))}."),
        "",
        (f"Device: {m['device']}. Teacher: {m['teacher_sampling']['steps']} euler steps, CFG {m['teacher_sampling']['cfg']:g} (FD range over "
         f"{len(t.get('fd_seeds', [0]))} scoring seeds: {t.get('fd_spread', 0):.2f}). Students: up to {p['steps']} steps at batch {p['batch']}, "
         f"lr {p['lr']:g} (warm-up {p['lr_warmup']}, {p['lr_decay']}), EMA {p['ema_decay']}, ε at t={p['timestep']}; the EMA weights with the "
         f"best validation FD (noise seed {m['sweep_seed']}) are scored; {m['pairs']} teacher pairs (+{m['heldout_pairs']} held out); "
         f"{m['eval_count']} samples per scoring seed {m['eval_seeds']}."),
        "",
        "Commands:",
        *[f"    {c}" for c in dict.fromkeys(m["commands"].values())],  # each distinct command once, in stage order
    ]
    return "\n".join(lines)


def run_stage(run: Run, stage: str) -> None:
    t0 = time.monotonic()
    records = {"classifier": "classifier.json", "teacher": "teacher.json", "teacher-eval": "teacher_eval.json", "pairs": "pairs.json",
               "latent-lpips": "latent_lpips.json"}
    record = _result_path(stage[len("distill-"):]) if stage.startswith("distill-") else records.get(stage)
    if record and os.path.isfile(run.path(record)):
        log.info("=== stage %s: already done (%s), skipped", stage, run.path(record))
        return
    log.info("=== stage %s", stage)
    handlers = {"classifier": stage_classifier, "teacher": stage_teacher, "teacher-eval": stage_teacher_eval, "pairs": stage_pairs,
                "latent-lpips": stage_latent_lpips, "report": stage_report}
    if stage.startswith("distill-"):
        stage_distill(run, stage[len("distill-"):])
    else:
        handlers[stage](run)
    log.info("=== stage %s done in %.1f s", stage, time.monotonic() - t0)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m proof_scale.pipeline", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", required=True, help="folder of every output (made git-ignored)")
    p.add_argument("--stage", required=True, help=f"all, or one or more (comma-separated) of: {', '.join(STAGES)}")
    p.add_argument("--tiny", action="store_true", help="a CPU smoke run: few hundred images, tiny nets, a few steps")
    p.add_argument("--context", default=None, help='teacher stage: .safetensors with "context" [11, L, D] (or random:L:D[:seed])')
    p.add_argument("--device", default=None, help="cuda, cpu, ... (default: cuda when available)")
    p.add_argument("--data", default=FASHION_MNIST_DIR, help="folder of Fashion-MNIST's four .gz files")
    p.add_argument("--results", default=None, help=f"report output (default {DEFAULT_RESULTS}; with --tiny WORK/proof_scale.json)")
    p.add_argument("--max-seconds", type=float, default=None,
                   help=f"deadline of this process (default {DEFAULT_MAX_SECONDS:g}, none with --tiny; 0: none); stages stop there, resumable (exit 3)")
    p.add_argument("--deadline-unix", type=float, default=None, help="an absolute deadline (seconds since the epoch), besides --max-seconds")
    p.add_argument("--teacher-import", default=None, help="teacher stage: take this trained teacher generator file (method teacher) instead of training one")
    p.add_argument("--teacher-steps", type=int, default=None, help="teacher optimiser steps")
    p.add_argument("--teacher-seconds", type=float, default=None, help="teacher training time cap")
    p.add_argument("--sweep-steps", type=lambda v: [int(x) for x in v.split(",")], default=None, help="teacher steps to try, e.g. 10,25,50")
    p.add_argument("--sweep-cfg", type=lambda v: [float(x) for x in v.split(",")], default=None, help="CFG scales to try, e.g. 1,1.5,2,3")
    p.add_argument("--sweep-count", type=int, default=None, help="samples per sweep point")
    p.add_argument("--eval-count", type=int, default=None, help="samples of each scored row")
    p.add_argument("--pairs", type=int, default=None, help="teacher pairs to collect")
    p.add_argument("--pairs-devices", type=int, default=None, help="GPUs the pairs stage collects on (default: all visible; rank r makes shards k ≡ r mod N)")
    p.add_argument("--label", default=None, help="the command recorded in the stage records (default: this process's own; proof_scale.parallel passes its own)")
    p.add_argument("--distill-steps", type=int, default=None, help="optimiser steps of every distillation row")
    p.add_argument("--distill-batch", type=int, default=None, help="global batch of every distillation row")
    p.add_argument("--lr", type=float, default=None, help="G and D learning rate of every distillation row")
    p.add_argument("--gan-warmup", type=int, default=None, help="diffusion2gan: regression-only steps before the GAN")
    p.add_argument("--teacher-seeds", type=int, default=None, help=f"scoring noise streams of the teacher (default 3, at most {len(EVAL_SEEDS)})")
    p.add_argument("--row-seeds", type=int, default=None, help="scoring noise streams of each distillation row (default 2)")
    p.add_argument("--row-set", default=None, help="settings of every distillation row, as a variant's: key=value:key=value (rows.PLAN_TYPES)")
    p.add_argument("--variants", type=lambda v: [x for x in v.split(";") if x], default=None,
                   help="report: variant rows to list after the table's (';'-separated, e.g. 'diffusion2gan@timestep=625')")
    return p.parse_args(argv)


def _ignore_work(work: str) -> None:
    """Keep the work folder out of git (and so out of what is copied to a device with the working tree)."""
    os.makedirs(work, exist_ok=True)
    path = os.path.join(work, ".gitignore")
    if not os.path.exists(path):
        with open(path, "w") as f:
            f.write("# proof_scale.pipeline outputs\n*\n")


def _is_variant_stage(stage: str) -> bool:
    try:
        return stage.startswith("distill-") and bool(parse_row(stage[len("distill-"):]))
    except ValueError:
        return False


def main(argv: list[str] | None = None) -> int:
    """Entry point; 0 done, 2 error, 3 stopped at the deadline (run the same command again to continue)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S", stream=sys.stdout)
    stages = list(STAGES) if args.stage == "all" else [v.strip() for v in args.stage.split(",") if v.strip()]
    unknown = [v for v in stages if v not in STAGES and not _is_variant_stage(v)]
    if unknown:
        log.error("error: unknown stage(s) %s; stages: all, %s", unknown, ", ".join(STAGES))
        return 2
    run = Run(args, argv)
    _ignore_work(run.work)
    if run.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    log.info("proof_scale.pipeline: %s on %s, work %s%s", ",".join(stages), _device_name(run.device), run.work, " (tiny)" if args.tiny else "")
    try:
        for stage in stages:
            run_stage(run, stage)
    except Incomplete as e:
        log.warning("INCOMPLETE: %s — run the same command again to continue (%.0f s in this process)", e, time.monotonic() - run.start)
        return EXIT_INCOMPLETE
    except (CheckpointError, ValueError, FileNotFoundError, FloatingPointError) as e:
        log.error("error: %s", e)
        return 2
    log.info("proof_scale.pipeline: done in %.1f s", time.monotonic() - run.start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
