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
# As run (1,537 s held): side by side each row took ~1,000 ms/step (alone: 440–510), so after call 2 (split+anchor at
# step 776, anchor 0.5 at 637 and behind at both selection points: val 10.50 / 10.49 against 9.55 / 9.69) call 3 ran
# the split+anchor row alone to its end, and brought both rows' selected weights back:
#   VARIANTS='sid_lsg_teacher_cfg@<S>:anchor=0.25' MAXS=530 MARGIN=40 SKIP_PIP=1 KEEP=g62d444,g23028c bash benchmarks/device/proof_scale_run.sh
case "${CALL:-1}" in
  1) MAXS=540 bash benchmarks/device/proof_scale_run.sh ;;
  2) MAXS=550 SKIP_PIP=1 bash benchmarks/device/proof_scale_run.sh ;;
  3) VARIANTS="sid_lsg_teacher_cfg@$S:anchor=0.25" EXTRA="" MAXS=530 MARGIN=40 SKIP_PIP=1 KEEP=g62d444,g23028c bash benchmarks/device/proof_scale_run.sh ;;
esac
