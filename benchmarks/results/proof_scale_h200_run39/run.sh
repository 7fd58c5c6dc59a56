#!/bin/bash
# SUPERSEDED in session 37 by run 42's plan (benchmarks/results/proof_scale_h200_run42/run.sh), which carries G and the fake score between sessions.
# Plan for a later GPU session (written in session 35): issue 16's DATA-FREE SiD-LSG row from the teacher, now with the
# UNet blocks compiled. Run 29 (session 28) took the LSG-split row (kappa1 = kappa2 = 1, kappa4 = 1.5) to 27.23 (3.21x)
# after 750 steps at batch 512, falling ~5 val FD per 250 steps; its kept weights are gone, so this starts from the
# teacher again (run 30's plan needed them). What changed since: compile=true took the 2-RF's training step from ~350 to
# ~145 ms (run 37, 2.4x); SiD's step runs G, psi and phi (15 blocks compiled, tested on the CPU), so a session's
# ~1,500 s of training should give several thousand steps instead of run 29's ~950 — the one lever runs 13 and 29 found
# (the rows moved with the number of steps; batch 512 and lr 1e-5 vs 1e-4 did not).
# One row at batch 256 (run 13's), lr 1e-4 constant after 50 warm-up steps, EMA 0.99, alpha 1, t_init 625, psi's t in
# [20, 979]; steps=20000 so the deadline ends it; selection every 500 steps. Three calls chained within the machine's
# idle release (the work folder holds G, psi and Adam's moments between them); FINISH on the last scores it there.
# Here first:
#   bash benchmarks/device/proof_scale_bundle.sh --evaluator benchmarks/results/proof_scale_h200_run15/evaluator \
#     --teacher-row benchmarks/results/proof_scale_h200_run28
#   bash benchmarks/device/proof_scale_bundle.sh aside benchmarks/results/proof_scale_h200_run39/run.sh
# carry [".devdata/ps"]; `CALL=1 bash benchmarks/results/proof_scale_h200_run39/run.sh`, then CALL=2, then CALL=3 with
# MAXS = what is left minus ~60 s; proof_scale_bundle.sh restore after. Data-free: no teacher pairs are made.
S='lr=1e-4:lr_warmup=50:lr_decay=constant:steps=20000:batch=256:ema_decay=0.99:compile=true'
export VARIANTS="sid_lsg_teacher_cfg@$S" SELECT=${SELECT:-500} EXTRA=""
case "${CALL:-1}" in
  1) MAXS=${MAXS:-530} MARGIN=${MARGIN:-30} bash benchmarks/device/proof_scale_run.sh ;;
  2) MAXS=${MAXS:-530} MARGIN=${MARGIN:-30} SKIP_PIP=1 bash benchmarks/device/proof_scale_run.sh ;;
  *) MAXS=${MAXS:-500} MARGIN=${MARGIN:-30} SKIP_PIP=1 FINISH=1 KEEP=${KEEP:-variants} bash benchmarks/device/proof_scale_run.sh ;;
esac
