#!/bin/bash
# Plan for a later GPU session (written in session 32): issue 14, after run 33 took the Diffusion2GAN row to 9.58 = 1.11×
# (target ≤ 1.10×) with D on real images at gan_weight 1 — run 10's student + 750 steps (10.62, D alive throughout), then
# 916 more with a fresh D that was fooled by step ~300 (its gain came before that). One row per call, each complete on
# its own (40,000 pairs ~170 s + up to 1,000 steps, deadline-ended; validation every 200 steps; KEEP brings weights back):
#   ROW=1  DG1C2: run 33's continued student (KEEP gd5c924, step 800) run on with ROW 1's D schedule, which kept D alive:
#          D alone for 200 steps while G's lr warms up over the same 200 (G barely moves on regression alone), the GAN
#          ramped in over 300. Init bundle (K: where run 33's second call's files were copied, e.g. .devdata/run33_kept/call3):
#            bash benchmarks/device/proof_scale_bundle.sh --train-head 8000 --evaluator benchmarks/results/proof_scale_h200_run15/evaluator \
#              --teacher-row benchmarks/results/proof_scale_h200_run28 --init-weights "K/best_gd5c924_a.safetensors K/best_gd5c924_b.safetensors" \
#              --init-selection benchmarks/results/proof_scale_h200_run33/distill/4ffa46d7f69e/selection.json \
#              --init-plan benchmarks/results/proof_scale_h200_run33/distill/4ffa46d7f69e/plan.json
#          (if those weights are gone: run 33's ROW 1 and ROW 3 again, two calls, rebuild them)
#   ROW=2  DG1L: run 33's ROW 1 recipe from run 10's student for 1,000 steps — does the 750-step row's fall go on with D
#          alive? Init bundle: run 33's (git show 803a5b5:default_models/proof_scale/fmnist-student.safetensors > /tmp/run10.safetensors;
#          ... --init /tmp/run10.safetensors).
#   ROW=3  DG1C2 with the adaptive weight capped at 1 (gan_scale_max, default 10): in run 33 both of D's collapses (ROW 1
#          near step 700, from which it came back; ROW 3 from ~170 for good) came after D's margin peaked, and as D went
#          flat the weight jumped from ~0.05 to its cap and G took a large step off its pairs (regression 0.06 → 0.31).
#          Healthy D phases kept w ≤ 0.07, so a cap of 1 binds only there. Init bundle: ROW 1's.
#   ROW=4  (session 33, after ROW 1: 10.44 — its G, on the regression alone while D led, fell from val 9.8 to 14.2 in
#          those 200 steps and spent the run recovering) DG1C2 with G held still while D leads (hold_g: LossConfig.hold_generator),
#          run 33's second call's schedule that made its gain (lead 100, ramp 50; G's lr warm-up 100 from the hold's end),
#          the adaptive weight capped at 1. Init bundle: ROW 1's.
# Then `bash benchmarks/device/proof_scale_bundle.sh aside benchmarks/results/proof_scale_h200_run34/run.sh`, carry
# [".devdata/ps", ".devdata/ps_init"], command `ROW=1 bash benchmarks/results/proof_scale_h200_run34/run.sh`; copy each
# call's files out of /work/.device at once (a row the deadline stops is scored in the call: FINISH below); afterwards
# proof_scale_bundle.sh restore.
G='regression=latentlpips:lr_warmup=100:gan_warmup=200:d_lead=200:gan_ramp=300:lr_d_ratio=5:mix_and_match=false:lr_d_schedule=constant:d_beta2=0.99'
C="diffusion2gan@init_from=diffusion2gan:$G:lr=3e-5:lr_decay=constant:batch=512:r1_gamma=0:d_t_max=100:d_mbstd=4:d_real=images:z_conditioning=false:gan_weight=1:steps=1000"
case "${ROW:-1}" in
  1) export VARIANTS="$C:lr_warmup=200" ;;
  2) export VARIANTS="$C" ;;
  3) export VARIANTS="$C:lr_warmup=200:gan_scale_max=1" ;;
  4) export VARIANTS="$C:gan_warmup=100:d_lead=100:gan_ramp=50:hold_g=true:gan_scale_max=1" ;;
  *) echo "ROW must be 1, 2, 3 or 4"; exit 2 ;;
esac
export PAIRS=${PAIRS:-40000} SELECT=${SELECT:-200}
# FINISH: a row the deadline stops is scored in the call itself (run 33's second row needed a scoring call of its own)
FINISH=${FINISH-1} MAXS=${MAXS:-515} MARGIN=${MARGIN:-25} KEEP=${KEEP:-variants} bash benchmarks/device/proof_scale_run.sh
