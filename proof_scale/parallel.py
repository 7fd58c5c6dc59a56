"""The whole proof-scale benchmark on every GPU of one machine, resumable: `proof_scale.pipeline` stages run as
child processes, independent ones side by side, one GPU each.

  python -m proof_scale.parallel --work runs/proof_scale [--max-seconds S] [--gpus N] [--rows-per-gpu K] [--rows R1,R2|none]
                                 [--chains "S1,S2,...;..."] PIPELINE-OPTIONS...

Phases (each waits for the one before):
  1. teacher on GPU 0  ‖  classifier, latent-lpips (when a row trains with LatentLPIPS) on GPU 1
  2. teacher-eval on GPU 0, then pairs on all GPUs (rank r makes shards k ≡ r mod N; skipped when only data-free
     SiD-LSG rows run)
  3. the distillation rows (and --variants), K side by side on each GPU (a slot with several runs them in turn); each
     --chains entry (stages that depend on each other, e.g. the rectified-flow chain
     teacher-steps,distill-reflow_2rf,pairs-2rf,distill-instaflow) takes a slot like one row and runs in order there
  4. report
With one GPU (or none: --tiny on the CPU) the same stages run one after another, in one child process (two when
several rows share the GPU: the stages before them, then the rows side by side). Every stage skips what is done,
so the command is resumable: when the --max-seconds deadline stops a phase, the children leave resumable state
and this process exits 3 — run the same command again to continue. Children get an absolute deadline MARGIN
seconds before this one (their imports count), so a wrapping `timeout` of --max-seconds + 30 never cuts a save. Exit 2: a child failed (its log says why).
Children's output goes to WORK/logs/<phase>-<slot>.log and, prefixed, to stdout. PIPELINE-OPTIONS (--data,
--context, --teacher-seconds, --distill-steps, ...) go to every child; see `python -m proof_scale.pipeline -h`.
"""
from __future__ import annotations

import argparse
import math
import os
import shlex
import subprocess
import sys
import threading
import time

from .pipeline import DISTILL_ROWS, EXIT_INCOMPLETE, FLOW_STAGES, STAGES, parse_args, stage_finished, teacher_seeds_of
from .rows import ROW_DEFAULTS, data_folder, plan as plan_row

# Seconds a child keeps after its deadline for what follows a stop: the last checkpoint (≈210 MB per distillation row;
# on the lent GPU machines' disk four rows writing at once took 20–30 s), the export and 10k-sample scoring.
MARGIN = 90.0
MIN_WORK = 60.0  # seconds of work a phase must get besides MARGIN to be started at all


def _gpu_count() -> int:
    try:
        import torch
        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:  # noqa: BLE001 (no usable CUDA: run on the CPU)
        return 0


def needs_trunk(items: list[list[str]]) -> bool:
    """Whether any distillation stage among `items` trains with a LatentLPIPS regression (the latent-lpips stage's
    trunk; it needs the training images, so runs without such a row skip it)."""
    return any(plan.get("regression", "mse") != "mse" for plan in _row_plans(items).values())


def needs_pairs(items: list[list[str]]) -> bool:
    """Whether any stage among `items` trains on the teacher pairs: every row but a data-free SiD-LSG row (prompts only,
    no recall anchor) and InstaFlow (the 2-RF's own pairs; the 2-RF, when it is trained in the same run, needs the
    teacher's). A run of data-free rows, or of pairs-2rf + InstaFlow from a carried 2-RF, skips the pairs stage (80,000
    pairs: ~240 s of a 30-minute device session)."""
    return any(data_folder(r, plan) == "pairs" for r, plan in _row_plans(items).items())


def _row_plans(items: list[list[str]]) -> dict[str, dict]:
    """The plans of the distillation stages among `items`, by row (κ's taken at CFG 1: only the settings matter here)."""
    return {x[len("distill-"):]: plan_row(x[len("distill-"):], ROW_DEFAULTS, teacher_cfg=1.0)
            for item in items for x in item if x.startswith("distill-")}


def phases(gpus: int, rows_per_gpu: int = 1, variants: tuple[str, ...] = (), base_rows: tuple[str, ...] = DISTILL_ROWS,
           chains: tuple[tuple[str, ...], ...] = ()) -> list[list[tuple[str | None, list[str]]]]:
    """Per phase, the children as (CUDA_VISIBLE_DEVICES or None, stages). The distillation rows (and variants) run
    rows_per_gpu at a time on each GPU: the small proof-scale models leave one GPU mostly idle with one row. A chain
    (stages in order) is placed like one row. The latent-lpips stage runs only when a row needs it (needs_trunk)."""
    items = [[f"distill-{r}"] for r in (*base_rows, *variants)] + [list(c) for c in chains]
    evaluators = ["classifier", "latent-lpips"] if needs_trunk(items) else ["classifier"]
    pairs = ["pairs"] if needs_pairs(items) else []
    slots = max(1, gpus) * max(1, rows_per_gpu)
    visible = [str(g % gpus) if gpus else None for g in range(slots)]
    per_slot = [(visible[i], [s for item in items[i::slots] for s in item]) for i in range(slots) if items[i::slots]]
    report = set(base_rows) == set(DISTILL_ROWS)  # the report's table needs every base row
    if gpus <= 1:  # one device: the stages before the rows run one after another in one child (a child's start, its
        # imports and CUDA set-up, took ~21 s of each device call per phase); so do the rows when they have one slot
        one = "0" if gpus == 1 else None
        setup = [*evaluators, "teacher", "teacher-eval", *pairs]
        if len(per_slot) == 1:
            return [[(one, [*setup, *per_slot[0][1], *(["report"] if report else [])])]]
        return [[(one, setup)], per_slot] + ([[(one, ["report"])]] if report else [])
    every = ",".join(str(g) for g in range(gpus))
    return [
        [("0", ["teacher"]), ("1", evaluators)],
        [("0", ["teacher-eval"])],
        *([[(every, pairs)]] if pairs else []),
        per_slot,
    ] + ([[("0", ["report"])]] if report else [])


def unfinished(children: list[tuple[str | None, list[str]]], work: str, teacher_seeds: int) -> list[tuple[str | None, list[str]]]:
    """The phase's children with the stages they would skip left out (pipeline.stage_finished), and those left with
    none left out. A stage that was done when the phase began stays done, so nothing a child would run is dropped."""
    left = [(visible, [s for s in stages if not stage_finished(work, s, teacher_seeds)]) for visible, stages in children]
    return [(visible, stages) for visible, stages in left if stages]


def _pump(proc: subprocess.Popen, prefix: str, log_path: str) -> None:
    with open(log_path, "a", encoding="utf-8") as log:
        for line in proc.stdout:
            log.write(line)
            log.flush()
            sys.stdout.write(f"{prefix} {line}")
            sys.stdout.flush()


def run_phase(children: list[tuple[str | None, list[str]]], work: str, base: list[str], left: float, name: str, margin: float = MARGIN) -> list[int]:
    """Start the phase's children, stream their output, return their exit codes."""
    os.makedirs(os.path.join(work, "logs"), exist_ok=True)
    procs = []
    for slot, (visible, stages) in enumerate(children):
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        if visible is not None:
            env["CUDA_VISIBLE_DEVICES"] = visible
        limit = [] if math.isinf(left) else ["--deadline-unix", f"{time.time() + max(1.0, left - margin):.1f}", "--max-seconds", "0"]
        cmd = [sys.executable, "-m", "proof_scale.pipeline", "--work", work, "--stage", ",".join(stages), *limit, *base]
        tag = f"[{name}{'' if visible is None else ' gpu ' + visible}]"
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        thread = threading.Thread(target=_pump, args=(proc, tag, os.path.join(work, "logs", f"{name}-{slot}.log")), daemon=True)
        thread.start()
        procs.append((proc, thread))
    codes = []
    for proc, thread in procs:
        codes.append(proc.wait())
        thread.join()
    return codes


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    p = argparse.ArgumentParser(prog="python -m proof_scale.parallel", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", required=True, help="the pipeline's work folder")
    p.add_argument("--max-seconds", type=float, default=0.0, help="deadline of the whole run (0: none); resumable (exit 3)")
    p.add_argument("--gpus", type=int, default=None, help="GPUs to use (default: all visible; 0: the CPU)")
    p.add_argument("--rows-per-gpu", type=int, default=1, help="distillation rows trained side by side on each GPU")
    p.add_argument("--rows", default=",".join(DISTILL_ROWS),
                   help="comma-separated base distillation rows to run (default: all; 'none': only --variants, e.g. a GAN stage "
                        "started from a finished row)")
    p.add_argument("--chains", default="", help="';'-separated chains of ','-separated pipeline stages, each run in order in one slot "
                                                 "of the distillation phase (e.g. the flow rows: teacher-steps,distill-reflow_2rf,pairs-2rf,distill-instaflow)")
    p.add_argument("--margin", type=float, default=MARGIN, help=f"seconds children stop before the deadline for their last save and scoring (default {MARGIN:g})")
    args, rest = p.parse_known_args(argv)
    bad = [a for a in rest if a in ("--stage", "--label") or a.startswith(("--stage=", "--label="))]
    if bad:
        p.error(f"{bad[0]} is set by proof_scale.parallel itself")
    start = time.monotonic()
    gpus = _gpu_count() if args.gpus is None else args.gpus
    label = "python -m proof_scale.parallel " + " ".join(shlex.quote(a) for a in argv)
    base = [*rest, "--label", label] + (["--device", "cpu"] if gpus == 0 and "--device" not in rest else [])
    variants = ()
    for i, a in enumerate(rest):  # the pipeline's --variants also become distillation stages here
        if a == "--variants" and i + 1 < len(rest):
            variants = tuple(v for v in rest[i + 1].split(";") if v)
    for v in variants:  # before any GPU time goes to the phases that precede them (session 12 lost a call to a ',')
        try:
            plan_row(v, ROW_DEFAULTS, teacher_cfg=1.0)  # only the syntax is checked here: any CFG will do
        except (ValueError, KeyError) as e:
            p.error(f"--variants: {v!r} is not a row variant ({e}); variants are separated by ';'")
    base_rows = () if args.rows == "none" else tuple(r for r in args.rows.split(",") if r)
    unknown = [r for r in base_rows if r not in DISTILL_ROWS]
    if unknown:
        p.error(f"unknown row {unknown[0]!r}; rows: {', '.join(DISTILL_ROWS)}")
    chains = tuple(tuple(x for x in c.split(",") if x) for c in args.chains.split(";") if c.strip(", "))
    known = (*STAGES, *FLOW_STAGES)
    odd = [x for c in chains for x in c if x not in known and not x.startswith("distill-")]
    if odd:
        p.error(f"unknown stage {odd[0]!r} in --chains; stages: {', '.join(known)}, distill-ROW")
    plan = phases(gpus, args.rows_per_gpu, variants, base_rows, chains)
    print(f"proof_scale.parallel: {gpus} GPU(s), {len(plan)} phases, work {args.work}", flush=True)
    seeds = teacher_seeds_of(parse_args(["--work", args.work, "--stage", "all", *base]))
    for i, children in enumerate(plan, 1):
        children = unfinished(children, args.work, seeds)
        if not children:  # every stage of the phase is done: no child (its start, imports and CUDA set-up cost ~20 s)
            print(f"proof_scale.parallel: phase {i}: every stage already done", flush=True)
            continue
        left = start + args.max_seconds - time.monotonic() if args.max_seconds > 0 else math.inf
        if left < args.margin + MIN_WORK:  # too little for the children to do anything but start and stop
            print(f"proof_scale.parallel: INCOMPLETE: {left:.0f} s left before phase {i}; run the same command again", flush=True)
            return EXIT_INCOMPLETE
        t0 = time.monotonic()
        codes = run_phase(children, args.work, base, left, f"phase{i}", args.margin)
        print(f"proof_scale.parallel: phase {i} ({'; '.join(','.join(s) for _, s in children)}) exit {codes} in {time.monotonic() - t0:.0f} s", flush=True)
        if any(c not in (0, EXIT_INCOMPLETE) for c in codes):
            print(f"proof_scale.parallel: error in phase {i}; see {os.path.join(args.work, 'logs')}", flush=True)
            return 2
        if any(c == EXIT_INCOMPLETE for c in codes):
            print("proof_scale.parallel: INCOMPLETE: a stage stopped at the deadline; run the same command again to continue", flush=True)
            return EXIT_INCOMPLETE
    print(f"proof_scale.parallel: done in {time.monotonic() - start:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
