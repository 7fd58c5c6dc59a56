#!/bin/bash
# Plan for a later GPU session (written in session 33): issue 14, after run 34's ROW 4 took the Diffusion2GAN row to
# 8.44 = 0.996× the teacher by holding G still while a fresh D led AND capping the adaptive weight at 1 — two changes at
# once. One row per call (40,000 pairs ~150 s + up to 1,000 steps, deadline-ended and scored in the call; KEEP brings the
# selected weights back). Init bundle for ROW 1 and 2 (run 33's second call's weights, K = .devdata/run33_kept/call3):
#   bash benchmarks/device/proof_scale_bundle.sh --train-head 8000 --evaluator benchmarks/results/proof_scale_h200_run15/evaluator \
#     --teacher-row benchmarks/results/proof_scale_h200_run28 --init-weights "K/best_gd5c924_a.safetensors K/best_gd5c924_b.safetensors" \
#     --init-selection benchmarks/results/proof_scale_h200_run33/distill/4ffa46d7f69e/selection.json \
#     --init-plan benchmarks/results/proof_scale_h200_run33/distill/4ffa46d7f69e/plan.json
#   ROW=1  HOLD: run 34's ROW 4 with the cap back at its default 10 — does the hold alone do it?
#   ROW=2  CAP:  run 34's ROW 4 without the hold (G on its regression during D's 100-step lead) — does the cap alone?
#   ROW=3  ON:   run 34's ROW 4 continued once more (init: its kept weights g020034, .devdata/run34_kept/call4, with
#          --init-selection/--init-plan from benchmarks/results/proof_scale_h200_run34/distill/1c7d1c8315b7/) — is 8.44 a floor?
# Then `bash benchmarks/device/proof_scale_bundle.sh aside benchmarks/results/proof_scale_h200_run35/run.sh`, carry
# [".devdata/ps", ".devdata/ps_init"], command `ROW=1 bash benchmarks/results/proof_scale_h200_run35/run.sh`; copy each
# call's files out of /work/.device at once; afterwards proof_scale_bundle.sh restore.
G='regression=latentlpips:lr_warmup=100:gan_warmup=100:d_lead=100:gan_ramp=50:lr_d_ratio=5:mix_and_match=false:lr_d_schedule=constant:d_beta2=0.99'
C="diffusion2gan@init_from=diffusion2gan:$G:lr=3e-5:lr_decay=constant:batch=512:r1_gamma=0:d_t_max=100:d_mbstd=4:d_real=images:z_conditioning=false:gan_weight=1:steps=1000"
case "${ROW:-1}" in
  1) export VARIANTS="$C:hold_g=true" ;;
  2) export VARIANTS="$C:gan_scale_max=1" ;;
  3) export VARIANTS="$C:hold_g=true:gan_scale_max=1" ;;
  *) echo "ROW must be 1, 2 or 3"; exit 2 ;;
esac
export PAIRS=${PAIRS:-40000} SELECT=${SELECT:-200}
FINISH=${FINISH-1} MAXS=${MAXS:-515} MARGIN=${MARGIN:-25} KEEP=${KEEP:-variants} bash benchmarks/device/proof_scale_run.sh
