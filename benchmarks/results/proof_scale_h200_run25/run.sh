#!/bin/bash
# Plan for a later GPU session (written in session 23): issue 14's Diffusion2GAN row (~1.5x; target <= 1.10x). Runs
# 10-24 changed D's optimiser, loss, lr, share, regulariser and readout, none of which moved the row, but D has looked
# through noise up to t = 100 ever since run 10 (t <= 499 before). Session
# 23's diagnosis (benchmarks/student_diagnosis.py on run 10's student and the shipped SiD-LSG one; docs/benchmarks.md
# "session 23 run 24") says what the ~1.5x is made of, against the real test images: the D2G student lacks high
# frequencies (power 0.86-0.89x the real images' at radii 12-16 of 16; the SiD student, 1.008x the teacher, 0.92-0.93x),
# its features are less spread (variance 0.84x; SiD 0.90x), its mean brightness is off (DC power 0.75x; SiD 0.82x) and
# so are its class means (FD's mean term 5.2 of 14.8; SiD 2.5 of 9.2). D re-noises to t ~ U{0..100}: at t = 100 the
# noise power per frequency bin is ~121 against the real images' 20-35 at the highest radii and a deficit of ~2-5 —
# D sees the blur at a few t near 0 only (run 9's probe: a D trained at t = 0 alone told student from teacher at 0.976,
# one on [0, 100] at 0.874 at t = 0).
# This run lowers D's noise, all else as run 22's control (gan_weight 0.5, encoder D, from run 10's student, lr 3e-5,
# D 1.5e-4 constant, Adam beta (0.9, 0.99), no R1, batch 512, 750 steps; selection every 250 on seed 2,000,000,
# scored on 10,000 x seeds 1,000,000 / 1,000,001):
#   T0    d_t_max=0  (D on the clean samples; ᾱ_0 = 0.99915)
#   T10   d_t_max=10 (noise power <= 10 per bin: under the real images' at every radius)
#   T25   d_t_max=25 (<= 25)
# Compare with run 22's gan_weight 0.5 row (13.52; val FD 14.70 / 13.90 / 13.66 at 250 / 500 / 750) and run 24's.
# Risk: with less noise D may win outright (diffusion-GAN noise is what keeps a GAN's D from overpowering G) — the
# adaptive weight keeps G's GAN gradient at half the regression's whatever D says, and the watch logs a dead D.
# Here first (as run 24's):
#   git show 803a5b5:default_models/proof_scale/fmnist-student.safetensors > /tmp/run10.safetensors
#   bash benchmarks/device/proof_scale_bundle.sh --evaluator benchmarks/results/proof_scale_h200_run15/evaluator \
#     --teacher-row benchmarks/results/proof_scale_h200_run18 --init /tmp/run10.safetensors
#   bash benchmarks/device/proof_scale_bundle.sh aside benchmarks/results/proof_scale_h200_run25/run.sh
# carry [".devdata/ps", ".devdata/ps_init"]; CALL=1, 2, 3 chained within the machine's 30 s idle release (afterwards:
# proof_scale_bundle.sh restore). Cost (run 24: 1,704 s held for pairs 262 s + rows of 394 / 368 / 226 GPU s; encoder-D
# rows ~230 s for 750 steps): ~1,500 s. KEEP=<tag> on the last call brings the best row's weights back if it beats
# 12.46 (ship by tools.ship_proof_scale only then). If a row is clearly better, the next run continues it (init_row).
# On a 2xH200 machine add run 20's SiD-LSG row (issue 16; the same bundle): VARIANTS="sid_lsg_teacher_cfg@$S;<T0>;<T10>;<T25>"
# with S as in run 20's run.sh — GPU k takes the variants k, k+2: GPU 0 the SiD row (~1,035 s) then T10, GPU 1 T0 then
# T25; pairs on both GPUs ~130 s; ~1,500 s in all.
G='regression=latentlpips:lr_warmup=100:gan_warmup=200:d_lead=200:gan_ramp=300:lr_d_ratio=5:mix_and_match=false:lr_d_schedule=constant:d_beta2=0.99'
C="diffusion2gan@init_from=diffusion2gan:$G:lr=3e-5:lr_decay=constant:steps=750:batch=512:r1_gamma=0:gan_weight=0.5"
export VARIANTS="$C:d_t_max=0;$C:d_t_max=10;$C:d_t_max=25"
case "${CALL:-1}" in
  1) MAXS=540 bash benchmarks/device/proof_scale_run.sh ;;
  *) MAXS=${MAXS:-550} MARGIN=${MARGIN:-45} SKIP_PIP=1 KEEP=${KEEP:-} bash benchmarks/device/proof_scale_run.sh ;;
esac
