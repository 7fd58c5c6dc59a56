#!/bin/bash
# Plan for the next GPU session (written in session 25): issue 16's last 0.8 %. Run 27 continued the shipped student
# (run 17's step 1,250) at G 1e-5 / psi 3e-5 constant: val FD 9.29 / 9.46 / 9.43 (from ~8.87), scored 9.14 on the GPU
# (the shipped student there: 8.72); sid_gap (mean |x0_phi - x0_psi|, what G's gradient is made of) sat at ~0.06 as in
# run 17's first 500 steps at lr 3e-5, where run 17's selected point had ~0.033 with its cosine lr at ~5e-6. So the
# student's best point is a low-lr point and psi's lr sets the noise: continue at the lr run 17 had there, and below.
#   A  G and psi at 5e-6 constant (run 17's cosine at step 1,250), 500 steps
#   B  G and psi at 2e-6 constant, 500 steps
# Both: LSG split, recall anchor 0.25 (MSE), batch 256, EMA 0.99, 25 warm-up steps, selection every 125 steps (val seed
# 2,000,000; the scoring seeds stay 1,000,000 / 1,000,001). Compare with run 17's val 8.97 / 8.87 / 9.10 at 1,000-1,500.
# Also (CALL=2 first, ~3-5 min): benchmarks.student_diagnosis on the GPU, float32, 10,000 samples on each scoring seed
# 1,000,000-1,000,002 — the teacher (Euler 50, CFG 1.5) and the shipped student (.devdata/ps_init's weights): the teacher's FD in
# float32 (its row is bf16 autocast; the shipped student's 8.543 is CPU fp32 — same noise, so the difference is
# precision alone), its FD split into mean and covariance terms without the few-hundred-sample bias of the CPU
# readings (issue 14's open question: whose class means sit where), and the student read against it pair by pair.
# Speed, read besides (session 26): the training steps' CPU-drawn noise, timesteps and masks now reach the GPU by
# non-blocking copies from pinned memory (training/host_to_device.py) instead of ~10 blocking copies a step, each of
# which drained the GPU's queue; same numbers. Run 27's rows took 0.60-0.73 s a step at this batch: the calls' "ms/step"
# lines say what that changed.
# Here first:
#   bash benchmarks/device/proof_scale_bundle.sh --evaluator benchmarks/results/proof_scale_h200_run15/evaluator \
#     --teacher-row benchmarks/results/proof_scale_h200_run18 --init default_models/proof_scale/fmnist-student.safetensors
#   bash benchmarks/device/proof_scale_bundle.sh aside benchmarks/results/proof_scale_h200_run28/run.sh
# carry [".devdata/ps", ".devdata/ps_init"]; CALL=1, 2, 3 chained within the machine's 30 s idle release (afterwards
# proof_scale_bundle.sh restore). Cost (run 27: pairs 265 s, 0.60-0.73 s a step): 265 + 2 x 500 x 0.65 + selection 8 x ~10
# + the diagnosis ~200 + ~25 s a call to start ~= 1,300 s. KEEP=<tag> brings a row's weights back; CPU-score them on seeds
# 1,000,000-1,000,002 (benchmarks.score_generator --weights A B --seeds 1000000,1000001,1000002) and ship by
# tools.ship_proof_scale only below 8.543 (the shipped student on the same seeds; teacher 8.472).
S='init_from=diffusion2gan:lr_d_ratio=1:lr_warmup=25:lr_decay=constant:steps=500:batch=256:ema_decay=0.99:anchor=0.25:regression=mse'
export VARIANTS="sid_lsg_teacher_cfg@$S:lr=5e-6;sid_lsg_teacher_cfg@$S:lr=2e-6" SELECT=125
diagnosis() {  # into the work folder: records.tgz brings it back; the three scoring seeds, so both sides of 8.543 / 8.472 are float32
  for seed in 1000000 1000001 1000002; do
    PYTHONPATH=/tmp/site:$PWD python3 -m benchmarks.student_diagnosis --device cuda --count 10000 --teacher-count 10000 --batch 2000 --seed $seed \
      --weights shipped=.devdata/ps_init/best.safetensors --teacher default_models/proof_scale/fmnist-teacher.safetensors \
      --context .devdata/ps/context.safetensors --classifier .devdata/ps/evaluator/classifier.safetensors --data .devdata/ps/fm \
      --json runs/ps/diagnosis_10k_fp32_$seed.json > runs/ps/diagnosis_10k_fp32_$seed.log 2>&1  # no pipe: the JSON is written after the tables
    head -n 6 runs/ps/diagnosis_10k_fp32_$seed.log
  done
}
case "${CALL:-1}" in
  1) MAXS=540 bash benchmarks/device/proof_scale_run.sh ;;
  2) t0=$SECONDS; diagnosis; MAXS=$((540 - SECONDS + t0)) SKIP_PIP=1 bash benchmarks/device/proof_scale_run.sh ;;
  *) MAXS=${MAXS:-550} MARGIN=${MARGIN:-45} SKIP_PIP=1 KEEP=${KEEP:-} bash benchmarks/device/proof_scale_run.sh ;;
esac
