#!/bin/bash
# session 10 proof-scale call: GAN stage from the shipped regression student, relativistic vs standard loss with D on
# t in [0,100], D's own constant lr, no R1, no mix-and-match; resumable, same command each call
set -o pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 9
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
W=${W:-runs/ps10}
mkdir -p $W
if [ -f $W/classifier.json ]; then echo "WORK KEPT: $(ls $W)"; else
  echo "FRESH WORK"; cp .devdata/ps8/state/* $W/; mkdir -p $W/distill/regression_latentlpips; cp .devdata/ps10/init/*.json $W/distill/regression_latentlpips/
  python3 -c "
from proof_scale.teacher_import import import_unet
from safetensors.torch import save_file
u, _, _ = import_unet('default_models/proof_scale/fmnist-student.safetensors')
save_file({k: v.half().contiguous() for k, v in u.state_dict().items()}, '$W/distill/regression_latentlpips/best.safetensors')" || exit 8; fi
nvidia-smi --query-gpu=name,memory.used --format=csv
C='diffusion2gan@init_from=regression_latentlpips:regression=latentlpips:lr=3e-5:lr_warmup=100:gan_warmup=200:d_lead=200:gan_weight=0.5:r1_gamma=0:lr_d_ratio=5:batch=512:steps=4000:d_t_max=100:mix_and_match=false:lr_d_schedule=constant'
VARIANTS=${VARIANTS:-"$C:gan_loss=relativistic;$C:gan_loss=standard"}
python3 -m proof_scale.parallel --work $W --max-seconds ${MAXS:-550} --margin ${MARGIN:-45} --rows none --data .devdata/ps8/fm \
  --context .devdata/ps8/context.safetensors --teacher-import default_models/proof_scale/fmnist-teacher.safetensors \
  --sweep-steps 50 --sweep-cfg 1.5 --sweep-count 2000 --teacher-seeds ${TSEEDS:-1} --pairs ${PAIRS:-40000} \
  --distill-steps 2500 --distill-batch 1024 --variants "$VARIANTS" "$@" 2>&1 | tee $OUT/call.log | grep -v "step [0-9]*/[0-9]* " | tail -c 9000
rc=$?
grep "step [0-9]*/[0-9]* " $OUT/call.log | awk 'NR%4==0' | cut -c1-400 | tail -60
tar czf $OUT/records.tgz --exclude='*.safetensors' --exclude='pairs' --exclude='pairs_heldout' $W
python3 -c "
import glob, os
from safetensors.torch import load_file, save_file
for n, d in enumerate(sorted(glob.glob('$W/distill/diffusion2gan*'))):
    b = os.path.join(d, 'best.safetensors')
    if not os.path.isfile(b): continue
    w = {k: v.half().contiguous() for k, v in load_file(b).items()}
    ks = sorted(w); h = len(ks) // 2
    tag = 'rel' if 'relativistic' in d else 'std'
    save_file({k: w[k] for k in ks[:h]}, '$OUT/best_%s_a.safetensors' % tag); save_file({k: w[k] for k in ks[h:]}, '$OUT/best_%s_b.safetensors' % tag)
" || echo "weights copy failed"
ls -la $OUT
echo "parallel exit $rc"
