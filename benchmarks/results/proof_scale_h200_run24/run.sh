#!/bin/bash
# AS RUN (session 23, one H200): CALL=1, CALL=2, MAXS=535 CALL=3 as below, KEEP empty — no weights came back (no row beat
# the shipped Diffusion2GAN row's 12.46). 1,704 s held: pairs 262 s, the rows DEC / DEC1 / EPS 394 / 368 / 226 GPU s;
# scored 13.38 / 13.67 / 13.25. Records: d_readout/ (call logs, every row's plan, history, selection, timing and scored
# result); docs/benchmarks.md "session 23 run 24".
# Plan for a later GPU session (written in session 22): issue 14's Diffusion2GAN row (1.46x; target <= 1.10x). Run 22
# (session 22) answered the GAN-share question: gan_weight 0.5 / 1 / 2 scored 13.52 / 13.24 / 13.40 (+-0.19) at step
# 750 — the same — and at 1 and 2 D died at step ~320 (its gradient 10^-3, rank accuracy < 0.5) while at 0.5 it was
# flat for ~200 steps and came back. D, not G's side, is the weak part. Two things about D were never tried:
#   DEC   D's heads on the *decoder* levels of a copy of the whole teacher UNet (d_readout=decoder, new in session 22:
#         the paper's "readout heads on decoder scales"; ours read the encoder's), at run 22's control setting
#         (gan_weight 0.5) — compare with run 22's gan_weight_0.5 row (13.52; val FD 13.66 at 750);
#   DEC1  the decoder D at gan_weight 1: does it survive the share the encoder D did not?
#   EPS   the encoder D at gan_weight 1 (which died in run 22 at step ~320) with D's Adam epsilon 1e-5 (d_eps, new in
#         session 22): does D die because Adam turns a fooled D's noise-level gradient into full-size steps?
#   (Session 23 put EPS in place of the R1 row first planned here: R1 penalises D's slope on real data, which says
#   nothing about a D whose logits have collapsed to one value; EPS tests the mechanism run 22 pointed at.)
# Each 750 steps (run 22 selected step 750 in every row), all else as run 22 (from run 10's student, lr 3e-5,
# D 1.5e-4 constant, batch 512, selection every 250 on seed 2,000,000, scored on 10,000 x 2 seeds).
# Here first (as run 22's):
#   git show 803a5b5:default_models/proof_scale/fmnist-student.safetensors > /tmp/run10.safetensors
#   bash benchmarks/device/proof_scale_bundle.sh --evaluator benchmarks/results/proof_scale_h200_run15/evaluator \
#     --teacher-row benchmarks/results/proof_scale_h200_run18 --init /tmp/run10.safetensors
#   bash benchmarks/device/proof_scale_bundle.sh aside benchmarks/results/proof_scale_h200_run24/run.sh
# carry [".devdata/ps", ".devdata/ps_init"]; CALL=1, 2, 3 chained within the machine's 30 s idle release
# (afterwards: proof_scale_bundle.sh restore). Cost: pairs ~250 s; encoder-D steps 0.30-0.33 s (run 22); the decoder
# D has 10.1 M parameters against the encoder's 4.3 M and two of its three heads read 32x32 maps (the encoder's finest
# is 16x16): its forward + backward took 3.3x the encoder D's on the CPU (batch 16), so decoder-D steps ~0.55 s ->
# 250 + 2 x 410 + 250 + ~80 s of starts and scoring = ~1,400 s (if short: EPS last, resumable in a 4th call). KEEP=<tag> on the last call brings the best row's weights back if it beats 12.46 (ship by
# tools.ship_proof_scale only then); the watch's notices (D dead / learning again) are in each row's log.
# On a 2xH200 machine add run 20's SiD-LSG row (issue 16; the same bundle): VARIANTS="sid_lsg_teacher_cfg@$S;<DEC>;<DEC1>;<EPS>"
# with S as in run 20's run.sh — GPU k takes the variants k, k+2: GPU 0 the SiD row (~1,035 s) then DEC1, GPU 1 DEC then
# EPS; pairs on both GPUs ~125 s; ~1,450 s in all.
G='regression=latentlpips:lr_warmup=100:gan_warmup=200:d_lead=200:gan_ramp=300:lr_d_ratio=5:d_t_max=100:mix_and_match=false:lr_d_schedule=constant:d_beta2=0.99'
C="diffusion2gan@init_from=diffusion2gan:$G:lr=3e-5:lr_decay=constant:steps=750:batch=512"
export VARIANTS="$C:r1_gamma=0:gan_weight=0.5:d_readout=decoder;$C:r1_gamma=0:gan_weight=1:d_readout=decoder;$C:r1_gamma=0:gan_weight=1:d_eps=1e-5"
case "${CALL:-1}" in
  1) MAXS=540 bash benchmarks/device/proof_scale_run.sh ;;
  *) MAXS=${MAXS:-550} MARGIN=${MARGIN:-45} SKIP_PIP=1 KEEP=${KEEP:-} bash benchmarks/device/proof_scale_run.sh ;;
esac
