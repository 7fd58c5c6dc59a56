#!/bin/bash
# SUPERSEDED (session 31): run 32 found a D on real images gives 12.62 in 750 steps (this plan's recipe: 13.30); run 33
# (benchmarks/results/proof_scale_h200_run33/run.sh) is the next issue-14 plan; this long row with d_real=images after it.
# Plan for a later GPU session (written in session 30): issue 14's pure Diffusion2GAN row, run LONG in one-call chunks.
# What the 750-step rows of runs 22/25/26 say, side by side with run 15's 2,500-step row (val FD, 2,000 samples, seed
# 2,000,000; all from run 10's student, 14.12 on 10 k):
#   gan_continued  gan_weight 0.5, D t <= 100          500: 13.98  1000: 13.45  1500: 13.26  2000: 12.99  2500: 12.52 (10 k: 12.46)
#   run 25 MB      gan_weight 0.5 + d_mbstd 4          250: 14.81  500: 13.40  750: 13.47                        (10 k: 13.30)
#   run 26 MB2     gan_weight 2   + d_mbstd 4          250: 14.09  500: 13.64  750: 13.72                        (10 k: 13.66)
# The one row that ran long was still falling ~0.25 per 500 steps at its end; the minibatch-std channel was ahead at
# step 500; raising G's GAN share (MB2, run 22) did not help. So: run 25's MB recipe for as many steps as the budget
# allows (steps=8000, the deadline ends it), one row alone (~0.3 s/step on one H200).
# Chunks that survive a cold machine (session 30: one call = pairs (~275 s) + ~900 steps fits 600 s):
#   every call brings the best weights back (KEEP=gc1277d — the tag is printed at the end of each call; check it);
#   chained calls on a warm machine continue the row (pairs and checkpoint kept in /tmp); if the machine went cold,
#   re-bundle with the last kept halves as the init (below, with --init-weights) and start again: the new row's
#   G starts where the last one was selected (D and the optimiser restart: the d_lead of 200 steps is paid again).
# Here first:
#   git show 803a5b5:default_models/proof_scale/fmnist-student.safetensors > /tmp/run10.safetensors
#   bash benchmarks/device/proof_scale_bundle.sh --evaluator benchmarks/results/proof_scale_h200_run15/evaluator \
#     --teacher-row benchmarks/results/proof_scale_h200_run28 --init /tmp/run10.safetensors
#   (after a cold machine, instead of --init: --init-weights "<dir>/best_<tag>_a.safetensors <dir>/best_<tag>_b.safetensors"
#    --init-selection <the row's selection.json from records.tgz> --init-plan <its plan.json>)
#   bash benchmarks/device/proof_scale_bundle.sh aside benchmarks/results/proof_scale_h200_run31/run.sh
# carry [".devdata/ps", ".devdata/ps_init"]; CALL=1 (MAXS=572 MARGIN=25), then CALL=2 (MAXS=575 MARGIN=25) as long as
# the budget lasts; afterwards proof_scale_bundle.sh restore. Copy each call's best_*.safetensors out of /work/.device
# at once (.devdata/run31_kept/). Ship by tools.ship_proof_scale only if a row beats 12.46 on 10 k samples.
G='regression=latentlpips:lr_warmup=100:gan_warmup=200:d_lead=200:gan_ramp=300:lr_d_ratio=5:mix_and_match=false:lr_d_schedule=constant:d_beta2=0.99'
export VARIANTS="diffusion2gan@init_from=diffusion2gan:$G:lr=3e-5:lr_decay=constant:steps=8000:batch=512:r1_gamma=0:gan_weight=0.5:d_t_max=100:d_mbstd=4"
case "${CALL:-1}" in
  1) MAXS=${MAXS:-572} MARGIN=${MARGIN:-25} KEEP=${KEEP:-gc1277d} bash benchmarks/device/proof_scale_run.sh ;;
  *) MAXS=${MAXS:-575} MARGIN=${MARGIN:-25} SKIP_PIP=1 KEEP=${KEEP:-gc1277d} bash benchmarks/device/proof_scale_run.sh ;;
esac
