#!/bin/bash
# Plan (written in session 37) for issue 16's DATA-FREE SiD-LSG row over several GPU sessions; it replaces run 39's (never run; in git history at 6b70b6b)
# plan, which had one session's ~1,500 s of training for a row that runs 13 and 29 found moving with the number of steps
# alone (27.23 = 3.21x after 750 steps at batch 512, falling ~5 val FD per 250 steps; batch and lr did not matter), and
# lost G and psi at the end of each session. Now each session's last call brings the row's training state back
# (KEEP_STATE: G's EMA and the fake score psi from its checkpoint, int8 deltas from the teacher, 2 x ~10 MB:
# proof_scale/carried_state.py; their output change from the int8 rounding is 1/1700 of the change training made,
# `python -m proof_scale.carried_state roundtrip` on run 40's InstaFlow weights), committed into state_<session>/ here,
# and the next session's row starts G and psi from it (init_from=NAME; Adam's moments start afresh behind 50 warm-up
# steps). The row: sid_lsg_teacher_cfg (kappa1 = kappa2 = 1, kappa4 = the teacher's 1.5), batch 256, lr 1e-4 constant,
# EMA 0.99, alpha 1, t_init 625, compiled blocks, steps=20000 so the deadline ends each call; selection every 500 steps.
# A session (PART=a for the first, b, c, ... after it; FROM = the previous part's carry name, none for a):
#   bash benchmarks/device/proof_scale_bundle.sh --evaluator benchmarks/results/proof_scale_h200_run15/evaluator \
#     --teacher-row benchmarks/results/proof_scale_h200_run28 [--init-state benchmarks/results/proof_scale_h200_run42/state_<previous part>]
#   bash benchmarks/device/proof_scale_bundle.sh aside benchmarks/results/proof_scale_h200_run42/run.sh
# carry [".devdata/ps"] (+ ".devdata/ps_init" from part b on: tree ~21 MB + ps ~22 MB + 2 x ~10 MB, of 64 MiB); commands
# `PART=a CALL=1 bash benchmarks/results/proof_scale_h200_run42/run.sh`, CALL=2, then CALL=3 with MAXS = what is left minus
# ~60 s, all three as `run` calls in ONE tool batch (they run one after the other on the warm machine; calls from separate
# turns missed the 30 s idle release twice in session 38, and a fresh machine has lost the row's state).
# CALL=3 scores the row where it stopped and brings its weights (KEEP) and its state (KEEP_STATE) back:
# copy $OUT's state_g*/ into state_<PART>/ here and commit it; proof_scale_bundle.sh restore after.
# Part b: `PART=b FROM=sid_carry_a CALL=1 ...` with --init-state .../state_a.
# Session 40 (benchmarks/results/proof_scale_sid_speed_h200_session40/): the eager step is host-bound — 409 ms at batch 64
# (GPU busy 20 %), 422 ms at 256 (52 %) — so first `CALL=0`: the compiled step at batch 64 (eager, compile default,
# compile reduce-overhead = CUDA graphs of the compiled blocks; ~350 s with cold compiles), printed row by row. If a
# compiled batch-64 step is far cheaper than 256's, set BATCH=64 (and COMPILE_MODE=reduce-overhead if that mode won) for
# PART=a — a batch of 64 moving the row as far per step as 256 is then what part a's val FD curve shows against run 29's.
# With AB=1 part a also trains the row with fake_steps=2 beside it (below); part b goes on from the better one.
S="lr=1e-4:lr_warmup=50:lr_decay=constant:steps=20000:batch=${BATCH:-256}:ema_decay=0.99:compile=true${COMPILE_MODE:+:compile_mode=$COMPILE_MODE}"
if [ "${CALL:-1}" = 0 ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .devdata/ps/whl/*.whl || exit 9
  PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 timeout "${LIMIT:-540}" python3 -m benchmarks.bench_proof_scale_train --rows sid_lsg_teacher_cfg \
    --batches "${BATCHES:-64}" --steps 30 --warmup 10 --profile 3 --compile --compile-modes default,reduce-overhead \
    --json "${OUT:-.}/sid_speed.json" 2>&1 | grep "^|\|Error\|error" | tail -40
  exit 0
fi
: "${PART:?PART=a for the first session, b, c, ... after}"
export VARIANTS="sid_lsg_teacher_cfg@${FROM:+init_from=$FROM:}$S" SELECT=${SELECT:-500} EXTRA=""
# AB=1 (part a only): beside it, the same row with fake_steps=2 (ψ twice per G step, DMD2's two-time-scale rule), the
# two side by side on the one GPU (a host-bound step leaves it idle most of the time); CALL=3 then keeps the weights and
# state of the row with the lower selection FD only (KEEP=best: both rows' are over what a call brings back)
[ -n "$AB" ] && VARIANTS="$VARIANTS;sid_lsg_teacher_cfg@$S:fake_steps=2" EXTRA="--rows-per-gpu 2" KEEP=${KEEP:-best} KEEP_STATE=${KEEP_STATE:-best}
case "${CALL:-1}" in
  1) MAXS=${MAXS:-530} MARGIN=${MARGIN:-30} bash benchmarks/device/proof_scale_run.sh ;;
  2) MAXS=${MAXS:-530} MARGIN=${MARGIN:-30} SKIP_PIP=1 bash benchmarks/device/proof_scale_run.sh ;;
  *) MAXS=${MAXS:-500} MARGIN=${MARGIN:-30} SKIP_PIP=1 FINISH=1 KEEP=${KEEP:-variants} KEEP_STATE=${KEEP_STATE:-variants}:sid_carry_$PART \
       bash benchmarks/device/proof_scale_run.sh ;;
esac
