#!/bin/bash
# RETIRED (session 25): run 27's A/B from the shipped student answered its question — the LatentLPIPS anchor was worse
# than the MSE one at every selection point (val 9.80-9.89 vs 9.29-9.46, recall 0.545 vs 0.587, held-out MSE doubled);
# docs/benchmarks.md "session 25 run 27". Kept as the record of the plan.
# Plan for the next GPU session (written in session 20, whose device time went to run 19 and issue 20's CALL=1):
# issue 16's next lever on ONE H200 — the shipped recipe (run 17: LSG split kappa1 = kappa2 = 1, kappa4 = 1.5, recall
# anchor 0.25, 1,500 steps from run 10's Diffusion2GAN student; 1.008x the teacher on its three seeds) with the
# anchor's regression as LatentLPIPS instead of MSE. Everything else as run 17/18, so the FDs compare (run 15's
# classifier, run 18's teacher row: no teacher-eval stage). Here first:
#   git show 803a5b5:default_models/proof_scale/fmnist-student.safetensors > /tmp/run10.safetensors
#   bash benchmarks/device/proof_scale_bundle.sh --evaluator benchmarks/results/proof_scale_h200_run15/evaluator \
#     --teacher-row benchmarks/results/proof_scale_h200_run18 --init /tmp/run10.safetensors
#   (the evaluator folder carries the E-LatentLPIPS trunk since run 19, which the LatentLPIPS anchor needs), then
#   bash benchmarks/device/proof_scale_bundle.sh aside benchmarks/results/proof_scale_h200_run20/run.sh
#   device `run` (kind nvidia-h200, carry [".devdata/ps", ".devdata/ps_init"]) with CALL=1, 2, 3 chained within the
#   machine's 30 s idle release; afterwards `proof_scale_bundle.sh restore`.
# Cost: pairs ~204 s (80,000 + 2,000 held out) + ~0.69 s a step with selection every 250 steps (run 18: 0.66 with the MSE
# anchor) + ~20 s per call to start ≈ 1,300 s over three calls.
# Afterwards, here: CPU-score the KEEP halves on the three seeds (benchmarks.score_generator --weights A B --seeds
# 1000000,1000001,1000002 --reference-cache ..., ~9 min a seed) and ship only if below 8.543 on the same seeds
# (tools.ship_proof_scale --student-weights); the scoreboard row via tools.collect_proof_scale.
S='init_from=diffusion2gan:lr=3e-5:lr_warmup=50:steps=1500:batch=256:ema_decay=0.99:anchor=0.25:regression=latentlpips'
export VARIANTS="sid_lsg_teacher_cfg@$S"
case "${CALL:-1}" in
  1) MAXS=540 bash benchmarks/device/proof_scale_run.sh ;;
  2) MAXS=550 SKIP_PIP=1 bash benchmarks/device/proof_scale_run.sh ;;
  3) MAXS=530 MARGIN=40 SKIP_PIP=1 KEEP=${KEEP:?set KEEP to the weights tag each call prints} bash benchmarks/device/proof_scale_run.sh ;;
esac
