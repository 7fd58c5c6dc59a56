#!/bin/bash
# AS RUN (session 22, one H200): CALL=1, 2, 3 as below (MAXS=540 on the third), KEEP empty — no weights came back (no
# row beat the shipped Diffusion2GAN row's 12.46). 1,651 s held: pairs 248 s, the three rows 319 / 293 / 298 GPU s.
# Records: gan_share/ (call logs, every row's plan, history, selection, timing and scored result);
# docs/benchmarks.md "session 22 run 22".
# Plan for a later GPU session (written in session 21): issue 14's Diffusion2GAN row (1.45x; target <= 1.10x). Run 21
# showed G's lr is not what holds run 15's GAN stage back (lr 1e-4 worse at every point, and D at 5e-4 dies), and that
# in run 15 D stays alive while the adaptive weight keeps the GAN at half the regression's gradient (gan_weight 0.5).
# This run: the GAN's share raised, all else as run 15's continuation (lr 3e-5, D 1.5e-4, from run 10's student,
# batch 512), 1,000 steps a row, three rows one after the other on ONE H200 so they share one E-LatentLPIPS trunk:
#   W05 gan_weight 0.5 (the control: run 15's row on run 19's trunk), W1 gan_weight 1, W2 gan_weight 2.
# Compare the val FDs at steps 250 / 500 / 750 / 1,000 (run 15's control: 13.98 at 500, 13.45 at 1,000).
# Here first (as run 20's header, with --init run 10's student):
#   git show 803a5b5:default_models/proof_scale/fmnist-student.safetensors > /tmp/run10.safetensors
#   bash benchmarks/device/proof_scale_bundle.sh --evaluator benchmarks/results/proof_scale_h200_run15/evaluator \
#     --teacher-row benchmarks/results/proof_scale_h200_run18 --init /tmp/run10.safetensors
#   bash benchmarks/device/proof_scale_bundle.sh aside benchmarks/results/proof_scale_h200_run22/run.sh
# carry [".devdata/ps", ".devdata/ps_init"]; CALL=1, 2, 3 chained within the machine's 30 s idle release.
# Cost (run 21: pairs 264 s, 0.33 s a step at batch 512 with selection every 250): 264 + 3 x 330 + ~20 s per call to
# start = ~1,320 s. KEEP=<tag> on the last call brings the best row's weights back (init_row carries them into a longer
# chain next if a larger share is faster). On a 2xH200 machine add run 20's row (issue 16; the same bundle):
#   VARIANTS="$SID;$C:gan_weight=0.5;$C:gan_weight=1;$C:gan_weight=2" with SID as in run 20's run.sh — GPU k takes the
#   variants k, k+2: GPU 0 the SiD row (~1,035 s) and gan_weight 1, GPU 1 the other two; ~1,700 s in all.
G='regression=latentlpips:lr_warmup=100:gan_warmup=200:d_lead=200:gan_ramp=300:r1_gamma=0:lr_d_ratio=5:d_t_max=100:mix_and_match=false:lr_d_schedule=constant:d_beta2=0.99'
C="diffusion2gan@init_from=diffusion2gan:$G:lr=3e-5:lr_decay=constant:steps=1000:batch=512"
export VARIANTS="$C:gan_weight=0.5;$C:gan_weight=1;$C:gan_weight=2"
case "${CALL:-1}" in
  1) MAXS=540 bash benchmarks/device/proof_scale_run.sh ;;
  *) MAXS=${MAXS:-550} MARGIN=${MARGIN:-45} SKIP_PIP=1 KEEP=${KEEP:-} bash benchmarks/device/proof_scale_run.sh ;;
esac
