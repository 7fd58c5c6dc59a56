#!/bin/bash
# Plan for the next GPU session (written in session 37): issue 17's second target, InstaFlow one step FD <= 1.30x the
# teacher (8.47), with InstaFlow's optional GAN term (`instaflow@gan=true`, method instaflow-gan) and the Diffusion2GAN
# recipe that took that row to 0.996x (run 34's ROW 4: LatentLPIPS regression kept, D on real training images, its
# heads at t <= 100 with minibatch std, G held still while a fresh D leads 100 steps, adaptive weight capped at 1, R1 off
# so the blocks compile). It starts from run 40's rows, kept in the repository (benchmarks/results/proof_scale_h200_run40/
# kept/, fp16 in three parts under 10 MB each): the 2-RF (12.34 at 4 Euler steps = 1.46x) and InstaFlow's E-LatentLPIPS
# stage from it (one step 18.84 = 2.22x after 1,200 steps at batch 1,024; val FD still falling 19.84 -> 19.04 over the
# last 200 steps). It replaces run 38's plan (never run; removed in session 37, in git history at 6b70b6b).
# One row fits a call (tree ~21 MB + .devdata/ps with the train head ~25.5 MB + a row ~19.8 MB, of 64 MiB), so:
#   CALL=1  carry [".devdata/ps", ".devdata/ps_init_2rf"]: the 2-RF's 80,000 pairs (25 Euler steps, ~150 s), and
#           their FD (proof_scale.score_pairs: what the regression stage learns towards)
#   CALL=2  at once (same warm machine: pairs_2rf stays in the work folder), carry [".devdata/ps", ".devdata/ps_init"]:
#           the GAN stage from InstaFlow's kept weights at batch 512, eager (~0.33 s a step, run 34's; the GAN row
#           has never run compiled on the GPU, and hold_g's switch of G's gradients would recompile its blocks), lr
#           constant with steps=2000 so the deadline ends it (~1,400 steps), FINISH scores it there; KEEP brings its
#           weights back: `python -m proof_scale.init_row split benchmarks/results/proof_scale_h200_run41/kept --tag TAG
#           --weights /work/.device/N/best_TAG_{a,b}.safetensors` and commit kept/.
# Here first:
#   K=benchmarks/results/proof_scale_h200_run40
#   B="--train-head 8000 --evaluator benchmarks/results/proof_scale_h200_run15/evaluator --teacher-row benchmarks/results/proof_scale_h200_run28"
#   rm -rf .devdata/ps_init_2rf
#   bash benchmarks/device/proof_scale_bundle.sh $B --init-row reflow_2rf --init-result $K/distill/reflow_2rf/result.json \
#     --init-weights "$(ls $K/kept/best_reflow_2rf_*.safetensors | tr '\n' ' ')" && mv .devdata/ps_init .devdata/ps_init_2rf
#   bash benchmarks/device/proof_scale_bundle.sh $B --init-row instaflow --init-result $K/distill/instaflow/result.json \
#     --init-weights "$(ls $K/kept/best_instaflow_*.safetensors | tr '\n' ' ')"
#   bash benchmarks/device/proof_scale_bundle.sh aside benchmarks/results/proof_scale_h200_run41/run.sh
# commands `CALL=1 bash benchmarks/results/proof_scale_h200_run41/run.sh`, then at once `CALL=2 ...`; restore after.
G='init_from=instaflow:gan=true:regression=latentlpips:lr=3e-5:lr_decay=constant:batch=512:steps=2000:r1_gamma=0'
G="$G:d_t_max=100:d_mbstd=4:d_real=images:z_conditioning=false:gan_weight=1:lr_d_ratio=5:mix_and_match=false"
G="$G:lr_d_schedule=constant:d_beta2=0.99:lr_warmup=100:gan_warmup=100:d_lead=100:gan_ramp=50:hold_g=true:gan_scale_max=1"
export VARIANTS="" PAIRS=${PAIRS:-80000} SELECT=${SELECT:-200}
case "${CALL:-1}" in
  1) export EXTRA="--chains pairs-2rf"
     MAXS=${MAXS:-400} MARGIN=${MARGIN:-30} bash benchmarks/device/proof_scale_run.sh
     # what InstaFlow's regression targets score (2 x 10,000 of the 2-RF's 25-step pairs): the floor of a row that only
     # regresses on them
     PYTHONPATH=/tmp/site:$PWD python3 -m proof_scale.score_pairs runs/ps/pairs_2rf --work runs/ps --data .devdata/ps/fm \
       --json "${OUT:-runs/ps}/pairs_2rf_score.json" ;;
  *) export EXTRA="--chains distill-instaflow@$G"
     MAXS=${MAXS:-530} MARGIN=${MARGIN:-30} SKIP_PIP=1 FINISH=1 KEEP=${KEEP:-variants} bash benchmarks/device/proof_scale_run.sh ;;
esac
