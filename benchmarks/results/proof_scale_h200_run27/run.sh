#!/bin/bash
# AS RUN (session 25, one H200, 1,699 s held): CALL=1; CALL=2 MAXS=550; CALL=3 MAXS=500 MARGIN=30 KEEP=g7859b5 (the B row's
# weights; the A row was done in call 2). Results: docs/benchmarks.md "session 25 run 27"; records in continue_shipped/.
# Plan for session 25's GPU time: issue 16's last 0.8 % (the shipped SiD-LSG student is 1.008x its teacher on the
# teacher's three seeds; target <= 1.00x). Run 17's recipe peaked at step 1,250 of a 1,500-step cosine from run 10's
# Diffusion2GAN student (val FD 8.87, the end of the cosine did not help). Two questions from that student itself:
#   A  MSE    the shipped recipe continued (LSG split, recall anchor 0.25 with the MSE regression) at a constant
#             lr 1e-5 for G with psi at 3e-5 (lr_d_ratio 3, run 17's psi lr: psi restarts from the teacher and must
#             catch up with G), 750 steps: does more SiD at a lower lr move the shipped student below its teacher?
#   B  LPIPS  the same with the anchor's regression LatentLPIPS (run 20's lever): a perceptual pull toward the pairs
#             instead of a per-latent one.
# Both as run 17 otherwise (batch 256, EMA 0.99, 50 warm-up steps, selection every 250 on seed 2,000,000), so the val
# FDs compare with run 17's (8.87 at its selected step 1,250, the start of these rows).
# Here first:
#   bash benchmarks/device/proof_scale_bundle.sh --evaluator benchmarks/results/proof_scale_h200_run15/evaluator \
#     --teacher-row benchmarks/results/proof_scale_h200_run18 --init default_models/proof_scale/fmnist-student.safetensors
#   bash benchmarks/device/proof_scale_bundle.sh aside benchmarks/results/proof_scale_h200_run27/run.sh
# carry [".devdata/ps", ".devdata/ps_init"]; CALL=1, 2, 3 chained within the machine's 30 s idle release
# (afterwards proof_scale_bundle.sh restore). Cost: pairs ~204 s + 2 x 750 x ~0.6 s + selection ~= 1,250 s.
# KEEP=<tag> (printed at the end of each call) brings a row's weights back; CPU-score them on seeds 1,000,000-1,000,002
# (benchmarks.score_generator --weights A B --seeds 1000000,1000001,1000002) and ship by tools.ship_proof_scale only
# below 8.543 (the shipped student on the same seeds; the teacher 8.472).
S='init_from=diffusion2gan:lr=1e-5:lr_d_ratio=3:lr_warmup=50:lr_decay=constant:steps=750:batch=256:ema_decay=0.99:anchor=0.25'
export VARIANTS="sid_lsg_teacher_cfg@$S:regression=mse;sid_lsg_teacher_cfg@$S:regression=latentlpips"
case "${CALL:-1}" in
  1) MAXS=540 bash benchmarks/device/proof_scale_run.sh ;;
  *) MAXS=${MAXS:-550} MARGIN=${MARGIN:-45} SKIP_PIP=1 KEEP=${KEEP:-} bash benchmarks/device/proof_scale_run.sh ;;
esac
