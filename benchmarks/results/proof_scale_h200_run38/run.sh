#!/bin/bash
# SUPERSEDED in session 37 by run 41's plan (benchmarks/results/proof_scale_h200_run41/run.sh), which starts from run 40's kept rows.
# Plan for the next GPU session (written in session 35): issue 17's second target, InstaFlow one step FD <= 1.30x the
# teacher, from run 37's 2-RF (12.38 at 4 Euler steps). Run 37's last ~400 s started it: 80,000 pairs of the 2-RF's
# 25-step Euler ODE (151 s), then `instaflow` (E-LatentLPIPS, batch 1,024, compiled) reached 24.26 (2.82x) at step 250.
# A one-step regression alone has not gone below ~16.6 at this scale (issue 14's ablation rows, run 36), so the plan
# is InstaFlow's optional GAN term (`instaflow@gan=true`, the method instaflow-gan) with the Diffusion2GAN recipe that
# took that row to 0.996x (run 34's ROW 4, its LatentLPIPS regression term included: D on real training images, its heads at t <= 100 with minibatch std, G held
# still while a fresh D leads 100 steps, the adaptive weight capped at 1), R1 off so the blocks compile.
#   CALL=1  pairs-2rf (80,000; the teacher's pairs are not made: the 2-RF is carried in) + instaflow (EMA 0.995 as run 37; 1,200 steps at
#           batch 1,024, ~0.2 s a step compiled after ~60 s of compile): ~480 s
#   CALL=2  (at once, on the same warm machine) the GAN stage from instaflow's selected weights, 1,000 steps at batch 512,
#           FINISH scores it where the deadline stops it; KEEP brings both rows' weights back
# Here first (the 2-RF's halves are git-ignored in .devdata/run37_kept/; a fresh clone lacks them: then run run 37 again):
#   bash benchmarks/device/proof_scale_bundle.sh --train-head 8000 --evaluator benchmarks/results/proof_scale_h200_run15/evaluator \
#     --teacher-row benchmarks/results/proof_scale_h200_run28 --init-row reflow_2rf \
#     --init-weights ".devdata/run37_kept/best_reflow_2rf_a.safetensors .devdata/run37_kept/best_reflow_2rf_b.safetensors" \
#     --init-result benchmarks/results/proof_scale_h200_run37/distill/reflow_2rf/result.json
#   bash benchmarks/device/proof_scale_bundle.sh aside benchmarks/results/proof_scale_h200_run38/run.sh
# (~65 MB of the 64 MiB a call carries) carry [".devdata/ps", ".devdata/ps_init"]; command `CALL=1 bash
# benchmarks/results/proof_scale_h200_run38/run.sh`, then at once `CALL=2 ...`; proof_scale_bundle.sh restore after.
G='init_from=instaflow:gan=true:regression=latentlpips:lr=3e-5:lr_decay=constant:batch=512:steps=1000:r1_gamma=0'
G="$G:d_t_max=100:d_mbstd=4:d_real=images:z_conditioning=false:gan_weight=1:lr_d_ratio=5:mix_and_match=false"
G="$G:lr_d_schedule=constant:d_beta2=0.99:lr_warmup=100:gan_warmup=100:d_lead=100:gan_ramp=50:hold_g=true:gan_scale_max=1:compile=true"
export VARIANTS="" PAIRS=${PAIRS:-80000} SELECT=${SELECT:-200}
case "${CALL:-1}" in
  1) export EXTRA="--chains pairs-2rf,distill-instaflow --distill-steps ${STEPS:-1200} --distill-batch 1024 --row-set compile=true:ema_decay=0.995"
     MAXS=${MAXS:-530} MARGIN=${MARGIN:-30} FINISH=1 KEEP=${KEEP:-instaflow} bash benchmarks/device/proof_scale_run.sh ;;
  *) export EXTRA="--chains distill-instaflow@$G"
     MAXS=${MAXS:-515} MARGIN=${MARGIN:-30} SKIP_PIP=1 FINISH=1 KEEP=${KEEP:-variants,instaflow} bash benchmarks/device/proof_scale_run.sh ;;
esac
