#!/bin/bash
# session 13 proof-scale call (planned in session 12): do 4x the pairs help? 160,000 teacher pairs by Heun at 13 steps
# (25 UNet calls per sample for Euler's 50; the pairs stage also scores the teacher there), then
#   GPU 1: run 12's GAN stage A exactly (from the LatentLPIPS student, D Adam beta2 0.99, ramp 300) on the 160k pairs
#   GPU 0: the regression-only control on them (1,000 steps, as run 11's on 40k), then A with G's GAN weight 1.0
#          (adaptive; 2,000 steps): with D alive, does a stronger pull help?
# carry limit (64 MiB with the tree): move aside default_models/proof_scale/fmnist-student.safetensors (the shipped
# run-10 student, not used here), fmnist-text-encoder.safetensors and benchmarks/results before the call; restore after.
# resumable, the same command each call (chain calls within 30 s); MAXS 520 for the last call
set -o pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 9
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
W=${W:-runs/ps13}
mkdir -p $W
if [ -f $W/classifier.json ]; then echo "WORK KEPT: $(ls $W)"; else
  echo "FRESH WORK"; cp .devdata/ps8/state/* $W/
  mkdir -p $W/distill/regression_latentlpips
  cp .devdata/ps13/init_lpips/*.json $W/distill/regression_latentlpips/
  python3 -c "
from proof_scale.teacher_import import import_unet
from safetensors.torch import save_file
for src, row in (('.devdata/ps13/lpips_student.safetensors', 'regression_latentlpips'),):
    u, _, _ = import_unet(src)
    save_file({k: v.half().contiguous() for k, v in u.state_dict().items()}, '$W/distill/%s/best.safetensors' % row)" || exit 8; fi
nvidia-smi --query-gpu=name,memory.used --format=csv
G='regression=latentlpips:lr=3e-5:lr_warmup=100:gan_warmup=200:d_lead=200:gan_ramp=300:r1_gamma=0:lr_d_ratio=5:batch=512:d_t_max=100:mix_and_match=false:lr_d_schedule=constant:d_beta2=0.99'
CONTROL="regression_latentlpips@init_from=regression_latentlpips:lr=3e-5:lr_warmup=100:lr_decay=constant:batch=512:steps=1000"
A="diffusion2gan@init_from=regression_latentlpips:$G:steps=3000:gan_weight=0.5"
AW="diffusion2gan@init_from=regression_latentlpips:$G:steps=2000:gan_weight=1.0"
VARIANTS=${VARIANTS:-"$CONTROL;$A;$AW"}  # slots: GPU 0 = CONTROL then AW, GPU 1 = A
python3 -m proof_scale.parallel --work $W --max-seconds ${MAXS:-550} --margin ${MARGIN:-45} --rows none --data .devdata/ps8/fm \
  --context .devdata/ps8/context.safetensors --teacher-import default_models/proof_scale/fmnist-teacher.safetensors \
  --sweep-steps 50 --sweep-cfg 1.5 --sweep-count 2000 --teacher-seeds ${TSEEDS:-1} --pairs ${PAIRS:-160000} --heldout 2000 \
  --pairs-sampler heun --pairs-steps 13 --select-every 250 --log-every 50 --variants "$VARIANTS" "$@" 2>&1 | tee $OUT/call.log | grep -v "step [0-9]*/[0-9]* " | tail -c 9000
rc=$?
grep "step [0-9]*/[0-9]* " $OUT/call.log | awk 'NR%4==0' | cut -c1-400 | tail -60
tar czf $OUT/records.tgz --exclude='*.safetensors' --exclude='pairs' --exclude='pairs_heldout' $W
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
    save_file({k: w[k] for k in ks[:h]}, '$OUT/best_%s_a.safetensors' % tag); save_file({k: w[k] for k in ks[h:]}, '$OUT/best_%s_b.safetensors' % tag)
" || echo "weights copy failed"
ls -la $OUT
echo "parallel exit $rc"
