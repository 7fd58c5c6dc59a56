#!/bin/bash
# session 14 proof-scale call (planned in session 13). Run 13 showed Heun-13 pairs are a worse teacher (FD 21.9 vs
# Euler-50's 8.6), so the "more pairs" question is asked again with pairs at the teacher row's own setting:
#   once, first: GPU 0 times the teacher's forward eager vs torch.compile (bench_proof_scale_unet; picks
#     --compile-teacher default for the pairs if >= 1.25x faster) and a GAN step eager vs compile_blocks (picks
#     :compile=true for the rows if >= 1.25x faster); GPU 1 runs the SiD-LSG memory table (issue 16)
#   160,000 Euler-50 pairs (seeds 0..159,999: the start student's 80k + 80k new) + 2,000 held out, on both GPUs
#   GPU 1: run 12's A exactly on them (3,000 steps); GPU 0: the regression control (1,000 steps), then A at lr 6e-5
# carry limit (64 MiB with the tree): move aside default_models/proof_scale/fmnist-student.safetensors,
# fmnist-text-encoder.safetensors and benchmarks/results before the call; restore after.
# carry [".whl", ".devdata/ps8", ".devdata/ps13", ".devdata/ps14"], kind nvidia-h200-x2; resumable: the same command
# each call, chained within 30 s; MAXS=500 KEEP=tag,... on the last call brings weights back.
set -o pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 9
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
W=${W:-runs/ps14}
mkdir -p $W
if [ -f $W/classifier.json ]; then echo "WORK KEPT: $(ls $W)"; else
  echo "FRESH WORK"; cp .devdata/ps8/state/* $W/
  mkdir -p $W/distill/regression_latentlpips
  cp .devdata/ps13/init_lpips/*.json $W/distill/regression_latentlpips/
  python3 -c "
from proof_scale.teacher_import import import_unet
from safetensors.torch import save_file
u, _, _ = import_unet('.devdata/ps13/lpips_student.safetensors')
save_file({k: v.half().contiguous() for k, v in u.state_dict().items()}, '$W/distill/regression_latentlpips/best.safetensors')" || exit 8; fi
nvidia-smi --query-gpu=name,memory.used --format=csv
if [ ! -f $W/bench_done ]; then
  (CUDA_VISIBLE_DEVICES=0 timeout 150 python3 -m benchmarks.bench_proof_scale_unet --variants nchw,compile > $W/bench_unet.log 2>&1
   CUDA_VISIBLE_DEVICES=0 timeout 200 python3 -m benchmarks.bench_proof_scale_train --rows diffusion2gan --batches 512 --compile --steps 30 > $W/bench_train.log 2>&1) &
  (CUDA_VISIBLE_DEVICES=1 timeout 240 python3 -m benchmarks.bench_sid_lsg --out $OUT/sid_mem.json > $W/bench_sid.log 2>&1) &
  wait
  cp $W/bench_unet.log $W/bench_train.log $W/bench_sid.log $OUT/; tail -n 30 $W/bench_unet.log $W/bench_train.log $W/bench_sid.log
  python3 - "$W" <<'PY'
import re, sys
ms = {m[0]: float(m[1]) for m in re.findall(r"^\| (nchw|compile) \| forward \| \d+ \| ([\d.]+) \|", open(sys.argv[1] + "/bench_unet.log").read(), re.M)}
mode = "default" if "nchw" in ms and "compile" in ms and ms["nchw"] >= 1.25 * ms["compile"] else ""
print("teacher forward ms:", ms, "-> --compile-teacher", mode or "(eager)")
open(sys.argv[1] + "/compile_mode", "w").write(mode)
st = {m[0].strip(): float(m[1]) for m in re.findall(r"^\| (diffusion2gan(?: compiled)?) \| 512 \| ([\d.]+) \|", open(sys.argv[1] + "/bench_train.log").read(), re.M)}
rows = ":compile=true" if len(st) == 2 and st["diffusion2gan"] >= 1.25 * st["diffusion2gan compiled"] else ""
print("GAN step ms at batch 512:", st, "-> rows", rows or "(eager)")
open(sys.argv[1] + "/compile_rows", "w").write(rows)
PY
  touch $W/bench_done
fi
CM=$(cat $W/compile_mode 2>/dev/null); CR=$(cat $W/compile_rows 2>/dev/null)
G='regression=latentlpips:lr_warmup=100:gan_warmup=200:d_lead=200:gan_ramp=300:r1_gamma=0:lr_d_ratio=5:batch=512:d_t_max=100:mix_and_match=false:lr_d_schedule=constant:d_beta2=0.99:gan_weight=0.5'
CONTROL="regression_latentlpips@init_from=regression_latentlpips:lr=3e-5:lr_warmup=100:lr_decay=constant:batch=512:steps=1000$CR"
A="diffusion2gan@init_from=regression_latentlpips:$G:lr=3e-5:steps=3000$CR"
A2="diffusion2gan@init_from=regression_latentlpips:$G:lr=6e-5:steps=2000$CR"
VARIANTS=${VARIANTS:-"$CONTROL;$A;$A2"}  # slots: GPU 0 = CONTROL then A2, GPU 1 = A
python3 -m proof_scale.parallel --work $W --max-seconds ${MAXS:-550} --margin ${MARGIN:-45} --rows none --data .devdata/ps8/fm \
  --context .devdata/ps8/context.safetensors --teacher-import default_models/proof_scale/fmnist-teacher.safetensors \
  --sweep-steps 50 --sweep-cfg 1.5 --sweep-count 2000 --teacher-seeds ${TSEEDS:-1} --pairs ${PAIRS:-160000} --heldout 2000 \
  ${CM:+--compile-teacher $CM} --select-every 250 --log-every 50 --variants "$VARIANTS" "$@" 2>&1 | tee $OUT/call.log | grep -v "step [0-9]*/[0-9]* \|captured a CUDA graph" | tail -c 9000
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
