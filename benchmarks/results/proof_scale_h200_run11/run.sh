#!/bin/bash
# session 11 proof-scale call (planned in session 10): the regression-only control of run 10 and a GAN stage whose D keeps up
# t in [0,100], D's own constant lr, no R1, no mix-and-match; resumable, same command each call
set -o pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 9
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
W=${W:-runs/ps11}
mkdir -p $W
if [ -f $W/classifier.json ]; then echo "WORK KEPT: $(ls $W)"; else
  echo "FRESH WORK"; cp .devdata/ps8/state/* $W/; mkdir -p $W/distill/regression_latentlpips; cp .devdata/ps11/init/*.json $W/distill/regression_latentlpips/
  python3 -c "
from proof_scale.teacher_import import import_unet
from safetensors.torch import save_file
u, _, _ = import_unet('default_models/proof_scale/fmnist-student.safetensors')
save_file({k: v.half().contiguous() for k, v in u.state_dict().items()}, '$W/distill/regression_latentlpips/best.safetensors')" || exit 8; fi
nvidia-smi --query-gpu=name,memory.used --format=csv
# control (GPU 0, first): run 10's continuation without the GAN to step 1,000 (lr constant after warm-up: run 10's cosine over
# 4,000 steps is within 7 % of it there) -- did 18.4 -> 15.8 at step 500 come from the GAN or from more regression?
# C (GPU 1): StyleGAN2's D optimiser (beta 0, 0.99), R1 on, G's GAN weight ramped in over 300 steps, trained teacher encoder.
# C2 (GPU 0, after R): the same with D's teacher encoder frozen + LoRA (LADD-like: D's features cannot collapse).
R='regression_latentlpips@init_from=regression_latentlpips:lr=3e-5:lr_warmup=100:lr_decay=constant:batch=512:steps=1000'
G='init_from=regression_latentlpips:regression=latentlpips:lr=3e-5:lr_warmup=100:gan_warmup=200:d_lead=200:gan_ramp=300:gan_weight=0.5:r1_gamma=1:lr_d_ratio=5:batch=512:d_t_max=100:mix_and_match=false:lr_d_schedule=constant:d_beta1=0:d_beta2=0.99'
C="diffusion2gan@$G:steps=2000"
C2="diffusion2gan@$G:steps=2000:d_backbone=lora:d_lora_rank=64"
VARIANTS=${VARIANTS:-"$C2;$C"}  # R finished in call 1 (17.02)
python3 -m proof_scale.parallel --work $W --max-seconds ${MAXS:-550} --margin ${MARGIN:-45} --rows none --data .devdata/ps8/fm \
  --context .devdata/ps8/context.safetensors --teacher-import default_models/proof_scale/fmnist-teacher.safetensors \
  --sweep-steps 50 --sweep-cfg 1.5 --sweep-count 2000 --teacher-seeds ${TSEEDS:-1} --pairs ${PAIRS:-40000} \
  --distill-steps 2500 --distill-batch 1024 --select-every 250 --log-every 50 --variants "$VARIANTS" "$@" 2>&1 | tee $OUT/call.log | grep -v "step [0-9]*/[0-9]* " | tail -c 9000
rc=$?
grep "step [0-9]*/[0-9]* " $OUT/call.log | awk 'NR%4==0' | cut -c1-400 | tail -60
tar czf $OUT/records.tgz --exclude='*.safetensors' --exclude='pairs' --exclude='pairs_heldout' $W
python3 -c "
import glob, json, os
from safetensors.torch import load_file, save_file
for n, d in enumerate(sorted([g for g in glob.glob('$W/distill/*') if '__' in g])):
    b = os.path.join(d, 'best.safetensors')
    if not os.path.isfile(b): continue
    w = {k: v.half().contiguous() for k, v in load_file(b).items()}
    ks = sorted(w); h = len(ks) // 2
    plan = json.load(open(os.path.join(d, 'plan.json'))) if os.path.isfile(os.path.join(d, 'plan.json')) else {}
    tag = 'reg' if 'diffusion2gan' not in d else 'lora' if plan.get('d_backbone') == 'lora' else 'gan'
    save_file({k: w[k] for k in ks[:h]}, '$OUT/best_%s_a.safetensors' % tag); save_file({k: w[k] for k in ks[h:]}, '$OUT/best_%s_b.safetensors' % tag)
" || echo "weights copy failed"
ls -la $OUT
echo "parallel exit $rc"
