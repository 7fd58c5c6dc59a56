#!/usr/bin/env bash
# Issue 20's GPU rows (docs/benchmarks.md: "SDXL at 1024² (issue 20) — how to run", "Teacher calls from CUDA graphs
# (issue 20)", bench_train --arch sdxl), as three device calls of under 570 s each. Here first:
#   scripts/bootstrap.sh && scripts/device_bundle.sh && scripts/device_bundle.sh aside
# then device `run` (kind nvidia-h200-x2: the two jobs of a call side by side, one per GPU; on one GPU they run one
# after the other and the second gets what time is left):
#   command "CALL=1 bash benchmarks/device/issue20.sh", carry [".whl", ".devdata/comfy"], timeout_s 600
#   CALL=1  SDXL 1024² one-step rows without compile, batches 1 4   ‖ bench_train --arch sdxl (full/LoRA b2, memory=low)
#   CALL=2  bench_pairs core/graph/compile, batches 8 32, PartiPrompts ‖ SD1.5 512² one-step rows with compile
#   CALL=3  bench_pairs again (its compile first round loads CALL 2's artifacts) ‖ SDXL batch 1 with compile, VAE Decode (fast) max-autotune
#   CALL=4  bench_train --arch sdxl: the LoRA-memory rows (rank 32; rank 64 with bf16 factors + EMA) ‖ CALL 1's SDXL rows again
#           (the decoder probe with cuDNN-autotuned captures since session 20)
#   CALL=5  benchmarks.probe_unet_speed: the teacher's raw SD1.5 UNet call under each speed setting (compile variants,
#           cuDNN autotune, channels_last, inductor options, freezing, max-autotune) ‖ SD1.5 bs8 one-step rows; alone: ONLY=a CALL=5
#           (PROBE_ONLY=REGEX: only the variants whose names it matches, e.g. PROBE_ONLY='freezing|^eager$'; session 44's
#           sub-pixel upsampling, eager, graphed and compiled with freezing: PROBE_ONLY='^eager|^cuda graph|default \+ graph \+ freezing( \+ subpixel)?$')
#   CALL=6  benchmarks.probe_vae_decoder: where the decoder's 83.6 ms at 1024² go, layer by layer and the top GPU kernels
#   CALL=7  the same with GroupNorm from wide reductions (--wide-groupnorm: VAE Decode (fast)'s cuda-graph mode) ‖ and in
#           channels_last (--channels-last: no layout conversions around cuDNN's convolutions), 1024² batch 1
#           ‖ the same with sub-pixel upsampling (--subpixel: as VAE Decode (fast)'s compiled modes run it); ~1 min in all
#   CALL=8  SD1.5 512² batch 8 with VAE Decode (fast) in max-autotune (the bs8 ≤ 70 ms target: the compiled decoder was
#           65.6 of its 91.5 ms) ‖ the same at batch 1 (bs1 ≤ 15 ms); alone each: ONLY=a / ONLY=b, LIMIT ≥ 400. Both with
#           --profile (session 62): each end-to-end path's GPU kernel time against its wall time, kernels by category
#   CALL=9  the wide GroupNorm's affine pass in the whole decode at 1024²: addcmul ‖ batch norm (--wide-affine)
#   CALL=10 the same with the per-shape choice (--wide-affine auto: batch norm from 8 channels per group) ‖ addcmul
#   CALL=11 SD1.5 512² batch 1, default compile, --profile with each of the pack's end-to-end paths' timeline written
#           to $OUT/trace/ (read with benchmarks/trace_gaps.py) ‖ the same without timelines; alone each (ONLY=a / b,
#           LIMIT ≥ 240; EXTRA=--no-compile: the cuda-graph paths only, ~80 s), e.g. b in a copy of the tree with earlier
#           sources for a before/after on one machine (session 63)
#   PAIRS_LONG=N (CALL 2/3): each path also collects N batches as ONE collection (the node's 64-pair shards, set-up
#           once), the rate a user's long run gets; the rounds pay the set-up per batch (session 45)
# ONLY=b runs the second job alone. Two calls' jobs in one device call (each script's LIMIT counts from its own start):
#   CALL=6 LIMIT=170 bash benchmarks/device/issue20.sh; CALL=3 ONLY=b LIMIT=380 bash benchmarks/device/issue20.sh
# A short CALL (the first job alone, smaller): ONLY=a LIMIT=240 PAIRS_BATCHES=8 PAIRS_ROUNDS=3 CALL=2 bash benchmarks/device/issue20.sh
# CALL 2 returns ComfyUI's user/onestep/compile_cache as compile_cache.tgz (split in ≤15 MiB parts if larger): copy the
# part(s) into .devdata/compile_cache/ here and add ".devdata/compile_cache" to CALL 3's carry (a machine still warm
# from CALL 2 also keeps them in /tmp). Afterwards: scripts/device_bundle.sh restore.
# Each job writes <name>.json (its --out) and <name>.log into $OUT; env.txt holds the GPU and versions.
set -uo pipefail
: "${CALL:?set CALL=1 to 11}"
OUT=${OUT:-/tmp/issue20_out}
LIMIT=${LIMIT:-550}  # seconds the jobs may run to (+10 s to be killed, then the summary); the device's limit is 600
DRY=${DRY:-}         # DRY=1: print the job commands only (no install, nothing run), e.g. to check them here
mkdir -p "$OUT"
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
comfy=.devdata/comfy/ComfyUI
[ -f "$comfy/nodes.py" ] || { echo "no $comfy: run scripts/device_bundle.sh here and carry .devdata/comfy"; exit 1; }

# The wheels once per machine (a warm machine keeps /tmp/site between calls).
stamp="$(ls .whl/*.whl | xargs -n1 basename | sort | tr '\n' ' ')"
if [ -z "$DRY" ] && [ "$(cat /tmp/site/.wheels 2>/dev/null)" != "$stamp" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  echo "$stamp" > /tmp/site/.wheels
fi
export PYTHONPATH=/tmp/site:$PWD:$PWD/$comfy PYTHONUNBUFFERED=1
# ComfyUI's user folder (the pack's compile cache) lives outside the carried tree, which each call replaces.
[ -n "$DRY" ] || { mkdir -p /tmp/comfy_user
  rm -rf "$comfy/user" && ln -s /tmp/comfy_user "$comfy/user"; }
if [ -d .devdata/compile_cache ] && ls .devdata/compile_cache/compile_cache.tgz* >/dev/null 2>&1; then
  cat .devdata/compile_cache/compile_cache.tgz* | tar -xz -C /tmp/comfy_user && echo "compile cache from .devdata/compile_cache unpacked"
fi
{ nvidia-smi -L; python3 -c 'import torch, sys; print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda)'
  ls .whl; git log -1 --format='%H %s' 2>/dev/null; } > "$OUT/env.txt" 2>&1
ngpu=${NGPU:-$(nvidia-smi -L 2>/dev/null | grep -c '^GPU')}
echo "CALL=$CALL, $ngpu GPU(s), set-up took $SECONDS s"

left() { echo $((LIMIT - SECONDS)); }
# job NAME GPU SECONDS CMD...: CMD under timeout on one GPU, output in $OUT/NAME.log
job() {
  local name=$1 gpu=$2 secs=$3; shift 3
  echo "[$name] GPU $gpu, ${secs} s: $*"
  [ -n "$DRY" ] && return
  CUDA_VISIBLE_DEVICES=$gpu timeout -k 10 "$secs" "$@" > "$OUT/$name.log" 2>&1
  echo "[$name] exit $? at $SECONDS s"
}
onestep() { local name=$1 secs=$2; shift 2  # bench_onestep skips groups that would pass its --time-budget
  echo python3 -m benchmarks.bench_onestep "$@" --time-budget $((secs - 25)) --out "$OUT/$name.json"; }
pairs() { echo python3 -m benchmarks.bench_pairs --batches ${PAIRS_BATCHES:-8 32} --paths ${PAIRS_PATHS:-core graph compile} --rounds ${PAIRS_ROUNDS:-5} --breakdown --profile ${PAIRS_LONG:+--long $PAIRS_LONG} \
  --prompts tests/data/PartiPrompts.tsv --out "$OUT/$1.json"; }

case "$CALL" in
1) a=(sdxl_graph onestep --arch sdxl --batches 1 4 --no-compile)
   b=(sdxl_train python3 -m benchmarks.bench_train --arch sdxl --steps 32 --warmup 4 --out "$OUT/sdxl_train.json") ;;
2) a=(pairs_fast_teacher_run1 pairs)
   b=(sd15_compile onestep --arch sd15 --batches 1 8) ;;
4) a=(sdxl_train_lora_memory python3 -m benchmarks.bench_train --arch sdxl --rows lora64-b2-ckpt-low-bf16 lora32-b2-ckpt-low
        --steps 32 --warmup 4 --out "$OUT/sdxl_train_lora_memory.json")
   b=(sdxl_graph_cudnn onestep --arch sdxl --batches 1 4 --no-compile) ;;
5) a=(probe_unet_speed python3 -m benchmarks.probe_unet_speed --time-budget "$((LIMIT - SECONDS - 20))" --out "$OUT/probe_unet_speed.json"
        ${PROBE_ONLY:+--only "$PROBE_ONLY"})
   b=(sd15_compile onestep --arch sd15 --batches 8) ;;
6) a=(vae_decoder_1024_b1 python3 -m benchmarks.probe_vae_decoder --size 1024 --batch 1 --json "$OUT/vae_decoder_1024_b1.json")
   b=(vae_decoder_1024_b1_subpixel python3 -m benchmarks.probe_vae_decoder --size 1024 --batch 1 --subpixel --json "$OUT/vae_decoder_1024_b1_subpixel.json") ;;
7) a=(vae_decoder_1024_b1_wide python3 -m benchmarks.probe_vae_decoder --size 1024 --batch 1 --wide-groupnorm --kernels 6 --json "$OUT/vae_decoder_1024_b1_wide.json")
   b=(vae_decoder_1024_b1_wide_nhwc python3 -m benchmarks.probe_vae_decoder --size 1024 --batch 1 --wide-groupnorm --channels-last --kernels 6 --json "$OUT/vae_decoder_1024_b1_wide_nhwc.json") ;;
8) a=(sd15_b8_autotune onestep --arch sd15 --batches 8 --autotune-batches 8 --profile)
   b=(sd15_b1_autotune onestep --arch sd15 --batches 1 --autotune-batches 1 --profile) ;;
9) a=(vae_decoder_1024_b1_wide_addcmul python3 -m benchmarks.probe_vae_decoder --size 1024 --batch 1 --wide-groupnorm --wide-affine addcmul --kernels 6 --json "$OUT/vae_decoder_1024_b1_wide_addcmul.json")
   b=(vae_decoder_1024_b1_wide_bn python3 -m benchmarks.probe_vae_decoder --size 1024 --batch 1 --wide-groupnorm --wide-affine batch_norm --kernels 6 --json "$OUT/vae_decoder_1024_b1_wide_bn.json") ;;
10) a=(vae_decoder_1024_b1_wide_auto python3 -m benchmarks.probe_vae_decoder --size 1024 --batch 1 --wide-groupnorm --wide-affine auto --kernels 6 --json "$OUT/vae_decoder_1024_b1_wide_auto.json")
   b=(vae_decoder_1024_b1_wide_addcmul python3 -m benchmarks.probe_vae_decoder --size 1024 --batch 1 --wide-groupnorm --wide-affine addcmul --kernels 6 --json "$OUT/vae_decoder_1024_b1_wide_addcmul.json") ;;
11) a=(sd15_b1_trace onestep --arch sd15 --batches 1 --profile --trace "$OUT/trace" --compile-estimate 90 ${EXTRA:-})
   b=(sd15_b1 onestep --arch sd15 --batches 1 --profile --compile-estimate 60 ${EXTRA:-}) ;;
3) a=(pairs_fast_teacher_run2 pairs)
   b=(sdxl_b1_compile onestep --arch sdxl --batches 1 --autotune-batches 1 --profile) ;;
*) echo "CALL must be 1 to 11"; exit 2 ;;
esac

# A job's command line, made once its time is known (bench_onestep's budget depends on it).
cmd() { local name=$1 secs=$2 kind=$3; shift 3
  case "$kind" in
    onestep) onestep "$name" "$secs" "$@" ;;
    pairs) pairs "$name" ;;
    *) echo "$kind" "$@" ;;
  esac; }
run_a() { job "${a[0]}" "$1" "$2" $(cmd "${a[0]}" "$2" "${a[@]:1}"); }
run_b() { job "${b[0]}" "$1" "$2" $(cmd "${b[0]}" "$2" "${b[@]:1}"); }
if [ "${ONLY:-}" = a ]; then  # the first job alone, with all the time (e.g. a short diagnostic call)
  run_a 0 "$(left)"
elif [ "${ONLY:-}" = b ]; then  # the second job alone (e.g. CALL=3's compiled SDXL rows without the pairs)
  run_b 0 "$(left)"
elif [ "$ngpu" -ge 2 ]; then
  t=$(left); run_a 0 "$t" & run_b 1 "$t" & wait
else
  run_a 0 $(( $(left) / 2 )); run_b 0 "$(left)"
fi

if [ "$CALL" = 2 ] && [ -d /tmp/comfy_user/onestep/compile_cache ]; then
  tar -czf /tmp/compile_cache.tgz -C /tmp/comfy_user onestep/compile_cache
  split -b 15m -d /tmp/compile_cache.tgz "$OUT/compile_cache.tgz." && rm /tmp/compile_cache.tgz
  echo "compile cache: $(du -ch "$OUT"/compile_cache.tgz.* | tail -n 1 | cut -f1) in $(ls "$OUT"/compile_cache.tgz.* | wc -l) part(s)"
fi
for f in $(ls "$OUT"/*.log 2>/dev/null); do echo "===== $(basename "$f") (last lines)"; grep -v '^WARNING' "$f" | grep -v '^ \|^{\|^}' | tail -n 45; done
echo "done at $SECONDS s; files: $(ls "$OUT" | tr '\n' ' ')"
