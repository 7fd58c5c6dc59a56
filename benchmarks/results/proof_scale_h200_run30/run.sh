#!/bin/bash
# Plan for a later GPU session (written in session 28): issue 16's DATA-FREE SiD-LSG row, continued from run 29.
# Run 29 (session 28, one H200, both rows side by side at batch 512, lr 1e-4 constant) brought back each row's best EMA
# weights: B sid_lsg_teacher_cfg (kappa1 = kappa2 = 1, kappa4 = 1.5) at step 750 (val FD 38.5 / 32.4 / 27.2 at 250 / 500
# / 750; 384 k samples), A sid_lsg (kappa 1.5 everywhere) at step 500 (39.8 / 34.4; it stopped at 743). Per step neither
# beat run 13's batch-256 rows (35.3 / 31.1 / 26.6 with a cosine lr), so a step at batch 512 buys nothing over one at 256
# and costs twice the time: this run goes back to batch 256 and asks whether the step size is the lever:
#   C   B continued at lr 1e-4 (the control and the row that carries the progress)
#   X   B continued at lr 3e-4 (G and psi; run 13 found 1e-4 and 1e-5 nearly alike per step from the teacher)
# Both from B's step-750 EMA weights (psi restarts from the teacher: G's gradient is ~0 for the first ~100 steps, as
# in runs 15-17), 50 warm-up steps, constant lr, EMA 0.99, alpha 1, t_init 625, side by side (--rows-per-gpu 2),
# selection every 250 steps on seed 2,000,000, steps=8000 so the deadline ends them; KEEP both at the last call.
# Here first (B's kept halves are git-ignored in .devdata/run29_kept/ — a fresh machine lacks them: then drop --init-*
# and init_from below, and both rows start from the teacher):
#   K=.devdata/run29_kept R=benchmarks/results/proof_scale_h200_run29/distill/B_sid_lsg_teacher_cfg
#   bash benchmarks/device/proof_scale_bundle.sh --evaluator benchmarks/results/proof_scale_h200_run15/evaluator \
#     --teacher-row benchmarks/results/proof_scale_h200_run28 --init-row sid_lsg_tc_s1 \
#     --init-weights "$K/best_gd8126f_a.safetensors $K/best_gd8126f_b.safetensors" \
#     --init-selection $R/selection.json --init-plan $R/plan.json
#   bash benchmarks/device/proof_scale_bundle.sh aside benchmarks/results/proof_scale_h200_run30/run.sh
# carry [".devdata/ps", ".devdata/ps_init"]; CALL=1, 2, then the last call with KEEP=g4b3415,gaa7292 (C's and X's tags;
# other tags when the rows start from the teacher — every call prints them), chained at once (the machine goes back
# after 30 s idle and its work folder with it). Budget: run 29's first call also paid ~100 s of start and two refused
# asks 181 s, so plan 3 calls of MAXS 520 / 520 / what is left minus ~60 s.
# Afterwards: CPU-score the kept halves (benchmarks.score_generator, seeds 1,000,000-1,000,002) against the teacher's
# 8.413 in float32; pack the better row with proof_scale.init_row (--selection/--plan) for the next session.
S='init_from=sid_lsg_tc_s1:lr_warmup=50:lr_decay=constant:steps=8000:batch=256:ema_decay=0.99'
export VARIANTS="sid_lsg_teacher_cfg@$S:lr=1e-4;sid_lsg_teacher_cfg@$S:lr=3e-4" SELECT=250 EXTRA="--rows-per-gpu 2"
case "${CALL:-1}" in
  1) MAXS=${MAXS:-520} bash benchmarks/device/proof_scale_run.sh ;;
  *) MAXS=${MAXS:-520} MARGIN=${MARGIN:-45} SKIP_PIP=1 KEEP=${KEEP:-} bash benchmarks/device/proof_scale_run.sh ;;
esac
