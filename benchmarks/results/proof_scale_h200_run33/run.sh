#!/bin/bash
# Plan for a later GPU session (written in session 31): issue 14, after run 32 found that a D calling real training images
# real gives the best 750-step Diffusion2GAN row (12.62 against 13.30 with the teacher's outputs), with D's margin growing
# and the row's FD rising again after step 500. Two questions, one row per call (each call complete on its own: pairs
# ~255 s + 750 steps ~230 s + scoring; MAXS 540 leaves room for packing records and weights before 600 s):
#   ROW=1  DG1: run 32's DATA at gan_weight 1 — with D pointing at the data, does a larger GAN share help (it did not
#          with the teacher-output D: runs 22, 26)?
#   ROW=2  DH4: run 32's DATA on the first 4,000 training images instead of 8,000 — if it does worse or turns earlier,
#          D over-fitting its real images is what turned run 32's row, and more images (room in the call: see
#          proof_scale_bundle.sh --train-head) are the lever; if not, D's strength is.
#   ROW=3  DG1 continued (session 32): ROW 1 ended still falling (val 14.84 / 11.46 / 10.41), so its weights run on for up to
#          1,000 steps (deadline-ended) on 40,000 pairs (~130 s of pairs instead of ~250). Its init bundle:
#            bash benchmarks/device/proof_scale_bundle.sh --train-head 8000 --evaluator benchmarks/results/proof_scale_h200_run15/evaluator \
#              --teacher-row benchmarks/results/proof_scale_h200_run28 --init-weights "K/best_gdcad45_a.safetensors K/best_gdcad45_b.safetensors" \
#              --init-result K/rec/runs/ps/distill/diffusion2gan__*cc8af971d69e/result.json    (K: where call 1's files were copied)
# Then (third call) the better of them for longer (steps up to ~1,000 fit one call), or from its KEEP weights.
# Here first (the bundle of run 32):
#   git show 803a5b5:default_models/proof_scale/fmnist-student.safetensors > /tmp/run10.safetensors
#   bash benchmarks/device/proof_scale_bundle.sh --train-head 8000 --evaluator benchmarks/results/proof_scale_h200_run15/evaluator \
#     --teacher-row benchmarks/results/proof_scale_h200_run28 --init /tmp/run10.safetensors
#   bash benchmarks/device/proof_scale_bundle.sh aside benchmarks/results/proof_scale_h200_run33/run.sh
# carry [".devdata/ps", ".devdata/ps_init"], command `ROW=1 bash benchmarks/results/proof_scale_h200_run33/run.sh`, then
# ROW=2; copy each call's best_*.safetensors out of /work/.device at once; afterwards proof_scale_bundle.sh restore.
G='regression=latentlpips:lr_warmup=100:gan_warmup=200:d_lead=200:gan_ramp=300:lr_d_ratio=5:mix_and_match=false:lr_d_schedule=constant:d_beta2=0.99'
C="diffusion2gan@init_from=diffusion2gan:$G:lr=3e-5:lr_decay=constant:steps=750:batch=512:r1_gamma=0:d_t_max=100:d_mbstd=4:d_real=images:z_conditioning=false"
case "${ROW:-1}" in
  1) export VARIANTS="$C:gan_weight=1"; TAG=gdcad45 ;;
  2) export VARIANTS="$C:gan_weight=0.5:d_real_limit=4000"; TAG=g3729b3 ;;
  # ROW 1's student (KEEP gdcad45, packed as the init: see ROW 3 below) run on with a fresh D: D leads 100 steps while G's
  # lr warms up, the GAN term reaches G at step 100 over a 50-step ramp (ROW 1 spent 200 steps on regression alone).
  3) export VARIANTS="$C:gan_weight=1:gan_warmup=100:d_lead=100:gan_ramp=50:steps=1000"; TAG=variants
     export PAIRS=${PAIRS:-40000} SELECT=${SELECT:-200} ;;
  *) echo "ROW must be 1, 2 or 3"; exit 2 ;;
esac
MAXS=${MAXS:-540} MARGIN=${MARGIN:-25} KEEP=${KEEP:-$TAG} bash benchmarks/device/proof_scale_run.sh
# As run (session 32, one H200): ROW=1 → DG1 (distill/cc8af971d69e): val 14.84 / 11.46 / 10.41 at 250 / 500 / 750, 10 k
# 10.62 (10.44 / 10.81) at step 750 = 1.23×, 556 s. ROW=3 (its weights, KEEP gdcad45, as the init; distill/4ffa46d7f69e):
# val 12.05 / 10.00 / 10.17 / 9.77 at 200 / 400 / 600 / 800, stopped by the deadline at 916 before scoring (579 s); its
# kept weights (gd5c924, step 800) scored on the GPU in a short call (carry [".devdata/score"]: the two halves, the context
# table, the evaluator's classifier, the test split and the diffusers wheel):
#   python3 -m benchmarks.score_generator --weights S/best_gd5c924_a.safetensors S/best_gd5c924_b.safetensors \
#     --teacher default_models/proof_scale/fmnist-teacher.safetensors --context S/context.safetensors --classifier S/classifier.safetensors --data S/fm
# → 9.58 (9.55 / 9.62) = 1.11× (score_gd5c924_gpu.json; seed 1,000,002: 9.07, score_gd5c924_gpu_seed3.json). D died in
# that call from step ~300 (docs/benchmarks.md, session 32 run 33). ROW=2 not run; run 34 plans what comes next.
