#!/bin/bash
# Plan (written in session 38) for issue 17's second target, InstaFlow one step FD <= 1.30x the teacher, after run 41:
# the GAN term took InstaFlow from 2.19x to 1.61x (13.91) within ~600 steps and then held it (val 14.1-16.3 for 1,300
# steps) while D won throughout (rank accuracy ~0.9) and the adaptive weight put only 0.01-0.14 of the GAN on G. The
# 2-RF's own pairs score 10.35 (~1.2x): the regression's targets are under the target. So this run makes the GAN's pull
# on G stronger, from run 41's kept weights (selected step 600), in two rows that differ in that one thing:
#   A  gan_balance=fixed, gan_weight=0.1 (about 3x run 41's typical adaptive scale, and constant)
#   B  adaptive with gan_weight=4, gan_scale_max=4 (run 41's balance, 4x stronger, still bounded)
# everything else run 41's (run 34's D recipe: real images, heads at t <= 100, minibatch std, a fresh D leads 100 steps).
# Here first:
#   K=benchmarks/results/proof_scale_h200_run40; K41=benchmarks/results/proof_scale_h200_run41
#   B="--train-head 8000 --evaluator benchmarks/results/proof_scale_h200_run15/evaluator --teacher-row benchmarks/results/proof_scale_h200_run28"
#   rm -rf .devdata/ps_init_2rf
#   bash benchmarks/device/proof_scale_bundle.sh $B --init-row reflow_2rf --init-result $K/distill/reflow_2rf/result.json \
#     --init-weights "$(ls $K/kept/best_reflow_2rf_*.safetensors | tr '\n' ' ')" && mv .devdata/ps_init .devdata/ps_init_2rf
#   bash benchmarks/device/proof_scale_bundle.sh $B --init-row instaflow --init-result $K41/distill/instaflow_gan/result.json \
#     --init-weights "$(ls $K41/kept/best_g38f3ff_*.safetensors | tr '\n' ' ')"
#   bash benchmarks/device/proof_scale_bundle.sh aside benchmarks/results/proof_scale_h200_run43/run.sh
# The three calls go in ONE tool batch (three `run` calls in one message run one after the other on the warm machine;
# calls from separate turns missed the 30 s idle release twice in session 38, and a fresh machine has no pairs):
#   CALL=1  carry [".devdata/ps", ".devdata/ps_init_2rf"]  the 2-RF's 80,000 pairs (~240 s with a bare machine's install)
#   CALL=2  carry [".devdata/ps", ".devdata/ps_init"]      row A (~570 s: ~1,500 steps, scored, weights back)
#   CALL=3  carry [".devdata/ps", ".devdata/ps_init"]      row B
# ~1,550 s of device time. Then `proof_scale_bundle.sh restore`, records into this folder, `python -m proof_scale.init_row
# split benchmarks/results/proof_scale_h200_run43/kept --tag TAG --weights /work/.device/N/best_TAG_{a,b}.safetensors`
# for the better row, scoreboard rows (tools/collect_proof_scale.py).
G='init_from=instaflow:gan=true:regression=latentlpips:lr=3e-5:lr_decay=constant:batch=512:steps=2000:r1_gamma=0'
G="$G:d_t_max=100:d_mbstd=4:d_real=images:z_conditioning=false:lr_d_ratio=5:mix_and_match=false"
G="$G:lr_d_schedule=constant:d_beta2=0.99:lr_warmup=100:gan_warmup=100:d_lead=100:gan_ramp=50:hold_g=true"
export VARIANTS="" PAIRS=${PAIRS:-80000} SELECT=${SELECT:-200}
case "${CALL:-1}" in
  1) export EXTRA="--chains pairs-2rf"
     MAXS=${MAXS:-400} MARGIN=${MARGIN:-30} bash benchmarks/device/proof_scale_run.sh ;;
  2) export EXTRA="--chains distill-instaflow@$G:gan_balance=fixed:gan_weight=0.1"
     MAXS=${MAXS:-500} MARGIN=${MARGIN:-30} SKIP_PIP=1 FINISH=1 KEEP=${KEEP:-variants} bash benchmarks/device/proof_scale_run.sh ;;
  *) export EXTRA="--chains distill-instaflow@$G:gan_weight=4:gan_scale_max=4"
     MAXS=${MAXS:-500} MARGIN=${MARGIN:-30} SKIP_PIP=1 FINISH=1 KEEP=${KEEP:-variants} bash benchmarks/device/proof_scale_run.sh ;;
esac
