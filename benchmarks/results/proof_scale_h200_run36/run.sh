#!/bin/bash
# Plan for a later GPU session (written in session 33): issue 14's last open point, the ablation order. At 2.56 M samples
# (run 6) LatentLPIPS 18.61 ≈ MSE 18.86 (inside the seed spread) < E-LatentLPIPS 21.62, and only LatentLPIPS was run
# longer (run 14's control: +1,000 steps on 160,000 pairs, 17.21). The issue asks, where the paper's order does not
# reproduce, for a longer run of the two closest rows: here both from the same start — run 6's LatentLPIPS student (shipped
# in session 8) — for 1,000 more steps at batch 512 (run 14 control's settings) on 80,000 fresh pairs, one row per call, scored in the call.
# Init bundle (the same for both rows):
#   git show b20eb0c:default_models/proof_scale/fmnist-student.safetensors > /tmp/run6_latentlpips.safetensors
#   bash benchmarks/device/proof_scale_bundle.sh --evaluator benchmarks/results/proof_scale_h200_run15/evaluator \
#     --teacher-row benchmarks/results/proof_scale_h200_run28 --init /tmp/run6_latentlpips.safetensors --init-row regression_latentlpips
# Then `bash benchmarks/device/proof_scale_bundle.sh aside benchmarks/results/proof_scale_h200_run36/run.sh`, carry
# [".devdata/ps", ".devdata/ps_init"], command `ROW=1 bash benchmarks/results/proof_scale_h200_run36/run.sh`; afterwards
# proof_scale_bundle.sh restore. A third row (ROW=3, E-LatentLPIPS from the same start) if the budget allows.
# ROW=12 (session 34): MSE and LatentLPIPS side by side on the one GPU (--rows-per-gpu 2) on 40,000 pairs, so both rows
# share one call and one set of pairs (run 14: 40,000 vs 160,000 pairs moved a row by < 0.2 FD at this length).
C='init_from=regression_latentlpips:lr=3e-5:lr_warmup=100:lr_decay=constant:batch=512:steps=1000'  # run 14's control's settings
case "${ROW:-1}" in
  1) export VARIANTS="regression_mse@$C" ;;
  2) export VARIANTS="regression_latentlpips@$C" ;;
  3) export VARIANTS="regression_elatentlpips@$C" ;;
  12) export VARIANTS="regression_mse@$C;regression_latentlpips@$C" EXTRA="--rows-per-gpu 2" PAIRS=${PAIRS:-40000} ;;
  # ROW=45 (session 34): the paper's case for E-LatentLPIPS is that plain LatentLPIPS over-fits a fixed, small set of
  # pairs; here both from the same start on 2,000 pairs only (300 steps at batch 512 = 77 passes), side by side; the
  # pairs eager (4,000 with the held-out ones: faster than compiling the teacher), for the last ~200 s of a session's budget
  45) C5=${C/steps=1000/steps=${STEPS45:-300}}  # STEPS45=1000 with a whole call (session 34 ran 300, cut short)
      export VARIANTS="regression_latentlpips@$C5;regression_elatentlpips@$C5" EXTRA="--rows-per-gpu 2" PAIRS=${PAIRS:-2000} \
             SELECT=${SELECT:-100} NOCOMPILE=${NOCOMPILE:- } ;;
  *) echo "ROW must be 1, 2, 3, 12 or 45"; exit 2 ;;
esac
export PAIRS=${PAIRS:-80000} SELECT=${SELECT:-250}
FINISH=${FINISH-1} MAXS=${MAXS:-515} MARGIN=${MARGIN:-25} KEEP=${KEEP:-variants} bash benchmarks/device/proof_scale_run.sh
