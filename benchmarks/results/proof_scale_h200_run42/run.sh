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
# Session 40 (benchmarks/results/proof_scale_sid_speed_h200_session40/): the eager step is host-bound — 409 ms at batch 64
# (GPU busy 20 %), 422 ms at 256 (52 %).
# PART a, as run in session 41 (docs/benchmarks.md "session 41"): PROBE=compile CALL=0 LIMIT=330 (eager 437 ms at batch 64; the cold
# compile of default mode did not end inside 330 s), then `PICK=1 PART=a AB=fake_steps=2 COMPILE=1 CALL=1 MAXS=480`, CALL=2
# MAXS=480, CALL=3 MAXS=250 (PICK chose BATCH=256, compile default). The first call went entirely on compiling both rows
# (step 3 after 459 s); val FD 32.69 at 500, 31.32 at 1,000 at a constant lr 1e-4 — a plateau — and fake_steps=2 worse
# (38.77 at 500, a loss spike at ~750). state_a/ holds the first row's G (EMA) and ψ at step 1,124.
# PART b (next session, 1,800 s): eager (no compile: a cold compile costs a whole call), from state_a, two rows side by
# side at lower constant lrs (run 13: a decaying lr went on falling where the constant 1e-4 plateaus; the released CIFAR
# runs use 1e-5) and the official EMA half-life (50k images = 0.996 at batch 256):
#   bash benchmarks/device/proof_scale_bundle.sh --evaluator benchmarks/results/proof_scale_h200_run15/evaluator \
#     --teacher-row benchmarks/results/proof_scale_h200_run28 --init-state benchmarks/results/proof_scale_h200_run42/state_a
#   bash benchmarks/device/proof_scale_bundle.sh aside benchmarks/results/proof_scale_h200_run42/run.sh
#   carry [".devdata/ps", ".devdata/ps_init"]; in ONE tool batch: CALL=0 LIMIT=150, then
#   PICK=1 PART=b FROM=sid_carry_a LR=3e-5 EMA=0.996 AB=lr=1e-5 CALL=1 bash benchmarks/results/proof_scale_h200_run42/run.sh
#   ... CALL=2, then CALL=3 MAXS=<what is left minus ~90 s>; commit $OUT's state_g*/ as state_b/ (the better row's).
#   Session 41 added TrainConfig.cuda_graph (the whole step replayed as one CUDA graph, no compile; never yet run on a
#   GPU): first `CALL=0` (PROBE=graph, the default: eager and graph at batches 256 and 64, ~90 s), then the three calls
#   with PICK=1, which adds cuda_graph=true when the graph step at batch 256 ran, beat the eager one and trained alike.
# PART b, as run in session 42 (docs/benchmarks.md "session 42"): CALL=0 LIMIT=150 (graph 287 ms at batch 256 against eager
# 429; 108 against 432 at 64), then the three calls above with MAXS 530/530/200 (PICK chose cuda_graph=true). The lower
# lr won again: val FD 25.12 at step 1,000 at lr 1e-5 (row FD 24.22 = 2.81x), 26.09 at 3e-5. The second call's timeout
# cut both rows before their deadline save (MAXS then counted from proof_scale.parallel's start, ~70 s after the call's);
# proof_scale_run.sh now counts it from its own start. state_b/ holds the lr-1e-5 row's G (EMA) and psi at step 1,164.
# PART c (next session, 1,800 s): from state_b, graph step without the probe (GRAPH=1), lr 1e-5 against 3e-6 (is the row
# still limited by the step's noise?), each keeping four averages of G and carrying on the best (session 43: the EMA's
# warm-up ramp min(decay, (1+n)/(10+n)), counted from each part's start, held parts a and b's averages at ~0.991 by
# step 1,000 whatever ema_decay said — a short average for a row limited by its steps' noise; EMA_RAMP=false lifts it,
# EMA_SELECT scores 0.99 / 0.999 / 0.9995 beside 0.996 at every selection point, seconds each):
#   bash benchmarks/device/proof_scale_bundle.sh --evaluator benchmarks/results/proof_scale_h200_run15/evaluator \
#     --teacher-row benchmarks/results/proof_scale_h200_run28 --init-state benchmarks/results/proof_scale_h200_run42/state_b
#   bash benchmarks/device/proof_scale_bundle.sh aside benchmarks/results/proof_scale_h200_run42/run.sh
#   carry [".devdata/ps", ".devdata/ps_init"]; in ONE tool batch (timeout_s 150, 570, 570, 450): first
#   `PROBE=layout CALL=0 LIMIT=120` (the graph step at batch 256 in NCHW and in channels_last, TrainConfig.channels_last,
#   session 43; on the CPU NHWC ran the eager step 10x faster, 2.7 against 28.4 s at batch 8; on the GPU unmeasured), then
#   PICK=1 PART=c FROM=sid_carry_b LR=1e-5 EMA=0.996 EMA_RAMP=false EMA_SELECT=0.99/0.999/0.9995 AB=lr=3e-6 CALL=1 MAXS=540 \
#     bash benchmarks/results/proof_scale_h200_run42/run.sh
#   ... CALL=2 MAXS=540, then CALL=3 MAXS=420; commit $OUT's state_g*/ as state_c/. (PICK adds cuda_graph=true, and
#   channels_last=true when its graph step was >= 5 % faster and trained alike.)
#   Session 44 (no device) let the graph capture compiled blocks (TrainConfig.cuda_graph + compile_blocks in mode
#   default: the warm-up steps compile, the capture records inductor's fused kernels; on the CPU a replayed compiled step
#   equals the compiled eager step bit for bit). The kernels are now most of the graph step (287 ms at batch 256 for
#   ~14 TFLOP: ~49 TFLOP/s), and compiled blocks ran this UNet's kernels ~2.9x faster than eager ones (run 14's bench),
#   but a cold compile of the step took > 330 s on the GPU (session 41). A part after c measures it, at the batch c
#   chooses (BATCHES=that batch; the compile is per batch): `PROBE=layout+compile CALL=0 LIMIT=540` (timeout_s 560:
#   eager, graph, graph+nhwc, then graph+default last, so a
#   compile the limit cuts leaves the rest; torch's cache on the warm machine keeps what it compiled for the calls
#   after), then the same PICK=1 ... CALL=1 MAXS=540 and CALL=3 MAXS=440 (no CALL=2: the probe took its time). PICK then
#   also adds compile=true:compile_mode=default when graph+default was >= 5 % faster than the graph and trained alike.
#   PART c as planned in session 44 (replacing the lr A/B above): the A/B asks for the batch instead. Run 29 found batch
#   512 no better per step than 256, and run 13 lr 1e-4 and 1e-5 alike per step from the teacher: the row has moved
#   with its number of steps, not its samples. If that holds down to batch 64, whose graph step took 108 ms against
#   287 at 256 (session 42), a session makes 2.7x the steps. So: A = lr 1e-5 at batch 256 (part b's row, EMA 0.996),
#   B = the same at batch 64 with the EMA of the same half-life in samples (0.999; averages around it), compared per
#   step (val FD every 500 steps) and per GPU second; the lr question (3e-6) waits for the batch:
#   carry [".devdata/ps", ".devdata/ps_init"]; in ONE tool batch (timeout_s 170, 570, 570, 410):
#   `PROBE=layout BATCHES=256,64 CALL=0 LIMIT=150 bash benchmarks/results/proof_scale_h200_run42/run.sh`, then
#   PICK=1 PART=c FROM=sid_carry_b LR=1e-5 EMA=0.996 EMA_RAMP=false EMA_SELECT=0.99/0.999/0.9995 \
#     AB=batch=64:ema_decay=0.999:ema_select=0.996/0.9995/0.9998 CALL=1 MAXS=540 bash benchmarks/results/proof_scale_h200_run42/run.sh
#   ... CALL=2 MAXS=540, then CALL=3 MAXS=380; commit $OUT's state_g*/ as state_c/ (KEEP_STATE=best: the row with the
#   lower selection FD). PICK reads the rows at BATCH (256 here) only (graph, and channels_last when >= 5 % faster).
# PART c, as run in session 44: only CALL=3 (MAXS=470) on the one call the device gave; batch 64 moved the row as far per
# step as 256 (val 24.64 vs 24.51 at 500), row FD 22.34 = 2.59x; state_c/ = its G and psi at step 1,416.
# PART d, as run in session 45 (docs/benchmarks.md "session 45 run 42 part d"): from state_c, batch 64 ALONE, two calls in
# ONE tool batch (timeout_s 570, 520), carry [".devdata/ps", ".devdata/ps_init"]:
#   GRAPH=1 PART=d FROM=sid_carry_c LR=1e-5 BATCH=64 EMA=0.996 EMA_RAMP=false EMA_SELECT=0.99/0.999 CALL=1 MAXS=540 bash ...run.sh
#   ... the same with CALL=3 MAXS=470
# 118 ms per step, 7,322 steps; val FD 23.71 at 500 -> 19.57 at 6,500; row FD 18.29 = 2.12x; state_d/ at step 7,322.
# PART e (next session): the same row from state_d (--init-state .../state_d, FROM=sid_carry_d, PART=e), unchanged
# settings, three calls in ONE tool batch, the compiled graph step tried on the way (session 46, no device: run 14's
# bench ran this UNet's compiled kernels ~2.9x faster than eager ones, and the graph step is now mostly kernels, but a
# cold compile took > 330 s in the foreground, session 41). CALL=1 trains with the plain graph step while WARM=default
# compiles the blocks in the background (bench_proof_scale_train --teacher runs/ps/teacher.safetensors: the row's own
# shapes; on the CPU the row's next process then loaded all 28 compiled graphs from torch's cache); CALL=2 first
# measures eager / graph / graph+default with that cache warm (PROBE=warm PROBE_FIRST=1, LIMIT=150) and PICKs; CALL=3
# PICKs the same from the probe's table. The speed settings go to the pipeline's --speed, outside the row's name, so the
# three calls are one row whatever PICK chose:
#   carry [".devdata/ps", ".devdata/ps_init"]; timeout_s 570, 510, <left>:
#   WARM=default GRAPH=1 PART=e FROM=sid_carry_d LR=1e-5 BATCH=64 EMA=0.996 EMA_RAMP=false EMA_SELECT=0.99/0.999 CALL=1 MAXS=540 bash ...run.sh
#   PROBE=warm PROBE_FIRST=1 LIMIT=150 GRAPH=1 PART=e FROM=sid_carry_d LR=1e-5 BATCH=64 EMA=0.996 EMA_RAMP=false EMA_SELECT=0.99/0.999 CALL=2 MAXS=480 bash ...run.sh
#   PICK=1 GRAPH=1 PART=e FROM=sid_carry_d LR=1e-5 BATCH=64 EMA=0.996 EMA_RAMP=false EMA_SELECT=0.99/0.999 CALL=3 MAXS=<left minus ~60> bash ...run.sh
# If the compile failed, was slower or trained otherwise, PICK keeps the plain graph step and nothing but the probe's
# ~60-150 s is lost. Then copy $OUT's state_g*/ into state_e/, and warm_compile.log + the probe's table into the record.
# PART e, as run in session 47 (docs/benchmarks.md "session 47"): the device came after ~40 minutes of refusals with 1,334 s
# of budget, so two calls (timeout_s 570, 560): CALL=1 as above, then CALL=3 with PROBE=warm PROBE_FIRST=1 LIMIT=150
# MAXS=500 (no CALL=2). The background compile failed its CUDA-graph capture (every block variant was compiled again
# inside the capture: the warm-up steps autocast with the cast cache, the captured one without, and torch.compile
# guards on that — fixed in training/steps.py, tested on the CPU), so PICK kept the plain graph step (102 ms at batch 64
# in the probe, eager 253). 5,990 steps: val FD 19.87 at 500 -> 19.17 at 5,500 (EMA 0.999), row FD 17.78 = 2.06x;
# state_e/ at step 5,990. The row flattened: -0.5 row FD for 352 k samples where part d made -4.1 for 416 k.
# PART f (next session): what holds the row — its steps' noise, or its target? Part e is the control (lr 1e-5, kappa4 1.5:
# flat at val FD ~19.2-21). From state_e, side by side at batch 64 (one compile serves both: the same block variants):
# A = lr 3e-6 (noise: the released SD runs step 80x less per sample), B = kappa4 1.25 at lr 1e-5 (target: the split's
# kappa4 > 1 asks for a guided score that no one distribution has at every noise level; psi models G's own samples, so
# its carried state stays valid whatever kappa4). SWEEP scores the teacher at CFG 1 / 1.25 / 1.5 meanwhile (the 1.5 point
# should repeat run 28's 8.68): a lower kappa4 can only reach the teacher's FD where the teacher does at that scale.
#   bash benchmarks/device/proof_scale_bundle.sh --evaluator benchmarks/results/proof_scale_h200_run15/evaluator \
#     --teacher-row benchmarks/results/proof_scale_h200_run28 --init-state benchmarks/results/proof_scale_h200_run42/state_e
#   bash benchmarks/device/proof_scale_bundle.sh aside benchmarks/results/proof_scale_h200_run42/run.sh
#   carry [".devdata/ps", ".devdata/ps_init"]; in ONE tool batch (timeout_s 570, 510, <left>):
#   WARM=default SWEEP=1,1.25,1.5 GRAPH=1 PART=f FROM=sid_carry_e LR=3e-6 AB=lr=1e-5:kappa4=1.25 BATCH=64 EMA=0.996 EMA_RAMP=false EMA_SELECT=0.99/0.999 CALL=1 MAXS=540 bash ...run.sh
#   PROBE=warm PROBE_FIRST=1 LIMIT=150 GRAPH=1 PART=f ...the same without WARM and SWEEP... CALL=2 MAXS=480 bash ...run.sh
#   PICK=1 GRAPH=1 PART=f ...the same... CALL=3 MAXS=<left minus ~60> bash ...run.sh
# (with less budget: CALL=1, then CALL=3 with PROBE=warm PROBE_FIRST=1 LIMIT=150, as part e.) CALL=3 keeps the state of
# the row with the lower selection FD (AB sets KEEP_STATE=best): copy it into state_f/; teacher_sweep.json into the record.
# PART f, as run in session 48 (docs/benchmarks.md "session 48"): seven refused asks (~750 s of the budget) before an H100 came
# with 1,049 s left, so two calls (timeout_s 480, 440): CALL=1 MAXS=450 as above, then CALL=3 with PROBE=warm PROBE_FIRST=1
# LIMIT=120 MAXS=370. The background compile did not finish in its 410 s (niced, beside two rows and the sweep on the
# H100), the probe's cold compile was cut at 120 s, so PICK kept the plain graph step and CALL=3 trained ~200 s. Both
# rows were best at their first selection point (val FD 18.73 A, 18.95 B at step 500, below all of part e's 19.17-21.06)
# and worse after (19.40 / 19.32 at 1,500, EMA 0.999): row FD A 17.12 = 1.99x, B 17.43 = 2.02x; state_f/ = A's G (EMA
# 0.996 at step 500) and psi at step 1,911. SWEEP (2,000 samples each): the teacher's FD 14.31 / 10.54 / 9.03 at CFG
# 1 / 1.25 / 1.5 (recall 0.75 / 0.74 / 0.71): a lower kappa4 aims at a worse teacher, so kappa4 stays at 1.5.
# PART g (next session): is the floor the steps' noise? Part f's start from an average (the carried G is an EMA) gave the
# best val FD of every part at its first point, and both rows drifted back up after it, as parts d and e hovered at
# ~19.2-21 (part e's own start from an average showed no such dip: a reading to test); a longer average was better at
# every late point (EMA 0.999 below 0.99). If the noise holds the row, letting
# the lr fall to 0 keeps the start's gain and goes on; if not, it stalls like the control. From state_f, side by side:
# A = lr 3e-6 constant (control: part f's row carried on), B = the same with a cosine decay to 0 over 4,000 steps (a
# session of two calls on one H200 runs ~5,000 steps per row side by side). No WARM / probe: the background compile did not
# finish on a loaded machine twice; the plain graph step trains.
#   bash benchmarks/device/proof_scale_bundle.sh --evaluator benchmarks/results/proof_scale_h200_run15/evaluator \
#     --teacher-row benchmarks/results/proof_scale_h200_run28 --init-state benchmarks/results/proof_scale_h200_run42/state_f
#   bash benchmarks/device/proof_scale_bundle.sh aside benchmarks/results/proof_scale_h200_run42/run.sh
#   carry [".devdata/ps", ".devdata/ps_init"]; in ONE tool batch (timeout_s 570, <left>):
#   GRAPH=1 PART=g FROM=sid_carry_f LR=3e-6 AB=lr_decay=cosine:lr_floor=0:steps=4000 BATCH=64 EMA=0.996 EMA_RAMP=false EMA_SELECT=0.99/0.999 CALL=1 MAXS=540 bash ...run.sh
#   the same with CALL=3 MAXS=<left minus ~70> (with three calls' budget: CALL=2 MAXS=480 between them; with one
#   call's, CALL=3 alone: it installs what it needs on a fresh machine)
# then copy $OUT's state_g*/ into state_g/.
# PART g, as run in session 49 (docs/benchmarks.md "session 49"): the first ask got an H100; three calls (timeout_s 570,
# 540, 470) as above with CALL=2 MAXS=480 and CALL=3 MAXS=400. Both rows hovered at val FD ~19-20 from their first point
# (EMA 0.999: A 18.79-19.21, B 19.14-19.34); B's decay took G's gradient norm from 581 to 335 and left its SiD gap
# (0.0377 -> 0.0372) and its FD where they were: the plateau is a fixed point of the dynamics, not the steps' noise.
# A's one dip (val 18.03 at step 3,000, EMA 0.99) scored 16.62 = 1.93x (B 17.39); state_g/ = A's G there and psi at
# step 5,055.
# PART h (next session): does a psi that follows G more closely move the fixed point? The row's deficit is recall (0.49
# against the teacher's 0.68: mode loss), and psi's error is what biases G's gradient (y_real - y_fake). Two ways to a
# more accurate psi, side by side from state_g at lr 3e-6 (part g's A is the control: val 18.8-19.3 with EMA 0.999):
# A = batch 256 (psi's estimate from 4x the samples per step; the released SD runs use 512; parts c/run 29 found the
# batch did not matter per step only early, far from any plateau), B = batch 64 with fake_steps=5 (DMD2's two-time-
# scale rule: psi updated 5 times per G step; DMD2 needed it to train without a regression loss; part a tested
# fake_steps=2 only at lr 1e-4, where every row plateaued). Each step costs ~2-2.7x the control's.
#   bash benchmarks/device/proof_scale_bundle.sh --evaluator benchmarks/results/proof_scale_h200_run15/evaluator \
#     --teacher-row benchmarks/results/proof_scale_h200_run28 --init-state benchmarks/results/proof_scale_h200_run42/state_g
#   bash benchmarks/device/proof_scale_bundle.sh aside benchmarks/results/proof_scale_h200_run42/run.sh
#   carry [".devdata/ps", ".devdata/ps_init"]; in ONE tool batch (timeout_s 570, 540, <left minus ~30>):
#   GRAPH=1 PART=h FROM=sid_carry_g LR=3e-6 BATCH=256 AB=batch=64:fake_steps=5 EMA=0.996 EMA_RAMP=false EMA_SELECT=0.99/0.999 CALL=1 MAXS=540 bash ...run.sh
#   the same with CALL=2 MAXS=480, then CALL=3 MAXS=<timeout minus ~70> (with less budget: CALL=1, then CALL=3)
# then copy $OUT's state_g*/ into state_h/.
# After part h, if neither lever moves the plateau: the same row with precision=fp32 (float32, TF32 off: the released
# runs' arithmetic; benchmarks/probe_sid_precision.py found bf16's error in G's expected signal small, <= ~14 %).
# PART h, as run in session 50 (docs/benchmarks.md "session 50"): on an H100 (the H200 and a first H100 ask got none),
# timeout_s 540 / 480 / 430 with MAXS 510 / 420 / 360. Neither lever moved the fixed point: val FD 18.15-19.04 (A) and
# 18.52-19.19 (B) against the control's 18.8-19.9; rows 16.59 (A, kept as state_h/) and 16.87; psi's loss stayed at
# 32.2-32.6 either way (mostly denoising's irreducible noise; the unmoved FD is the evidence).
# PART i (next session): the guidance's timesteps. On an exact 2-D teacher (benchmarks/probe_sid_fixed_point.py,
# docs/benchmarks.md "session 50, CPU") every kappa4 = 1.5 setting ends at ~2/3 of the data's recall whatever its start,
# psi or alpha, and the guidance at t < 500 alone does all of it; kappa4 only at t >= 250 keeps most of the recall and
# some of the guidance's class accuracy. So from state_h at lr 1e-5 (parts b-e's lr: the new fixed point has to be
# reached, not polished), batch 64, two rows side by side, A = kappa4_t_min=250, B = kappa4_t_min=500:
#   bash benchmarks/device/proof_scale_bundle.sh --evaluator benchmarks/results/proof_scale_h200_run15/evaluator \
#     --teacher-row benchmarks/results/proof_scale_h200_run28 --init-state benchmarks/results/proof_scale_h200_run42/state_h
#   bash benchmarks/device/proof_scale_bundle.sh aside benchmarks/results/proof_scale_h200_run42/run.sh
#   carry [".devdata/ps", ".devdata/ps_init"]; in ONE tool batch (timeout_s 570, 540, <left minus ~30>):
#   GRAPH=1 PART=i FROM=sid_carry_h LR=1e-5 BATCH=64 BASE=kappa4_t_min=250 AB=kappa4_t_min=500 EMA=0.996 EMA_RAMP=false \
#     EMA_SELECT=0.99/0.999 CALL=1 MAXS=540 bash benchmarks/results/proof_scale_h200_run42/run.sh
#   the same with CALL=2 MAXS=480, then CALL=3 MAXS=<timeout minus ~70>; then copy $OUT's state_g*/ into state_i/.
# Read: val recall (the control sits at 0.52-0.54 with EMA 0.999) and FD against parts g/h's band (18.2-19.9); class
# accuracy will fall some (the guidance's share). If recall rises and FD falls, the next part runs the better bound longer.
# PART i, as run (session 51): five asks got no machine, then CALL=1 MAXS=420 and CALL=2 MAXS=385 on one H100 (kind
# nvidia-h100-x1); both calls stopped at their deadline (2,750 steps a row) and no budget was left for CALL=3, so neither
# row was scored and state_h/ stays the carried state. Val recall 0.52-0.54 and FD 18.0-19.1 (EMA 0.999) in both rows,
# as the control: the bound moved nothing in 176 k samples (docs/benchmarks.md "session 51 run 42 part i").
# PART j (session 52): the prompts-only live recall anchor (SidConfig.live_anchor_weight: phi's own CFG-1.5 Euler-25
# samples of 8 prompts per step, drawn in the loop; G regressed on them, the gradient at G's output rescaled to W x the
# SiD gradient's norm). On the toy with a teacher that needs its CFG (benchmarks/probe_sid_fixed_point.py --leak 0.2)
# W = 1 took the split from 0.54 to 0.44 (teacher 0.35), class acc 0.84 -> 0.89. From state_h at lr 1e-5, batch 64,
# A = W 1, B = W 2, bundle and aside as part i; carry [".devdata/ps", ".devdata/ps_init"], in ONE tool batch:
#   GRAPH=1 PART=j FROM=sid_carry_h LR=1e-5 BATCH=64 BASE=live_anchor=1:live_anchor_items=8:live_anchor_steps=25 \
#     AB=live_anchor=2 EMA=0.996 EMA_RAMP=false EMA_SELECT=0.99/0.999 CALL=1 MAXS=<timeout minus ~50> bash .../run.sh
#   then CALL=3 MAXS=<timeout minus ~70> (the scoring and the state export: the last call of the session).
#   A session with one call only: CALL=3 alone (SKIP_PIP installs where /tmp/site lacks the wheels; trains to the deadline,
#   scores, exports the state).
# PART j, as run (session 52): not run — fourteen asks got no machine (one H100 started and was taken back mid-call).
# PART j, as run (session 53): four asks got nothing (376 s), then CALL=1 MAXS=510 and CALL=3 MAXS=490 on one H100
# (timeout_s 560 each). Both rows stopped at their deadline (steps 1,770 / 1,773, 487 ms a step for the two side by
# side against part i's 249: the anchor's 8 x 25 x 2 teacher calls). W 1: val FD 18.64-18.83 (EMA 0.999), recall
# 0.50-0.52, test 18.15 (recall 0.460); W 2: val 19.30-20.18, 22.7-26.4 with the faster averages, test 18.08 (0.468).
# The anchor's MSE halved (0.04-0.09 -> ~0.03) while neither FD nor recall moved: records distill/j_w1, j_w2,
# call_j1.log, call_j3.log, logs/session53_*; row A's state (W 1, 1,770 steps into the anchor) kept as state_j/.
# PART k (session 53's plan): the toy from the split's end (probe_sid_fixed_point --rows anchor_live_after_split) is worse
# than its start for ~6,000 steps before the anchor pays (0.60 -> 0.92 at 2,000 -> 0.43 at 10,000), and with 8
# anchored items a step it ends barely below its start (0.57) where 32 or 64 reach 0.43. So: from state_j/ (W 1, 8
# items, 1,770 steps in), A = 32 anchored items, B = 64 (every prompt), W 1, carried across sessions whatever its FD
# does first. Bundle with --init-state benchmarks/results/proof_scale_h200_run42/state_j, aside as part j, then:
#   GRAPH=1 PART=k FROM=sid_carry_j LR=1e-5 BATCH=64 BASE=live_anchor=1:live_anchor_items=32:live_anchor_steps=25 \
#     AB=live_anchor_items=64 EMA=0.996 EMA_RAMP=false EMA_SELECT=0.99/0.999 CALL=1 MAXS=<timeout minus ~50> bash .../run.sh
#   then CALL=3 MAXS=<timeout minus ~70>; commit $OUT's state_g*/ as state_k/ even where its FD is above state_h's (the
#   next session goes on from it: FROM=sid_carry_k). Read: the anchor's MSE, val recall and FD against parts g-i's band.
# PART k, as run (session 53, the budget's last 302 s): CALL=3 MAXS=195 alone (timeout_s 245, one H100): set-up 50 s, the
# CUDA-graph capture and 56 / 65 steps (64 / 32 items) in 96 s, scored as they stood (test FD 18.94 / 18.95, recall
# 0.469 / 0.468: state_j's level); the call ran out while packing the records (call_k0.log). Its state (65 steps past
# state_j) was not kept: part k starts from state_j/ as planned.
# PART k, as run (session 54): ONE row, not the A/B pair (one row steps twice as often, and the toy's pay-off is
# ~6,000 steps away): CALL=1 MAXS=510, then CALL=3 MAXS=490 (timeout_s 560 each, one H100, in one tool batch), with
# BASE=live_anchor=1:live_anchor_items=32:live_anchor_steps=25 and no AB. 2,768 steps at 317 ms; val FD (EMA 0.99)
# 22.4 -> 18.8 and val recall 0.499 -> 0.531 over the five selection points; test 18.68, recall 0.492 (call_k1/k3.log,
# distill/k_a32). Its state is state_k/.
# PART l, as run (session 55): as planned, one tool batch on one H100 (CALL=1 MAXS=510, CALL=3 MAXS=490, timeout_s 560
# each): 2,669 steps; val FD (EMA 0.999) 18.44 -> 17.17, (EMA 0.99) 17.97 -> 16.66, val recall 0.537 -> 0.559, every
# average better at every selection point; test 16.56 (1.92x), recall 0.517 (call_l1/l3.log, distill/l_a32). Its state
# is state_l/.
# ANCHOR SWEEP, as run (session 55, the budget's last 250 s, one H100; the command is in docs/benchmarks.md "session 55"):
# the teacher at CFG 1.5 on 2,000 samples (seed 0), FD: Euler linspace 25 / 50: 10.19 / 9.15; DPM-Solver++(2M) on steps
# uniform in log sigma 8 / 12 / 16 / 25: 7.53 / 7.94 / 8.46 / 8.42; DPM++(2M) linspace 25: 8.47; Euler exponential 25:
# 9.40 (anchor_sweep_l/). The anchor's 25 Euler steps cost 3x the calls of 8 DPM++ steps and score worse.
# PART m (next): part l's row from state_l/ with the anchor's sampler switched to DPM++(2M), 8 exponential steps (a new
# row name; everything else as part l). Bundle with --init-state benchmarks/results/proof_scale_h200_run42/state_l, aside
# as part j, then (one tool batch, timeout_s 560 each):
#   GRAPH=1 PART=m FROM=sid_carry_l LR=1e-5 BATCH=64 \
#     BASE=live_anchor=1:live_anchor_items=32:live_anchor_steps=8:live_anchor_sampler=dpmpp_2m:live_anchor_spacing=exponential \
#     EMA=0.996 EMA_RAMP=false EMA_SELECT=0.99/0.999 CALL=1 MAXS=510 bash .../run.sh;  then CALL=3 MAXS=490
#   commit $OUT's state_g*/ as state_m/. Expect ~2x the steps of part l per call (the anchor was ~80 % of a step). The
#   anchor is out if val recall stops rising below ~0.58 or val FD (EMA 0.999) stalls above 17.
# PART m, as run (session 56): eleven asks refused over ~55 min (the budget 1,800 -> 1,004 s), then one H100 for two
# calls back to back (CALL=1 MAXS=460 after probe_group_norm, CALL=3 MAXS=375), and with the live GAN (new) beside it:
#   PART=m FROM=sid_carry_l LR=1e-5 BATCH=64 \
#     BASE=live_anchor=1:live_anchor_items=32:live_anchor_steps=8:live_anchor_sampler=dpmpp_2m:live_anchor_spacing=exponential:live_gan=0.3:live_gan_lr=1e-4:live_gan_start=300 \
#     AB=live_gan=0 EMA=0.996 EMA_RAMP=false EMA_SELECT=0.99/0.999 CALL=1 MAXS=460 bash .../run.sh
# — eager (the live GAN has no graph step; an A/B shares the speed settings): the anchor-only row 1,005 steps at ~705
# ms, val FD (EMA 0.99) 16.00 -> 15.89, test 15.72 (1.82x), recall 0.537 (distill/m_dpmpp8; its state is state_m/);
# the GAN row 885 steps, 16.60 at step 500 (distill/m_gan03; D ranked 0.82 before G heard it, 0.50 after).
# PART n: the anchor-only row from state_m/ in the graph step (both rows capturable), W 1 against W 2 — the fit
# over parts k-m (tools.fit_selection_curve) heads for 14.5 +- 0.4 at W 1; does a larger share move the level?
# Bundle with --init-state benchmarks/results/proof_scale_h200_run42/state_m, aside, then (one tool batch, timeout_s 560):
#   GRAPH=1 PART=n FROM=sid_carry_m LR=1e-5 BATCH=64 \
#     BASE=live_anchor=1:live_anchor_items=32:live_anchor_steps=8:live_anchor_sampler=dpmpp_2m:live_anchor_spacing=exponential \
#     AB=live_anchor=2 EMA=0.996 EMA_RAMP=false EMA_SELECT=0.99/0.999 CALL=1 MAXS=510 bash .../run.sh;  then CALL=3 MAXS=490
#   commit $OUT's state_g*/ as state_n/ (KEEP_STATE=best keeps the row with the lower selection FD).
# PART n, as run (session 57): as planned, one H100, two calls back to back (timeout_s 570): 2,001 steps each, ~430 ms
# a step for the pair; W 1: val FD (EMA 0.99) 15.42 -> 15.02, test 14.86 (1.73x), recall 0.547 (distill/n_w1; its
# state is state_n/); W 2 worse at every point (test 16.09; distill/n_w2). Fit over parts k-n: 13.83 +- 0.30.
# PART o: is it the recipe or the start? The SiD rows that reached the target (diffusion2gan_then_sid_lsg_*)
# went 1.66x -> 1.1x in 250 steps with batch 256, lr 3e-5 and an anchor at 0.25 on every item; this row moves ~0.4
# FD per 1,000 steps at batch 64, lr 1e-5, W 1 on 32 items. From state_n/: A = W 0.5 (one change), B = that recipe
# with the anchor kept live (data-free; 64 of the 256 items anchored). Bundle with --init-state .../state_n, aside,
# then (one tool batch, timeout_s 570 each):
#   GRAPH=1 PART=o FROM=sid_carry_n LR=1e-5 BATCH=64 \
#     BASE=live_anchor=0.5:live_anchor_items=32:live_anchor_steps=8:live_anchor_sampler=dpmpp_2m:live_anchor_spacing=exponential \
#     AB=batch=256:lr=3e-5:live_anchor=0.25:live_anchor_items=64 SELECT=250 EMA=0.996 EMA_RAMP=false EMA_SELECT=0.99/0.999 \
#     CALL=1 MAXS=510 bash .../run.sh;  then CALL=3 MAXS=490. B fast (val FD < 13 by its step 500) = the recipe: carry B on.
# PART o, as run (session 58, one H100, as planned): A (W 0.5) 1,910 steps, test 12.89 (1.50x), recall 0.572
# (distill/o_w05); B (the recipe, live) 880 steps, val 12.45 at its step 250 and flat after, test 12.26 (1.42x), recall
# 0.542, precision 0.686 (distill/o_b256; its state is state_o/). PART p, on the same warm machine with ps_init =
# state_o/: BATCH=256 LR=3e-5 W 0.25 against W 0.1 — two batch-256 rows do not fit an H100 (W 0.25 died of OOM); W 0.1
# val 11.95 at 250, 12.35 at 500, precision 0.70-0.71, recall 0.57 (distill/p_w01, unscored).
# PART q (next): SiD's guidance lowered while the anchor keeps the CFG-1.5 sampler (SidConfig.live_anchor_cfg, new):
# every part-o row ends more precise and less recalled than the teacher; on the toy (session 58) κ4 1.25 and 1 with the
# anchor at 1.5 end at energy 0.23 / 0.16 against 0.44 at κ4 1.5. From state_o/, both rows batch 256 as 2 micro-batches
# of 128 (plan key grad_accumulation, new: two rows fit an H100), 32 anchored items per micro-batch (= part o's 64):
# bundle with --init-state benchmarks/results/proof_scale_h200_run42/state_o, aside, then (one tool batch, timeout_s 570):
#   GRAPH=1 PART=q FROM=sid_carry_o LR=3e-5 BATCH=256 \
#     BASE=grad_accumulation=2:live_anchor=0.25:live_anchor_items=32:live_anchor_steps=8:live_anchor_sampler=dpmpp_2m:live_anchor_spacing=exponential:kappa4=1.25:live_anchor_cfg=1.5 \
#     AB=kappa4=1 SELECT=250 EMA=0.996 EMA_RAMP=false EMA_SELECT=0.99/0.999 CALL=1 MAXS=510 bash .../run.sh;  then CALL=3 MAXS=490
#   commit $OUT's state_g*/ as state_q/. Part o's B (κ4 1.5) is the control: val 12.4-12.5 from its step 250 to 750,
#   precision 0.68, recall 0.58-0.59. Lower κ4 works if val recall rises above 0.60 with val FD below 12.4.
# PART q, as run (session 59, one H100, as planned): κ4 1.25 779 steps, κ4 1 850; peak 15.8 / 12.0 GiB allocated (two
# batch-256 rows as 2 micro-batches fit an H100). Both selected step 250 at EMA 0.999 (78 % state_o's weights): test
# 12.24 / 12.47 (the control 12.26); the faster averages worse than the control's at every point (12.7-13.4 / 13.6-15.5),
# val recall +0.01-0.04, class accuracy 0.917-0.922 / 0.897-0.905 against ~0.93 (distill/q_kappa4_125, q_kappa4_1; no
# state kept). The toy with the GPU's anchored share (1 item in 4, --anchor-share 4, session 59) shows the same: lower κ4
# costs 2.4 / 8.3 class points there against 1.1 / 4.3 with every item anchored (session 58's rows).
# PART r (as planned, then run in session 60): every item anchored (the toy's setting that kept the classes), κ4 1.5 against 1.25, from state_o/;
# 4 micro-batches of 64, each all anchored (guessed, not measured: the anchor's G pass on 128 items per micro-batch may not fit two rows):
# bundle with --init-state benchmarks/results/proof_scale_h200_run42/state_o (or keep session 58's .devdata), aside, then:
#   GRAPH=1 PART=r FROM=sid_carry_o LR=3e-5 BATCH=256 \
#     BASE=grad_accumulation=4:live_anchor=0.25:live_anchor_items=64:live_anchor_steps=8:live_anchor_sampler=dpmpp_2m:live_anchor_spacing=exponential:live_anchor_cfg=1.5 \
#     AB=kappa4=1.25 SELECT=250 EMA=0.996 EMA_RAMP=false EMA_SELECT=0.99/0.999 CALL=1 MAXS=510 bash .../run.sh;  then CALL=3 MAXS=490
#   Works if a row's EMA 0.99 / 0.996 val FD is below 12.3 at 500 or 750 with val class accuracy >= 0.93 (part o's B:
#   12.4-12.5, 0.93). Read the step time first: the anchor's teacher calls are 4x part o's.
# PART r, as run (session 60, one H100, as planned with CALL=3 MAXS=540 timeout_s 600): 473 / 472 steps at 1.95 s a
# step for the two rows side by side (part q's: ~1.07 s), peak 8.2 GiB allocated / 24.5 reserved each, so the 500 point
# was not reached. At 250, EMA 0.999 / 0.996 / 0.99: κ4 1.5 12.51 / 12.94 / 13.22 (class acc 0.933-0.935), κ4 1.25
# 12.68 / 13.36 / 14.09 (0.923-0.932) against part q's one-in-four κ4 1.25 12.40 / 12.73 / 12.95: anchoring every item
# at W 0.25 is worse, though G's MSE to the anchor is lower (0.022-0.024 against 0.026-0.029). Test (step 250, EMA
# 0.999) 12.39 / 12.54 (distill/r_all_anchored, r_all_anchored_kappa4_125; no state kept: state_o/ stays the carry point).
# The anchor line (parts o-r: weight, share, guidance under it) settles at 12.3-12.6 val FD whatever is changed.
# PART s (next): the live GAN with a D that leads long enough: G and ψ held for 1,000 steps while D trains on 64 live
# pairs a step (SidConfig.live_gan_hold, new in session 60), then G hears D at 0.1 of SiD's norm beside the W 0.25
# anchor. One row from state_o/, in one session (D is not carried). Session 61 (no device) made the live GAN's steps
# capturable (D's draws are phase draws; the lead, the R1 steps and G hearing D each get their own capture, tested equal
# to the eager steps on the CPU, never yet run on a GPU): try GRAPH=1 first; if CALL=1 stops at a capture error, run the
# same calls without GRAPH (eager, as planned before). Session 61 also let SiD rows set the live GAN's D as the
# Diffusion2GAN rows do: part s takes issue 14's best D, t <= 100 (d_t_max) with a minibatch std of 4 (d_mbstd: D sees how
# varied each group of 4 samples is, and recall is the data-free row's gap); part m's D read t <= 499 without it.
#   GRAPH=1 PART=s FROM=sid_carry_o LR=3e-5 BATCH=256 \
#     BASE=grad_accumulation=2:live_anchor=0.25:live_anchor_items=32:live_anchor_steps=8:live_anchor_sampler=dpmpp_2m:live_anchor_spacing=exponential:live_anchor_cfg=1.5:live_gan=0.1:live_gan_lr=1e-4:live_gan_start=1000:live_gan_hold=true:d_t_max=100:d_mbstd=4 \
#     SELECT=250 EMA=0.996 EMA_RAMP=false EMA_SELECT=0.99/0.999 CALL=1 MAXS=510 bash .../run.sh;  then CALL=3 (and more calls)
#   Read first: the lead's step time (unmeasured) and D's d_rank_acc over the lead (part m's D: 0.82 after 300 steps).
#   The selection points inside the lead score state_o again (G held). Works if, once G hears D, val FD goes below 12.3
#   (EMA 0.99 / 0.996) with class acc >= 0.93 while d_rank_acc stays above ~0.6.
# PART s, as run in session 62 (docs/benchmarks.md "session 62"): the command above as CALL=1 MAXS=510, CALL=2 MAXS=510,
# CALL=3 MAXS=300, all with GRAPH=1 (no capture error) on one H100. D led well (d_rank_acc 0.98 at 1,000); within 200
# steps of G hearing it D was fooled (0.42-0.55), then swung 0.48-1.0; val FD 12.5-13.6 at every point after 1,000.
# The row scored its lead point (state_o's weights): 12.12. No state kept (state_o/ stays the carry point).
# PART t, as run in session 62: SiD's alpha 1.2 from state_o, one call: `GRAPH=1 PART=t FROM=sid_carry_o LR=3e-5
# BATCH=256 BASE=<part o's keys, no live GAN>:alpha=1.2 SELECT=250 EMA=0.996 EMA_RAMP=false EMA_SELECT=0.99/0.999
# CALL=3 MAXS=300 KEEP=none KEEP_STATE=none`: val FD 12.42 (EMA 0.999) at 250, as parts q and r; scored 12.28.
# The live GAN again (a later part, eager): D led for 300 steps on 32 pairs a step and was fooled within 100 steps of G
# hearing it; next try lets D lead 1,000 steps on every item (live_anchor_items=64) at a smaller share (live_gan=0.1).
# ANCHOR_SWEEP=1 (CALL=1) re-runs the sweep in the background of a training call.
SPEED_LOG=${SPEED_LOG:-/tmp/sid_speed_call0.log}  # the probe's table (the machine's /tmp: the calls after read it)
# probe: the SiD step's speed in the modes PROBE names (bench_proof_scale_train), its table kept in /tmp for PICK. With the
# work folder's teacher once a call has imported it (its weights and context table: the row's own shapes, so a compile
# measured here is the one the row's calls find in torch's cache on this machine).
probe() {
  PYTHONPATH=/tmp/site python3 -c "import kornia, diffusers" 2>/dev/null \
    || python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .devdata/ps/whl/*.whl || exit 9
  if [ "${PROBE:-graph}" = layout ]; then  # the graph step in NCHW and in channels_last (TrainConfig.channels_last); the
    # eager step only as PICK's reference for "trains alike" (no eager+nhwc: two batches' rows fit the call's limit)
    MODES="--batches ${BATCHES:-256} --steps 24 --warmup 8 --modes eager,graph,graph+nhwc"
  elif [ "${PROBE:-graph}" = layout+compile ]; then  # ... and with compiled blocks in the graph, last (a cold compile:
    # minutes; torch's cache on this machine keeps it for the training calls after, and a cut compile leaves the rest)
    MODES="--batches ${BATCHES:-256} --steps 24 --warmup 8 --modes eager,graph,graph+nhwc,graph+default"
  elif [ "${PROBE:-graph}" = warm ]; then  # after CALL=1's WARM: the graph step plain and with the blocks compiled, whose
    # compile the background job left in torch's cache (a warm compile: tens of seconds)
    MODES="--batches ${BATCHES:-${BATCH:-256}} --steps 24 --warmup 8 --modes eager,graph,graph+${WARM:-default}"
  elif [ "${PROBE:-graph}" = compile ]; then
    MODES="--batches ${BATCHES:-64} --steps 30 --warmup 10 --compile --compile-modes default,reduce-overhead --profile 3"
  else  # no profiler: a replayed graph under CUPTI is not what this call should risk
    MODES="--batches ${BATCHES:-256,64} --steps 24 --warmup 8 --graph"
  fi
  TEACHER=runs/ps/teacher.safetensors
  PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 timeout "${LIMIT:-540}" python3 -m benchmarks.bench_proof_scale_train --rows sid_lsg_teacher_cfg \
    $MODES $([ -f $TEACHER ] && echo --teacher $TEACHER) --json "${OUT:-.}/sid_speed.json" 2>&1 | tee "$SPEED_LOG" | grep "^|\|Error\|error" | tail -40
}
if [ "${CALL:-1}" = 0 ]; then probe; exit 0; fi
# PROBE_FIRST=1 (a training call): the probe first, inside this call (its seconds come off MAXS), then PICK from it
[ -n "$PROBE_FIRST" ] && { probe; PICK=1; }
# PICK=1 (a call after the probe on the same warm machine, all issued in one tool batch), from the probe's table (kept
# in the machine's /tmp): GRAPH=1 when the graph step ran, beat the eager one and trained alike (the graph rows read are
# those at the row's batch: BATCH, default 256); a table without them (a failed probe) leaves the call's own settings.
# (Part a's PICK for PROBE=compile, which also chose the batch, is in git at its commit: a failed probe must not change
# a running row's batch, which names the row.)
if [ -n "$PICK" ] && [ -f "$SPEED_LOG" ] && grep -q "^| sid_lsg_teacher_cfg graph | ${BATCH:-256} |" "$SPEED_LOG"; then
  # ... and only when its last timed step's fake-score loss is within 25 % of the eager row's (same seed, same draws: a
  # graph replaying stale inputs would not train alike). Of the graph's variants the probe measured (graph+nhwc,
  # graph+default, graph+default+nhwc: channels_last, compiled blocks), the fastest that trains alike and is at least
  # 5 % faster than the plain graph step is taken: NHWC=1 and/or COMPILE_MODE=its compile mode.
  eval "$(awk -F'|' -v batch="${BATCH:-256}" 'function alike(k) { return (k in f) && f[k] - f["eager"] <= 0.25 * f["eager"] && f["eager"] - f[k] <= 0.25 * f["eager"] }
    $3 + 0 == batch && $4 ~ /ms\/step/ { split($2, n, " "); m[n[2]] = $4 + 0
                      if (match($4, /fake_score [-0-9.e+]+/)) f[n[2]] = substr($4, RSTART + 11, RLENGTH - 11) + 0 }
    END { if (("graph" in m) && ("eager" in m) && m["graph"] < m["eager"] && ("eager" in f) && alike("graph")) {
            best = "graph"
            for (k in m) if (k ~ /^graph\+/ && alike(k) && m[k] < 0.95 * m["graph"] && m[k] < m[best]) best = k
            print "GRAPH=1"
            if (best ~ /\+nhwc$/) print "NHWC=1"
            split(best, part, "+"); if ((2 in part) && part[2] != "nhwc") print "COMPILE_MODE=" part[2] } }' "$SPEED_LOG")"
  if [ -n "$GRAPH" ]; then echo "PICK: cuda_graph=true${NHWC:+, channels_last=true}${COMPILE_MODE:+, compiled blocks ($COMPILE_MODE)}"
  else echo "PICK: eager (the graph step failed, was slower or trained otherwise)"; fi
elif [ -n "$PICK" ]; then echo "PICK: no graph row at batch ${BATCH:-256} in $SPEED_LOG: the call's own settings"
fi
# COMPILE=1 compiles the UNet blocks (COMPILE_MODE: that torch.compile mode; PICK sets it)
# EMA_SELECT=D1/D2/...: those averages kept beside EMA's and scored at each selection point (the best is exported and
# carried on); EMA_RAMP=false: every average at its decay from the first step (the ramp capped parts a and b, below)
S="lr=${LR:-1e-4}:lr_warmup=50:lr_decay=constant:steps=20000:batch=${BATCH:-256}:ema_decay=${EMA:-0.99}"
S="$S${EMA_RAMP:+:ema_ramp=$EMA_RAMP}${EMA_SELECT:+:ema_select=$EMA_SELECT}"
S="$S${BASE:+:$BASE}"  # BASE=SETTINGS: more of the row's own settings (part i: kappa4_t_min=250; AB's same key wins in B)
# how the row trains, not what (compiled blocks, the CUDA-graph step, NHWC): the pipeline's --speed, outside the row's
# name since part e, so the calls of a part may differ in it (PICK after a warmed compile) and resume each other
# (parts a-d had them in the row's name: their commands above ran with this script as git has it at their commits)
SPEED="${COMPILE:+compile=true:}${COMPILE_MODE:+compile=true:compile_mode=$COMPILE_MODE:}${GRAPH:+cuda_graph=true:}${NHWC:+channels_last=true:}"
SPEED=${SPEED%:}
: "${PART:?PART=a for the first session, b, c, ... after}"
ROW="sid_lsg_teacher_cfg@${FROM:+init_from=$FROM:}$S"
export VARIANTS="$ROW" SELECT=${SELECT:-500} EXTRA="${SPEED:+--speed $SPEED}"
echo "ROW: $ROW${SPEED:+ (this call: --speed $SPEED)}"
# AB=SETTINGS: beside it, the same row with SETTINGS changed (part a: fake_steps=2 — ψ twice per G step, DMD2's
# two-time-scale rule; part b: lr=1e-5), the two side by side on the one GPU (a host-bound step leaves it idle most of
# the time); CALL=3 then keeps the weights and state of the row with the lower selection FD only (KEEP=best: both rows'
# are over what a call brings back)
[ -n "$AB" ] && VARIANTS="$ROW;$ROW:$AB" EXTRA="$EXTRA --rows-per-gpu 2" KEEP=${KEEP:-best} KEEP_STATE=${KEEP_STATE:-best}
# the background jobs below wait (up to 300 s) for the call's wheels in /tmp/site, and for the file $1 when given
wait_installed() {
  for _ in $(seq 150); do
    { [ -z "$1" ] || [ -f "$1" ]; } && PYTHONPATH=/tmp/site python3 -c "import kornia, diffusers" 2>/dev/null && return
    sleep 2
  done
}
# WARM=MODE (CALL=1): while the row trains, a background job compiles the graph step's blocks in that torch.compile mode
# (bench_proof_scale_train at the row's batch on the work folder's teacher, niced, on part of the cores), so torch's cache
# on this machine holds them when a later call of the session probes them (PROBE=warm PROBE_FIRST=1) — a cold compile
# took > 330 s of the GPU's time when it ran in the foreground (session 41). Its table: warm_compile.log in $OUT.
if [ -n "$WARM" ] && [ "${CALL:-1}" = 1 ]; then
  ( wait_installed runs/ps/teacher.safetensors
    PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 TORCHINDUCTOR_COMPILE_THREADS=${WARM_THREADS:-10} exec timeout $(( ${MAXS:-530} - 40 )) \
      nice -n 10 python3 -m benchmarks.bench_proof_scale_train --rows sid_lsg_teacher_cfg --batches "${BATCH:-256}" --modes "graph+$WARM" \
      --steps 12 --warmup 10 --teacher runs/ps/teacher.safetensors ) > /tmp/warm_compile.log 2>&1 &
  WARM_PID=$!
fi
# SWEEP=CFG,CFG,... (CALL=1, or the one call of a short session): the teacher's 50-step Euler samples at those CFG
# scales (2,000 each, the sweep seed of run 28's, whose CFG 1.5 point scored 8.68), in a work folder of its own, in the
# background on the GPU while the rows train.
# Why: the LSG split's kappa4 > 1 asks G for the guided score at every noise level, which no one distribution has, and
# which is not what the teacher's CFG sampler draws from; if the teacher scores as well at a lower scale, a lower kappa4
# has a target the student can reach. Its records come back as teacher_sweep.json and teacher_sweep.log.
if [ -n "$SWEEP" ]; then  # any call: a session with one call left runs it beside CALL=3
  ( wait_installed
    mkdir -p runs/sweep && cp .devdata/ps/evaluator/classifier.* runs/sweep/
    PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 exec timeout $(( ${MAXS:-530} - 40 )) python3 -m proof_scale.pipeline --work runs/sweep \
      --stage teacher,teacher-eval --data .devdata/ps/fm --context .devdata/ps/context.safetensors \
      --teacher-import default_models/proof_scale/fmnist-teacher.safetensors --sweep-steps 50 --sweep-cfg "$SWEEP" \
      --sweep-count 2000 --teacher-seeds 1 --eval-count 2000 ) > /tmp/teacher_sweep.log 2>&1 &
  SWEEP_PID=$!
fi
# ANCHOR_SWEEP=1 (CALL=1): the live anchor's candidate teacher samplers on 2,000 samples each at CFG 1.5, in the
# background on the GPU once the work folder's teacher is imported: Euler (= the anchor's DDIM) on DDIM's linspace at 25
# and 50 steps (the reference, run 4's 10.42 / 9.19), DPM-Solver++(2M) on steps uniform in log sigma at 8 / 12 / 16 / 25
# and on linspace at 25 (Heun-13 on linspace scored 21.9 in run 13: a second-order sampler is measured here, not
# assumed). Records: anchor_sweep_*.json and anchor_sweep.log.
if [ -n "$ANCHOR_SWEEP" ]; then
  ( wait_installed runs/ps/teacher.safetensors
    for spec in "euler linspace 25,50" "dpmpp_2m exponential 8,12,16,25" "dpmpp_2m linspace 25"; do
      set -- $spec
      PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 timeout 150 python3 -m proof_scale.cli --data .devdata/ps/fm sweep-teacher \
        runs/ps/teacher.safetensors --sampler "$1" --spacing "$2" --steps "$3" --cfg 1.5 --count 2000 --batch 2000 \
        --classifier runs/ps/classifier.safetensors --reference-cache /tmp/anchor_sweep_ref.safetensors \
        --json "${OUT:-.}/anchor_sweep_$1_$2.json"
    done ) > /tmp/anchor_sweep.log 2>&1 &
  ANCHOR_SWEEP_PID=$!
fi
MAXS_LEFT=$(( ${MAXS:-530} - SECONDS ))  # a probe in this call (PROBE_FIRST) took its seconds
case "${CALL:-1}" in
  1) MAXS=$MAXS_LEFT MARGIN=${MARGIN:-30} bash benchmarks/device/proof_scale_run.sh ;;
  2) MAXS=$MAXS_LEFT MARGIN=${MARGIN:-30} SKIP_PIP=1 bash benchmarks/device/proof_scale_run.sh ;;
  *) MAXS=$(( ${MAXS:-500} - SECONDS )) MARGIN=${MARGIN:-30} SKIP_PIP=1 FINISH=1 KEEP=${KEEP:-variants} KEEP_STATE=${KEEP_STATE:-variants}:sid_carry_$PART \
       bash benchmarks/device/proof_scale_run.sh ;;
esac
if [ -n "$SWEEP_PID" ]; then
  wait "$SWEEP_PID" 2>/dev/null  # its timeout ends it before the call's deadline
  echo "SWEEP (teacher, 50 Euler steps, 2,000 samples per CFG):"; grep "teacher-eval: steps" /tmp/teacher_sweep.log | sed 's/.*teacher-eval: //'
  cp /tmp/teacher_sweep.log "${OUT:-.}/teacher_sweep.log" 2>/dev/null
  for f in runs/sweep/teacher_eval.partial.json runs/sweep/teacher_eval.json; do  # the finished record wins
    [ -f "$f" ] && cp "$f" "${OUT:-.}/teacher_sweep.json"; done
fi
if [ -n "$ANCHOR_SWEEP_PID" ]; then
  wait "$ANCHOR_SWEEP_PID" 2>/dev/null
  echo "ANCHOR_SWEEP (teacher at CFG 1.5, 2,000 samples each):"; grep "steps [0-9]* cfg" /tmp/anchor_sweep.log
  cp /tmp/anchor_sweep.log "${OUT:-.}/anchor_sweep.log" 2>/dev/null
fi
if [ -n "$WARM_PID" ]; then
  kill "$WARM_PID" 2>/dev/null; wait "$WARM_PID" 2>/dev/null
  echo "WARM (background compile, graph+$WARM at batch ${BATCH:-256}):"; grep "^|\|Error\|error" /tmp/warm_compile.log | tail -8
  cp /tmp/warm_compile.log "${OUT:-.}/warm_compile.log" 2>/dev/null
fi
