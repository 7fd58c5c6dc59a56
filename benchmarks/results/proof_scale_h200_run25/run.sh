#!/bin/bash
# AS RUN (session 24, one H200): CALL=1; KEEP=g78aaf2 CALL=2 (MB's weights back); MAXS=250 KEEP=ge3516a CALL=3
# (MBT10's). 1,440 s held: pairs 262 s, the rows MB / T10 / MBT10 251 / 215 / 232 GPU s; scored 13.30 / 13.73 / 13.74.
# Records: mbstd_t10/ (call logs, every row's plan, history, selection, timing and scored result),
# student_diagnosis.json (the kept weights read by benchmarks.student_diagnosis); docs/benchmarks.md "session 24 run 25".
# Plan for a later GPU session (written in session 23): issue 14's Diffusion2GAN row (~1.5x; target <= 1.10x). Runs
# 10-24 changed D's optimiser, loss, lr, share, regulariser and readout, none of which moved the row. Session 23's
# diagnosis (benchmarks/student_diagnosis.py; docs/benchmarks.md "session 23 run 24") read run 10's student (the start
# of every row since), the shipped SiD-LSG student (1.008x the teacher) and 300 teacher samples against the real test
# images: the D2G student's spectrum and brightness are the teacher's (both lack ~10-15 % of the real images' power at
# the highest radii), but its features are less spread — total variance 0.84x the real images' against the teacher's
# and the SiD student's 0.91x — i.e. it is less diverse than its teacher: what a regression onto the pairs leaves and
# what SiD's distribution matching restored. D scores one sample at a time, which cannot show a lack of diversity;
# and it looks through noise up to t = 100, where run 9's probe found it far less sharp than at t = 0 (0.874 vs 0.976).
# Two levers, crossed (a 2x2 with run 22's gan_weight 0.5 row as the fourth cell):
#   MB     D's heads also read the minibatch std over groups of 4 samples (d_mbstd=4, new in session 23: ProGAN's
#          remedy for a G less varied than the data), D on t <= 100 as before;
#   T10    D on t <= 10 (d_t_max=10: its noise power per frequency bin <= 10, under the real images' at every radius);
#   MBT10  both.
# All else as run 22's control (gan_weight 0.5, encoder D, from run 10's student, lr 3e-5, D 1.5e-4 constant, Adam
# beta (0.9, 0.99), no R1, batch 512 in one micro-batch, 750 steps; selection every 250 on seed 2,000,000, scored on
# 10,000 x seeds 1,000,000 / 1,000,001). Compare with run 22's row (13.52; val FD 14.70 / 13.90 / 13.66 at 250 / 500 /
# 750) and run 24's. Risk: with less noise D may win outright — the adaptive weight keeps G's GAN gradient at half the
# regression's whatever D says, and the watch logs a dead D. Besides FD, read each row's feature variance: run
# `python -m benchmarks.student_diagnosis` on the weights KEEP brings back.
# Here first (as run 24's):
#   git show 803a5b5:default_models/proof_scale/fmnist-student.safetensors > /tmp/run10.safetensors
#   bash benchmarks/device/proof_scale_bundle.sh --evaluator benchmarks/results/proof_scale_h200_run15/evaluator \
#     --teacher-row benchmarks/results/proof_scale_h200_run18 --init /tmp/run10.safetensors
#   bash benchmarks/device/proof_scale_bundle.sh aside benchmarks/results/proof_scale_h200_run25/run.sh
# carry [".devdata/ps", ".devdata/ps_init"]; CALL=1, 2, 3 chained within the machine's 30 s idle release (afterwards:
# proof_scale_bundle.sh restore). Cost (run 24: 1,704 s held for pairs 262 s + rows of 394 / 368 / 226 GPU s; encoder-D
# rows ~230 s for 750 steps; the std channel adds little): ~1,500 s. KEEP=<tag> on the last call brings the best row's
# weights back (ship by tools.ship_proof_scale only if it beats 12.46). If a row is clearly better, the next run
# continues it (init_row).
# On a 2xH200 machine add run 20's SiD-LSG row (issue 16; the same bundle): VARIANTS="sid_lsg_teacher_cfg@$S;<MB>;<T10>;<MBT10>"
# with S as in run 20's run.sh — GPU k takes the variants k, k+2: GPU 0 the SiD row (~1,035 s) then T10, GPU 1 MB then
# MBT10; pairs on both GPUs ~130 s; ~1,500 s in all.
G='regression=latentlpips:lr_warmup=100:gan_warmup=200:d_lead=200:gan_ramp=300:lr_d_ratio=5:mix_and_match=false:lr_d_schedule=constant:d_beta2=0.99'
C="diffusion2gan@init_from=diffusion2gan:$G:lr=3e-5:lr_decay=constant:steps=750:batch=512:r1_gamma=0:gan_weight=0.5"
export VARIANTS="$C:d_t_max=100:d_mbstd=4;$C:d_t_max=10;$C:d_t_max=10:d_mbstd=4"
case "${CALL:-1}" in
  1) MAXS=540 bash benchmarks/device/proof_scale_run.sh ;;
  *) MAXS=${MAXS:-550} MARGIN=${MARGIN:-45} SKIP_PIP=1 KEEP=${KEEP:-} bash benchmarks/device/proof_scale_run.sh ;;
esac
