#!/bin/bash
# session 11 proof-scale call (planned in session 10): the regression-only control of run 10 and a GAN stage whose D keeps up
# t in [0,100], D's own constant lr, no R1, no mix-and-match; resumable, same command each call
set -o pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 9
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
W=${W:-runs/ps12}
mkdir -p $W
if [ -f $W/classifier.json ]; then echo "WORK KEPT: $(ls $W)"; else
  echo "FRESH WORK"; cp .devdata/ps8/state/* $W/; mkdir -p $W/distill/regression_latentlpips; cp .devdata/ps12/init/*.json $W/distill/regression_latentlpips/
  python3 -c "
from proof_scale.teacher_import import import_unet
from safetensors.torch import save_file
u, _, _ = import_unet('default_models/proof_scale/fmnist-student.safetensors')
save_file({k: v.half().contiguous() for k, v in u.state_dict().items()}, '$W/distill/regression_latentlpips/best.safetensors')" || exit 8; fi
nvidia-smi --query-gpu=name,memory.used --format=csv
# session 12 (planned in session 11): GPU 0 a Diffusion2GAN stage whose D learns (run 10: no R1, D Adam beta1 0.9) and can
# recover after G fools it (beta2 0.99 instead of 0.999: Adam's second moments of its early large gradients no longer
# shrink its steps for thousands of steps), G's GAN weight ramped in over 300 steps; GPU 1 the rectified-flow chain
# (issue 17: teacher at 1/2/4 steps, reflow to a 2-RF from the teacher pairs, 2-RF pairs, InstaFlow one-step).
G='init_from=regression_latentlpips:regression=latentlpips:lr=3e-5:lr_warmup=100:gan_warmup=200:d_lead=200:gan_ramp=300:r1_gamma=0:lr_d_ratio=5:batch=512:d_t_max=100:mix_and_match=false:lr_d_schedule=constant'
# session 12: three GAN variants (2 per GPU with the chain): A = the plan above; B = A with a fixed lambda (0.01 ~ the
# adaptive weight's 0.0128 at run 10's first GAN step), so G's push fades when D is unsure instead of being rescaled up
# to 10x; C = A with D's beta1 0 (run 11's optimiser without R1: separates beta1 from R1)
G0="$G:d_beta2=0.99:steps=3000"
VA="diffusion2gan@$G0:gan_weight=0.5"
VB="diffusion2gan@$G0:gan_balance=fixed:gan_weight=0.01"
VC="diffusion2gan@$G0:gan_weight=0.5:d_beta1=0"
VARIANTS=${VARIANTS:-"$VA;$VB;$VC"}
CHAINS=${CHAINS:-"teacher-steps,distill-reflow_2rf,pairs-2rf,distill-instaflow"}
python3 -m proof_scale.parallel --work $W --max-seconds ${MAXS:-550} --rows-per-gpu 2 --margin ${MARGIN:-45} --rows none --data .devdata/ps8/fm \
  --context .devdata/ps8/context.safetensors --teacher-import default_models/proof_scale/fmnist-teacher.safetensors \
  --sweep-steps 50 --sweep-cfg 1.5 --sweep-count 2000 --teacher-seeds ${TSEEDS:-1} --pairs ${PAIRS:-40000} \
  --distill-steps ${DSTEPS:-1500} --distill-batch 1024 --select-every 250 --log-every 50 --variants "$VARIANTS" --chains "$CHAINS" "$@" 2>&1 | tee $OUT/call.log | grep -v "step [0-9]*/[0-9]* " | tail -c 9000
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
