#!/bin/bash
# Session 16 proof-scale run (issues 14, 16): three device calls on a 2×H200 machine (1,633 s held), from the committed
# scripts. Here first:
#   bash benchmarks/device/proof_scale_bundle.sh --evaluator benchmarks/results/proof_scale_h200_run15/evaluator \
#        --init "$(git show 803a5b5:default_models/proof_scale/fmnist-student.safetensors > /tmp/run10.safetensors; echo /tmp/run10.safetensors)"
#   (.devdata/ps_init = run 10's GAN-stage student, the start of run 15's SiD row; run 15's classifier, so FDs compare)
# then move aside benchmarks/results, tests, web, workflows, docs and the shipped student / text encoder (64 MiB), and
# device `run` (kind nvidia-h200-x2, carry [".whl", ".devdata/ps", ".devdata/ps_init"]) the same command each call,
# chained within the machine's idle release; no training images were carried: the classifier came with the evaluator
# and no row needs the E-LatentLPIPS trunk (proof_scale.parallel skips its stage).
#   GPU 0: SPLIT  = the LSG ablation (κ1 = κ2 = 1, κ4 = 1.5) from the run-10 student, run 15's SiD settings otherwise
#   GPU 1: ANCHOR = run 15's SiD row (κ 1.5 everywhere) + the recall anchor (latent MSE on the teacher pairs, 0.25 of the
#           SiD gradient's norm at G's output) from the same student
export VARIANTS='sid_lsg_teacher_cfg@init_from=diffusion2gan:lr=3e-5:lr_warmup=50:steps=2000:batch=256:ema_decay=0.99;sid_lsg@init_from=diffusion2gan:lr=3e-5:lr_warmup=50:steps=2000:batch=256:ema_decay=0.99:anchor=0.25:regression=mse'
case "${CALL:-1}" in
  1) MAXS=540 bash benchmarks/device/proof_scale_run.sh ;;
  2) MAXS=550 SKIP_PIP=1 bash benchmarks/device/proof_scale_run.sh ;;
  3) MAXS=530 MARGIN=40 SKIP_PIP=1 KEEP=g51d628,gc1a8fa bash benchmarks/device/proof_scale_run.sh ;;  # both rows finished here
esac
