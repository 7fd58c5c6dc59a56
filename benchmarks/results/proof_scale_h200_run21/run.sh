#!/bin/bash
# AS RUN (session 21, one H200): CALL=1 and CALL=2 only (1,852 of 2,500 steps; HI alone); CALL=3 was not run — every
# selection point had answered (lr 1e-4 worse than run 15's 3e-5 throughout; D at 5e-4 dies). Records: hi_lr/;
# docs/benchmarks.md "session 21 run 21".
# Plan for a later GPU session (written in session 20): issue 14's Diffusion2GAN row (1.45x; target <= 1.10x). Run 15's
# GAN stage continued from run 10's student at a constant lr 3e-5 (batch 512, 2,500 steps, 712 s on one H200) was still
# falling at its end — val FD 13.98 / 13.45 / 13.26 / 12.99 / 12.52 at steps 500 ... 2,500, held-out MSE 0.0101 -> 0.0095
# (benchmarks/results/proof_scale_h200_run15/distill/gan_continued/) — so its lr, not its data, is the first suspect.
# This run: the same continuation at lr 1e-4 (HI), and — on a 2xH200 machine, side by side — at 3e-5 again (LO, the
# control: the E-LatentLPIPS trunk is run 19's now, run 15's is lost). Compare the val-FD trajectories point by point.
# Here first (as run 20's header, with --init run 10's student):
#   git show 803a5b5:default_models/proof_scale/fmnist-student.safetensors > /tmp/run10.safetensors
#   bash benchmarks/device/proof_scale_bundle.sh --evaluator benchmarks/results/proof_scale_h200_run15/evaluator \
#     --teacher-row benchmarks/results/proof_scale_h200_run18 --init /tmp/run10.safetensors
#   bash benchmarks/device/proof_scale_bundle.sh aside benchmarks/results/proof_scale_h200_run21/run.sh
# carry [".devdata/ps", ".devdata/ps_init"]; CALL=1, 2 (+ 3) chained; ~1,000 s on one H200 for HI alone
# (pairs 204 s + 2,500 x 0.285 s + selection); KEEP=<tag> on the last call brings HI's weights back (init_row carries
# them into a longer chain next session if HI is the faster).
G='regression=latentlpips:lr_warmup=100:gan_warmup=200:d_lead=200:gan_ramp=300:r1_gamma=0:lr_d_ratio=5:d_t_max=100:mix_and_match=false:lr_d_schedule=constant:d_beta2=0.99:gan_weight=0.5'
C="diffusion2gan@init_from=diffusion2gan:$G:lr_decay=constant:steps=2500:batch=512"
HI="$C:lr=1e-4"
LO="$C:lr=3e-5"
if [ "$(nvidia-smi -L 2>/dev/null | grep -c '^GPU')" -ge 2 ]; then export VARIANTS="$HI;$LO"; else export VARIANTS="$HI"; fi
case "${CALL:-1}" in
  1) MAXS=540 bash benchmarks/device/proof_scale_run.sh ;;
  *) MAXS=${MAXS:-550} MARGIN=${MARGIN:-45} SKIP_PIP=1 KEEP=${KEEP:-} bash benchmarks/device/proof_scale_run.sh ;;
esac
