#!/bin/bash
# Session 35: issue 17's 2-rectified flow, longer and with a shorter EMA (run 23's plan, fitted to the ~1,400 s a
# session has left after issue 20's probe). Run 12's reflow_2rf (1,500 steps x 1,024 on 40,000 pairs, EMA 0.999) scored
# 14.47 at 4 Euler steps (1.68x; target <= 1.5x the teacher at 50) with its validation FD still falling; its selection
# scores the EMA weights, and at decay 0.999 (a ~1,000-step window) over 1,500 steps they averaged in the weights of
# steps 500-1,000 (val FD 26.8 -> 15.8). Here: 80,000 pairs + 2,000 held out, EMA 0.995 (a ~200-step window), the UNet's
# blocks compiled (TrainConfig.compile_blocks: one network, one batch, so few graphs), STEPS (default 2,400) at batch 1,024,
# lr 1e-4 / 500 warm-up / cosine to 0.1x over the plan's steps as run 12. Two calls chained within the machine's idle
# release; FINISH=1 scores the row where the second call's deadline stops it. The teacher's 1/2/4-step rows on run 15's
# evaluator (teacher-steps, ~60 s) go with the next session's InstaFlow stage, which starts from this row's weights:
#   KEEP=reflow_2rf on the last call brings best_reflow_2rf_{a,b}.safetensors back; then proof_scale_bundle.sh
#   --init-weights "best_reflow_2rf_a.safetensors best_reflow_2rf_b.safetensors" --init-result <result.json> --init-row reflow_2rf
# Here first:
#   bash benchmarks/device/proof_scale_bundle.sh --evaluator benchmarks/results/proof_scale_h200_run15/evaluator \
#     --teacher-row benchmarks/results/proof_scale_h200_run28
#   bash benchmarks/device/proof_scale_bundle.sh aside benchmarks/results/proof_scale_h200_run37/run.sh
# carry [".devdata/ps"]; command `CALL=1 bash benchmarks/results/proof_scale_h200_run37/run.sh`, then at once `CALL=2 ...`.
export EXTRA="--chains distill-reflow_2rf --distill-steps ${STEPS:-2400} --distill-batch 1024 --row-set ema_decay=0.995${COMPILE-:compile=true}"
export VARIANTS="" PAIRS=${PAIRS:-80000}
case "${CALL:-1}" in
  1) MAXS=${MAXS:-540} MARGIN=${MARGIN:-30} bash benchmarks/device/proof_scale_run.sh ;;
  *) MAXS=${MAXS:-515} MARGIN=${MARGIN:-30} SKIP_PIP=1 FINISH=1 KEEP=${KEEP:-reflow_2rf} bash benchmarks/device/proof_scale_run.sh ;;
esac
# As run (session 35, one H200): call1_failed_cc.log — the first call died in Triton's build of its CUDA helper because
# proof_scale_run.sh's shell variable CC (the compile-cache folder, session 34) overrode the device's exported CC
# (renamed COMPILE_DIR); then CALL=1 (call1.log: pairs 239 s, reflow to step 853), CALL=2 MAXS=480 (call2.log: to step
# 2,400 and scored), and with the ~400 s left, on the same warm machine (call3.log):
#   EXTRA="--chains teacher-steps,pairs-2rf,distill-instaflow --distill-steps 1500 --distill-batch 1024 --row-set compile=true" \
#   VARIANTS="" PAIRS=80000 MAXS=290 MARGIN=30 SKIP_PIP=1 FINISH=1 KEEP=none bash benchmarks/device/proof_scale_run.sh
# (the teacher at 1/2/4 steps on run 15's evaluator, 80,000 pairs of the 2-RF, InstaFlow stopped at step 292).
