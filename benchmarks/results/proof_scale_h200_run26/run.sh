#!/bin/bash
# RUN IN PART (sessions 29-30, one H200). Session 29: all three rows side by side reached step 250 twice, each time lost
# to the machine going cold between chained calls (records: session29_step250/). Session 30: after one more such loss
# (three rows side by side at step 227), row MB2 alone in one call (pairs + 750 steps at ~0.3 s/step fit 600 s):
#   ROW=2 KEEP=ge76796 CALL=1 MAXS=572 MARGIN=25 bash benchmarks/results/proof_scale_h200_run26/run.sh   (call_session30_mb2.log)
# MB2: val FD 14.09 / 13.64 / 13.72 at steps 250 / 500 / 750; selected 500; 10k x 2 seeds FD 13.66 (13.55 / 13.77),
# precision 0.602, recall 0.594, class acc 0.923 (distill/32c4b0bbab17/). Run 25's MB (gan_weight 0.5) gave 13.30:
# doubling G's GAN share did not help. MB1 and T10W2 not run to the end.
# Plan for a later GPU session (written in session 24): issue 14's Diffusion2GAN row (~1.5x; target <= 1.10x).
# Run 22 raised G's GAN share (gan_weight 1, 2) with D on t <= 100: G fooled D within ~120 steps, D died, the row did
# not move (13.24 / 13.40 against 13.52 at 0.5). Run 25 (session 24) gave D two ways to stay ahead: the minibatch-std
# channel (d_mbstd=4: 13.30, the best 750-step row from run 10's student so far, alive to the end) and D on t <= 10
# (13.73: alive and *winning* — rank accuracy 0.95, margin growing 0.42 -> 0.91 — while G, hearing it at half the
# regression's gradient, did not follow). So: is the GAN's share the lever once D cannot be fooled out of the game?
#   MB1    d_mbstd=4, D on t <= 100, gan_weight 1   (run 22's gan_weight 1 row + the std channel)
#   MB2    d_mbstd=4, D on t <= 100, gan_weight 2
#   T10W2  D on t <= 10, gan_weight 2                (run 25's T10 row, 4x the share)
# All else as runs 22/25 (encoder D, from run 10's student, lr 3e-5 constant, D 1.5e-4 constant with Adam beta
# (0.9, 0.99), no R1, batch 512 in one micro-batch, 750 steps; selection every 250 on seed 2,000,000, scored on
# 10,000 x seeds 1,000,000 / 1,000,001). Compare with run 25's MB (13.30; val 14.81 / 13.40 / 13.47) and T10 (13.73),
# run 22's gan_weight 1 / 2 (13.24 / 13.40, D dead at 424). Read besides FD: the watch (a dead D is reported) and D's
# window means; on KEEP's weights the feature variance (benchmarks.student_diagnosis --weights).
# Here first (as runs 24/25):
#   git show 803a5b5:default_models/proof_scale/fmnist-student.safetensors > /tmp/run10.safetensors
#   bash benchmarks/device/proof_scale_bundle.sh --evaluator benchmarks/results/proof_scale_h200_run15/evaluator \
#     --teacher-row benchmarks/results/proof_scale_h200_run28 --init /tmp/run10.safetensors
#   bash benchmarks/device/proof_scale_bundle.sh aside benchmarks/results/proof_scale_h200_run26/run.sh
# carry [".devdata/ps", ".devdata/ps_init"]; CALL=1, 2, 3 chained within the machine's 30 s idle release (afterwards:
# proof_scale_bundle.sh restore). Cost (run 25: 1,440 s held for pairs 262 s + rows of 251 / 215 / 232 GPU s, the
# third finished by a MAXS=250 CALL=3): ~1,450 s. KEEP=<tag> (tags are printed at the end of each call) brings a row's
# weights back, at most two per call (ship by tools.ship_proof_scale only if a row beats 12.46).
G='regression=latentlpips:lr_warmup=100:gan_warmup=200:d_lead=200:gan_ramp=300:lr_d_ratio=5:mix_and_match=false:lr_d_schedule=constant:d_beta2=0.99'
C="diffusion2gan@init_from=diffusion2gan:$G:lr=3e-5:lr_decay=constant:steps=750:batch=512:r1_gamma=0"
# Session 29: the three rows side by side on the one GPU (--rows-per-gpu 3) so a budget cut leaves all three at the
# same step rather than the last one unstarted (run 25 ran them one after the other at ~0.3 s/step each).
ALL="$C:gan_weight=1:d_t_max=100:d_mbstd=4;$C:gan_weight=2:d_t_max=100:d_mbstd=4;$C:gan_weight=2:d_t_max=10"
# ROW=k runs only the k-th row (1-3), e.g. ROW=2 (MB2, ~0.3 s/step alone): pairs + 750 steps fit one 600 s call
export VARIANTS="$(echo "$ALL" | cut -d';' -f"${ROW:-1-3}")" EXTRA="--rows-per-gpu 3"
case "${CALL:-1}" in
  1) MAXS=${MAXS:-540} bash benchmarks/device/proof_scale_run.sh ;;
  *) MAXS=${MAXS:-550} MARGIN=${MARGIN:-45} SKIP_PIP=1 KEEP=${KEEP:-} bash benchmarks/device/proof_scale_run.sh ;;
esac
