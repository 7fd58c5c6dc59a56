#!/bin/bash
# session 15 proof-scale calls (issues 14, 15, 16), one resumable command on a 2×H200 machine. Session 14's work
# folders went with its machine, so the evaluators are trained again here (classifier + E-LatentLPIPS trunk, GPU 1,
# while GPU 0 imports the shipped teacher and scores it), then 80,000 Euler-50 pairs (seeds 0–79,999, run 6's) + 2,000
# held out, then the rows:
#   GPU 0: RERUN = run 6's regression_mse plan exactly (issue 15: the engine reproduces a pre-engine row), then SID =
#          SiD-LSG with G started from the shipped Diffusion2GAN student (issue 16)
#   GPU 1: A_CONT = run 14's GAN stage (A) continued from the shipped student at a constant lr (issue 14)
# carry: call 1 [".whl", ".devdata/ps15"] (with the Fashion-MNIST training images); later calls
# [".whl", ".devdata/ps15", ".devdata/ps15_init"] (the shipped student as a diffusers state dict, result/plan json) with
# the training images moved out of .devdata/ps15/fm (the evaluators are trained by then). Move aside
# default_models/proof_scale/fmnist-student.safetensors, fmnist-text-encoder.safetensors, benchmarks/results, tests,
# web, workflows, docs during the calls (64 MiB). Same command each call, chained within 30 s; MAXS=... KEEP=tag,...
# on the last call brings weights back.
set -o pipefail
[ -n "$SKIP_PIP" ] || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 9
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
W=${W:-runs/ps15}
D=${DATA:-.devdata/ps15/fm}
mkdir -p $W
echo "WORK: $(ls $W | tr '\n' ' ')"
if [ -f .devdata/ps15_init/best.safetensors ] && [ ! -f $W/distill/diffusion2gan/best.safetensors ]; then
  mkdir -p $W/distill/diffusion2gan && cp .devdata/ps15_init/*.json .devdata/ps15_init/best.safetensors $W/distill/diffusion2gan/ && echo "INIT placed"; fi
nvidia-smi --query-gpu=name,memory.used --format=csv 2>/dev/null
G='regression=latentlpips:lr_warmup=100:gan_warmup=200:d_lead=200:gan_ramp=300:r1_gamma=0:lr_d_ratio=5:d_t_max=100:mix_and_match=false:lr_d_schedule=constant:d_beta2=0.99:gan_weight=0.5'
RERUN="regression_mse@steps=${RERUN_STEPS:-2500}:batch=${RERUN_BATCH:-1024}:lr_warmup=250"
A_CONT="diffusion2gan@init_from=diffusion2gan:$G:lr=3e-5:lr_decay=constant:steps=${A_STEPS:-2500}:batch=${A_BATCH:-512}"
SID="sid_lsg@init_from=diffusion2gan:lr=3e-5:lr_warmup=50:steps=${SID_STEPS:-2000}:batch=${SID_BATCH:-256}:ema_decay=0.99"
# slots: GPU 0 = RERUN then SID, GPU 1 = A_CONT; before the student is here only RERUN can start
if [ -f $W/distill/diffusion2gan/best.safetensors ]; then VARIANTS="$RERUN;$A_CONT;$SID"; else VARIANTS="$RERUN"; fi
python3 -m proof_scale.parallel --work $W --max-seconds ${MAXS:-550} --margin ${MARGIN:-45} --rows none --data $D \
  --context .devdata/ps15/context.safetensors --teacher-import default_models/proof_scale/fmnist-teacher.safetensors \
  --sweep-steps 50 --sweep-cfg 1.5 --sweep-count 2000 --teacher-seeds 1 --pairs ${PAIRS:-80000} --heldout ${HELDOUT:-2000} \
  ${NOCOMPILE:---compile-teacher default} --select-every ${SELECT:-500} --log-every 50 --variants "$VARIANTS" $EXTRA 2>&1 | tee ${OUT:-$W}/call.log | grep -v "step [0-9]*/[0-9]* \|captured a CUDA graph" | tail -c 9000
rc=$?
grep "step [0-9]*/[0-9]* " ${OUT:-$W}/call.log | awk 'NR%4==0' | cut -c1-400 | tail -60
tar czf ${OUT:-$W}/records.tgz --exclude='*.safetensors' --exclude='pairs' --exclude='pairs_heldout' --exclude='fm' $W
python3 -c "
import glob, hashlib, os
from safetensors.torch import load_file, save_file
keep = [k for k in os.environ.get('KEEP', '').split(',') if k]
for d in sorted(glob.glob('$W/distill/*')):
    b, name = os.path.join(d, 'best.safetensors'), os.path.basename(d)
    tag = 'g' + hashlib.sha1(name.encode()).hexdigest()[:6] if '__' in name else name
    print('weights tag', tag, name, 'kept' if tag in keep else '')
    if tag not in keep or not os.path.isfile(b): continue
    w = {k: v.half().contiguous() for k, v in load_file(b).items()}
    ks = sorted(w); h = len(ks) // 2
    save_file({k: w[k] for k in ks[:h]}, '${OUT:-$W}/best_%s_a.safetensors' % tag); save_file({k: w[k] for k in ks[h:]}, '${OUT:-$W}/best_%s_b.safetensors' % tag)
" || echo "weights copy failed"
ls -la ${OUT:-$W}
echo "parallel exit $rc"
