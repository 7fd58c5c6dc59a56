#!/bin/bash
# Session 36: run 37's 2-rectified flow made again (a fresh checkout has none of an earlier session's git-ignored
# files, so the 2-RF halves session 35 brought back were gone), kept this time in the repository (fp16 halves, 2 x
# ~4.8 MB, benchmarks/results/proof_scale_h200_run40/kept/) so that later sessions start InstaFlow from it without
# ~1,000 s of device time; then run 38's first call (the 2-RF's own pairs + InstaFlow's E-LatentLPIPS stage) on the same
# warm machine. The recipe is run 37's unchanged (80,000 teacher pairs + 2,000 held out, 2,400 steps x 1,024, EMA 0.995,
# compiled blocks, lr 1e-4 / 500 warm-up / cosine to 0.1x): the second run of it also says how far two runs differ.
# Here first:
#   bash benchmarks/device/proof_scale_bundle.sh --evaluator benchmarks/results/proof_scale_h200_run15/evaluator \
#     --teacher-row benchmarks/results/proof_scale_h200_run28
#   bash benchmarks/device/proof_scale_bundle.sh aside benchmarks/results/proof_scale_h200_run40/run.sh
# carry [".devdata/ps"]; commands `CALL=1 bash benchmarks/results/proof_scale_h200_run40/run.sh`, then at once CALL=2,
# then CALL=3 (each within the machine's 30 s idle release: the work folder stays on the warm machine).
export VARIANTS="" PAIRS=${PAIRS:-80000}
R="--distill-batch 1024 --row-set compile=true:ema_decay=0.995"
case "${CALL:-1}" in
  1) export EXTRA="--chains distill-reflow_2rf --distill-steps ${STEPS:-2400} $R"
     MAXS=${MAXS:-540} MARGIN=${MARGIN:-30} bash benchmarks/device/proof_scale_run.sh ;;
  2) export EXTRA="--chains distill-reflow_2rf --distill-steps ${STEPS:-2400} $R"
     MAXS=${MAXS:-500} MARGIN=${MARGIN:-30} SKIP_PIP=1 FINISH=1 KEEP=${KEEP:-reflow_2rf} bash benchmarks/device/proof_scale_run.sh ;;
  *) export EXTRA="--chains pairs-2rf,distill-instaflow --distill-steps ${ISTEPS:-1200} $R"
     MAXS=${MAXS:-530} MARGIN=${MARGIN:-30} SKIP_PIP=1 FINISH=1 KEEP=${KEEP:-instaflow} bash benchmarks/device/proof_scale_run.sh ;;
esac
# As run (session 36, one H200): CALL=1 (call1.log): 80,000 teacher pairs in 249 s, the reflow to step 957 (val FD at 4
# Euler steps 25.24 at step 500, 17.34 at 750, as run 37's 17.30 at 750). CALL=2 started at once but found a bare
# machine (call2_cold_machine.log: "warm": false, no /tmp/site, no work folder), so SKIP_PIP=1 failed on kornia and the
# pairs and 957 steps were gone; proof_scale_run.sh now installs when /tmp/site lacks the wheels whatever SKIP_PIP says.
# The device time left (~1,000 s, after a refused start) went to issue 20's profile; this plan is the next session's
# first use of the device: CALL=1, CALL=2 (KEEP=reflow_2rf: commit the two fp16 halves into kept/ here), then CALL=3.
# Session 37 (one H200), run as planned: CALL=1 (call1.log, a bare machine: 575 s) 80,000 teacher pairs in 271 s and the
# reflow to step 518; CALL=2 (call2.log, 354 s) the reflow to 2,400 and its scoring: 12.34 at 4 Euler steps (1.43x; run
# 37: 12.38), KEEP=reflow_2rf; CALL=3 (call3.log, 456 s) the 2-RF's pairs (149 s) and InstaFlow 1,200 steps: one step
# 18.84 (2.19x). Both rows' weights are in kept/ (fp16, three parts each under the 10 MB a tracked file may have: the
# halves KEEP brings back are 8.9 and 10.9 MB). Next: run 41's plan (the GAN stage from kept/).
