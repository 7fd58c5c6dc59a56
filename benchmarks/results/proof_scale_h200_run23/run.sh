#!/bin/bash
# Plan for a later GPU session (written in session 21): issue 17's 2-rectified flow, longer. Run 12's reflow_2rf
# (1,500 steps x 1,024 on 40,000 teacher pairs, 530 GPU s) scored 14.47 at 4 Euler steps (1.68x; target <= 1.5x the
# teacher at 50 steps) with its validation FD still falling fast (18.25 / 15.82 / 14.67 / 14.31 at steps 750 ... 1,500)
# and held-out velocity MSE 13 % above the training pairs'. This run: twice the steps (3,000 x 1,024 = 3.1 M samples)
# on twice the pairs (80,000 + 2,000 held out), with the teacher at 1 / 2 / 4 steps on the same evaluator
# (teacher-steps). A whole session's device time on ONE H200; the next session packs the kept weights
# (proof_scale_bundle.sh --init-weights "best_reflow_2rf_a.safetensors best_reflow_2rf_b.safetensors" --init-result
# <its result.json from records.tgz> --init-row reflow_2rf) and runs pairs-2rf + instaflow (EXTRA="--chains pairs-2rf,distill-instaflow"),
# and instaflow@gan=true beside it on a 2xH200 machine.
# Here first:
#   bash benchmarks/device/proof_scale_bundle.sh --evaluator benchmarks/results/proof_scale_h200_run15/evaluator \
#     --teacher-row benchmarks/results/proof_scale_h200_run28
#   bash benchmarks/device/proof_scale_bundle.sh aside benchmarks/results/proof_scale_h200_run23/run.sh
# carry [".devdata/ps"]; CALL=1, 2, 3 chained within the machine's 30 s idle release; KEEP=reflow_2rf on the last call
# (the row's tag is its name: it has no settings).
# Cost (run 12: 0.35 s a step at batch 1,024 with selection every 250; run 21: pairs 264 s): pairs 264 + teacher-steps
# ~60 + 3,000 x 0.35 = 1,050 + scoring at 1 / 2 / 4 steps ~60 + ~20 s per call to start = ~1,500 s.
export EXTRA="--chains teacher-steps,distill-reflow_2rf --distill-steps 3000 --distill-batch 1024"
export VARIANTS=""
case "${CALL:-1}" in
  1) MAXS=540 bash benchmarks/device/proof_scale_run.sh ;;
  *) MAXS=${MAXS:-550} MARGIN=${MARGIN:-45} SKIP_PIP=1 KEEP=${KEEP:-} bash benchmarks/device/proof_scale_run.sh ;;
esac
