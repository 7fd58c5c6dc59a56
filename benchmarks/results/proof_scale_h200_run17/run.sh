#!/bin/bash
# Session 17 proof-scale run (issues 14, 16): three device calls on ONE H200 (only that kind was lent), from the committed
# scripts, with run 16's bundle (here: benchmarks/device/proof_scale_bundle.sh --evaluator
# benchmarks/results/proof_scale_h200_run15/evaluator --init <run 10's GAN-stage student>, i.e. .devdata/ps_init = the
# start of runs 15–16's SiD rows and run 15's classifier, so FDs compare); benchmarks/results, tests, web, workflows, docs
# and the shipped student / text encoder moved aside (64 MiB); device `run` (kind nvidia-h200, carry [".whl",
# ".devdata/ps", ".devdata/ps_init"]) with CALL=1, 2, 3 chained within the machine's idle release.
# Both rows side by side on the one GPU (--rows-per-gpu 2), from the run-10 student, run 16's SiD settings otherwise
# (lr 3e-5, warmup 50, batch 256, EMA 0.99) over 1,500 steps (run 16's anchored row peaked at 1,250–1,500 of 2,000):
#   SPLIT_ANCHOR = the LSG split (κ1 = κ2 = 1, κ4 = 1.5) + the recall anchor 0.25 — run 16's two best rows combined
#   ANCHOR_05    = κ 1.5 everywhere + the anchor at 0.5 — does a stronger anchor buy more recall than it costs precision?
S='init_from=diffusion2gan:lr=3e-5:lr_warmup=50:steps=1500:batch=256:ema_decay=0.99:regression=mse'
export VARIANTS="sid_lsg_teacher_cfg@$S:anchor=0.25;sid_lsg@$S:anchor=0.5"
export EXTRA="--rows-per-gpu 2"
case "${CALL:-1}" in
  1) MAXS=540 bash benchmarks/device/proof_scale_run.sh ;;
  2) MAXS=550 SKIP_PIP=1 bash benchmarks/device/proof_scale_run.sh ;;
  3) MAXS=530 MARGIN=40 SKIP_PIP=1 KEEP=${KEEP:-} bash benchmarks/device/proof_scale_run.sh ;;
esac
