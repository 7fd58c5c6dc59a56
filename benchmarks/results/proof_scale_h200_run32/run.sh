#!/bin/bash
# Run 32 (session 31): issue 14's question from run 25's paired diagnosis — does a D that calls real IMAGES real (not the
# teacher's Euler-50 outputs) move the Diffusion2GAN row past the pairs' own offset from the data?
# Row DATA: run 25's MB recipe (run 10's student + 750 steps, gan_weight 0.5 adaptive, D minibatch std 4, D on t <= 100,
# lr 3e-5 constant, batch 512) with d_real=images: each fake's real partner is a training image of its own class
# (training/real_images.py; the first 8,000 of the training split: what fits the call's 64 MiB); z_conditioning=false
# (real images have no noise z). Compare with run 25's MB: val FD 14.81 / 13.40 / 13.47 at 250 / 500 / 750, 10 k 13.30.
# Here first:
#   git show 803a5b5:default_models/proof_scale/fmnist-student.safetensors > /tmp/run10.safetensors
#   bash benchmarks/device/proof_scale_bundle.sh --train-head 8000 --evaluator benchmarks/results/proof_scale_h200_run15/evaluator \
#     --teacher-row benchmarks/results/proof_scale_h200_run28 --init /tmp/run10.safetensors
#   bash benchmarks/device/proof_scale_bundle.sh aside benchmarks/results/proof_scale_h200_run32/run.sh
# carry [".devdata/ps", ".devdata/ps_init"], command `CALL=1 bash benchmarks/results/proof_scale_h200_run32/run.sh` (one call:
# pairs ~250 s + 750 steps ~230 s + scoring; KEEP brings the selected weights back); afterwards proof_scale_bundle.sh restore.
G='regression=latentlpips:lr_warmup=100:gan_warmup=200:d_lead=200:gan_ramp=300:lr_d_ratio=5:mix_and_match=false:lr_d_schedule=constant:d_beta2=0.99'
export VARIANTS="diffusion2gan@init_from=diffusion2gan:$G:lr=3e-5:lr_decay=constant:steps=750:batch=512:r1_gamma=0:gan_weight=0.5:d_t_max=100:d_mbstd=4:d_real=images:z_conditioning=false"
case "${CALL:-1}" in
  1) MAXS=${MAXS:-572} MARGIN=${MARGIN:-25} KEEP=${KEEP:-g32ac6f} bash benchmarks/device/proof_scale_run.sh ;;
  *) MAXS=${MAXS:-575} MARGIN=${MARGIN:-25} SKIP_PIP=1 KEEP=${KEEP:-g32ac6f} bash benchmarks/device/proof_scale_run.sh ;;
esac
# As run (session 31, one H200): CALL=1 → DATA (distill/81022bee8b9e): val 14.47 / 12.66 / 13.54, 10 k 12.62 at step 500;
# the call passed 600 s while packing records (weights not back: MAXS 572 leaves too little after a row that finishes).
# Then on a cold machine, the variant with `:lr_d_ratio=2:steps=600` appended (distill/e65ccd91e3ce), run as
#   SELECT=100 MAXS=525 MARGIN=25 KEEP=g40603f bash benchmarks/device/proof_scale_run.sh   (VARIANTS exported as above)
# → 10 k 12.80 at step 600 (497 s); a third call continuing it from its kept weights (PAIRS=40000, gan_warmup/d_lead/
# gan_ramp 100) was cut by the session's device budget before scoring (call3_continued_cut.log: val 12.65-12.92).
