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
                  regression_mse, regression_latentlpips (no augmentation ensemble), regression_elatentlpips;
                  or a prompts-only row (not part of `all`; needs no pairs or E-LatentLPIPS): sid_lsg (SiD-LSG at the
                  teacher's CFG), sid_lsg_teacher_cfg (its LSG ablation: guidance in the teacher only)
  report          WORK/proof_scale.json + a markdown table with the targets (with the SiD and flow rows that ran)
Rectified-flow stages (issue 17; proof_scale/flow.py), run by name after the pairs (`all` leaves them out; the report
adds their table when they have finished):
  teacher-steps   the teacher at 1, 2, 4 Euler steps (the few-step baseline)
  distill-reflow_2rf, pairs-2rf, distill-instaflow   reflow → 2-RF pairs → InstaFlow one-step distillation

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
  --stage distill-sid_lsg,distill-sid_lsg_teacher_cfg,report --data DATA   (SiD-LSG: class prompts only, no pairs)

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
import logging
import math
import os
import shlex
import sys
import time
from dataclasses import dataclass, replace

import torch

from onestep import compile_cache
from onestep.latent_lpips.datasets import FASHION_MNIST_DIR
from onestep.latent_lpips.train_trunk import TrunkTrainConfig

from .checkpoint import CheckpointError
from .classifier import ClassifierConfig, ClassifierTrainConfig
from .common import EVAL_SEEDS, EXIT_INCOMPLETE, METRICS, Incomplete, read_json, write_json
from .distill import stage_distill
from .evaluator import work_reference
from .report import markdown, result_path, stage_report
from .rows import DISTILL_ROWS, ROW_DEFAULTS, ROWS, parse_row, parse_settings, parse_speed
from .sampler import SAMPLERS
from .stage_evaluators import stage_classifier, stage_latent_lpips
from .flow import stage_pairs_2rf, stage_teacher_steps
from .stage_pairs import stage_pairs
from .stage_teacher import stage_teacher, stage_teacher_eval
from .teacher import TeacherNetConfig, TeacherTrainConfig

log = logging.getLogger("proof_scale")
__all__ = ["DISTILL_ROWS", "EXIT_INCOMPLETE", "FULL", "METRICS", "ROWS", "STAGES", "TINY", "Run", "Scale", "main", "markdown", "parse_args"]

STAGES = ("classifier", "teacher", "teacher-eval", "pairs", "latent-lpips", *(f"distill-{r}" for r in DISTILL_ROWS), "report")
FLOW_STAGES = ("teacher-steps", "pairs-2rf")  # besides distill-reflow_2rf and distill-instaflow (proof_scale/flow.py)
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
    flow_pairs_steps: int = 25  # Euler steps of the 2-RF's ODE for the InstaFlow pairs (pairs-2rf)
    # The teacher pairs' ODE solver and steps when they should differ from the teacher row's setting ("" / 0: the row's),
    # e.g. Heun at 13 steps (25 UNet calls per sample against Euler's 50); the pairs stage then scores the teacher at it too,
    # and that score is the students' ceiling: run 13 measured Heun-13 at FD 21.9 against Euler-50's 8.6 on this teacher.
    pairs_sampler: str = ""
    pairs_steps: int = 0


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
    teacher_seeds=3, row_seeds=2, val_count=12, select_every=2, save_every=0, log_every=1, flow_pairs_steps=2,
)


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
        over = {k: getattr(args, k) for k in ("pairs", "pairs_batch", "pairs_sampler", "pairs_steps", "heldout", "sweep_count", "eval_count", "teacher_seeds", "row_seeds", "select_every", "val_count", "log_every")
                if getattr(args, k) is not None}
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
        self.speed = parse_speed(args.speed or "")  # speed settings of this call's rows, outside their plans
        self.results = args.results or os.path.join(self.work, "proof_scale.json")  # the repo's scoreboard: tools.collect_proof_scale

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
        return work_reference(self.work, self.data, self.scale.test_limit, self.device)

    def require(self, stage: str, record: str) -> dict:
        path = self.path(record)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"stage {stage!r} has not finished ({record} is missing in {self.work}): run --stage {stage} first")
        return read_json(path)


# -- stages -------------------------------------------------------------------------------------------------
RECORDS = {"classifier": "classifier.json", "teacher": "teacher.json", "teacher-eval": "teacher_eval.json", "pairs": "pairs.json",
           "latent-lpips": "latent_lpips.json", "teacher-steps": "teacher_steps.json", "pairs-2rf": "pairs_2rf.json"}


def stage_record(stage: str) -> str | None:
    """The record a finished stage leaves in the work folder (None: the stage has none, e.g. report)."""
    return result_path(stage[len("distill-"):]) if stage.startswith("distill-") else RECORDS.get(stage)


def stage_finished(work: str, stage: str, teacher_seeds: int) -> bool:
    """Whether run_stage skips `stage`: its record is in `work` (teacher-eval: scored on every one of `teacher_seeds`
    noise seeds; a record with fewer is extended). proof_scale.parallel asks too, to start no child for finished stages."""
    record = stage_record(stage)
    if stage == "teacher-eval":
        path = os.path.join(work, record)
        return os.path.isfile(path) and len(read_json(path).get("seeds", [])) >= teacher_seeds
    return bool(record and os.path.isfile(os.path.join(work, record)))


def teacher_seeds_of(args: argparse.Namespace) -> int:
    """The teacher row's scoring seeds a command asks for (--teacher-seeds, else its scale's)."""
    return args.teacher_seeds if args.teacher_seeds is not None else (TINY if args.tiny else FULL).teacher_seeds


def run_stage(run: Run, stage: str) -> None:
    t0 = time.monotonic()
    if stage_finished(run.work, stage, run.scale.teacher_seeds):
        log.info("=== stage %s: already done (%s), skipped", stage, run.path(stage_record(stage)))
        return
    log.info("=== stage %s", stage)
    handlers = {"classifier": stage_classifier, "teacher": stage_teacher, "teacher-eval": stage_teacher_eval, "pairs": stage_pairs,
                "latent-lpips": stage_latent_lpips, "report": stage_report, "teacher-steps": stage_teacher_steps, "pairs-2rf": stage_pairs_2rf}
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
    p.add_argument("--results", default=None, help="report output (default WORK/proof_scale.json; benchmarks/results/proof_scale.json is the scoreboard tools.collect_proof_scale gathers from the committed run records)")
    p.add_argument("--max-seconds", type=float, default=None,
                   help=f"deadline of this process (default {DEFAULT_MAX_SECONDS:g}, none with --tiny; 0: none); stages stop there, resumable (exit 3)")
    p.add_argument("--deadline-unix", type=float, default=None, help="an absolute deadline (seconds since the epoch), besides --max-seconds")
    p.add_argument("--finish-at-deadline", action="store_true",
                   help="a distillation row the deadline stops is exported and scored as it stands (its best selection point, "
                        "'stopped_at' in its record) instead of left to resume: for one-call device runs on machines that keep nothing")
    p.add_argument("--teacher-import", default=None, help="teacher stage: take this trained teacher generator file (method teacher) instead of training one")
    p.add_argument("--teacher-steps", type=int, default=None, help="teacher optimiser steps")
    p.add_argument("--teacher-seconds", type=float, default=None, help="teacher training time cap")
    p.add_argument("--sweep-steps", type=lambda v: [int(x) for x in v.split(",")], default=None, help="teacher steps to try, e.g. 10,25,50")
    p.add_argument("--sweep-cfg", type=lambda v: [float(x) for x in v.split(",")], default=None, help="CFG scales to try, e.g. 1,1.5,2,3")
    p.add_argument("--sweep-count", type=int, default=None, help="samples per sweep point")
    p.add_argument("--eval-count", type=int, default=None, help="samples of each scored row")
    p.add_argument("--pairs", type=int, default=None, help="teacher pairs to collect")
    p.add_argument("--pairs-batch", type=int, default=None, help="items per teacher call while collecting (memory: ~7 MB each on the CPU)")
    p.add_argument("--pairs-sampler", choices=sorted(SAMPLERS), default=None,
                   help="ODE solver of the teacher pairs (default: the teacher row's; read the teacher's score at it in pairs.json first)")
    p.add_argument("--compile-teacher", choices=("", "default", "max-autotune-no-cudagraphs"), default="",
                   help="teacher sampling (teacher-eval, pairs, teacher-steps) through torch.compile in this mode (default: eager)")
    p.add_argument("--compile-cache", default="",
                   help="folder where the compiled teacher's artifacts persist: loaded before its compile, written when the process ends "
                        "(keyed on the weights' shapes, GPU, torch and mode; carry it into the next device call to skip the compile)")
    p.add_argument("--pairs-steps", type=int, default=None, help="solver steps of the teacher pairs (default: the teacher row's)")
    p.add_argument("--heldout", type=int, default=None, help="held-out teacher pairs (the rows' held-out MSE)")
    p.add_argument("--pairs-devices", type=int, default=None, help="GPUs the pairs stage collects on (default: all visible; rank r makes shards k ≡ r mod N)")
    p.add_argument("--label", default=None, help="the command recorded in the stage records (default: this process's own; proof_scale.parallel passes its own)")
    p.add_argument("--distill-steps", type=int, default=None, help="optimiser steps of every distillation row")
    p.add_argument("--distill-batch", type=int, default=None, help="global batch of every distillation row")
    p.add_argument("--lr", type=float, default=None, help="G and D learning rate of every distillation row")
    p.add_argument("--gan-warmup", type=int, default=None, help="diffusion2gan: regression-only steps before the GAN")
    p.add_argument("--teacher-seeds", type=int, default=None, help=f"scoring noise streams of the teacher (default 3, at most {len(EVAL_SEEDS)})")
    p.add_argument("--row-seeds", type=int, default=None, help="scoring noise streams of each distillation row (default 2)")
    p.add_argument("--select-every", type=int, default=None, help=f"steps between a row's model-selection points (default {FULL.select_every}; 0: none)")
    p.add_argument("--val-count", type=int, default=None, help=f"one-step samples of each selection point (default {FULL.val_count})")
    p.add_argument("--log-every", type=int, default=None, help=f"steps between a row's progress lines (default {FULL.log_every})")
    p.add_argument("--row-set", default=None, help="settings of every distillation row, as a variant's: key=value:key=value (rows.PLAN_TYPES)")
    p.add_argument("--speed", default=None, help="how this call's rows train, not what: compile, compile_mode, cuda_graph, channels_last "
                   "(key=value:...; kept out of the rows' names and plans, so calls that differ in them resume each other's checkpoints)")
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
    unknown = [v for v in stages if v not in STAGES and v not in FLOW_STAGES and not _is_variant_stage(v)]
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
    compile_cache.set_folder(args.compile_cache or None)
    try:
        for stage in stages:
            run_stage(run, stage)
    except Incomplete as e:
        log.warning("INCOMPLETE: %s — run the same command again to continue (%.0f s in this process)", e, time.monotonic() - run.start)
        return EXIT_INCOMPLETE
    except (CheckpointError, ValueError, FileNotFoundError, FloatingPointError) as e:
        log.error("error: %s", e)
        return 2
    finally:
        compile_cache.save_all()  # what this process compiled (the compile is lazy: only now is it known)
    log.info("proof_scale.pipeline: done in %.1f s", time.monotonic() - run.start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
