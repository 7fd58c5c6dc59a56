#!/bin/bash
# Device side of a proof-scale run (the pattern of runs 10–15; benchmarks/results/proof_scale_h200_run15/run.sh is one
# instance): evaluators (classifier + E-LatentLPIPS trunk, when the work folder has none), the shipped teacher
# imported and scored, PAIRS Euler-50 pairs + held out, then the rows of VARIANTS (';'-separated, proof_scale.rows
# variants; on 2 GPUs slot k = variants k, k+2, ... in turn). Resumable: the same command each call, chained within the
# machine's idle release; MAXS=... KEEP=tag,... (or KEEP=variants: every variant row's; KEEP=best: the variant row with the
# lowest selection FD so far, for rows side by side whose winner is not known when the calls are issued) on the last call brings selected weights back (tags are printed; at most
# two: each is two files of ~10 MB, and what comes back is ≤ 8 files, 64 MiB in all, with call.log, records.tgz and
# evaluator.tgz — the classifier that CPU scoring of returned weights needs, when it was not carried in (--evaluator);
# the weights are packed first, so a call near its limit loses records, not weights).
#
#   VARIANTS='sid_lsg@init_from=diffusion2gan:lr=3e-5:steps=2000:batch=256:ema_decay=0.99;...' bash benchmarks/device/proof_scale_run.sh
#
# FINISH=1: a row the deadline stops is exported and scored in the same call (its best selection point so far; the
# record says where it stopped) — scoring takes ~20 s more, so lower MAXS by as much (~515 for a 600 s call).
# compile_cache.tgz (when the call compiled something new): unpack it into .devdata/ps/compile_cache here
# (`mkdir -p .devdata/ps/compile_cache && tar -xzf compile_cache.tgz -C .devdata/ps/compile_cache`); later calls carry it
# and load the compiled teacher instead of compiling it (proof_scale.pipeline --compile-cache).
# Carry: [".devdata/ps"] (+ ".devdata/ps_init" for rows with init_from=diffusion2gan), built by
# benchmarks/device/proof_scale_bundle.sh (then its `aside`); a fresh machine's first call needs the train images
# (--train-images) unless the evaluator folder carries the E-LatentLPIPS trunk (run 15's does since run 19).
set -o pipefail
[ -n "$VARIANTS$EXTRA" ] || { echo "set VARIANTS (rows) and/or EXTRA (e.g. --chains teacher-steps,distill-reflow_2rf,pairs-2rf,distill-instaflow)"; exit 2; }
WHL=.devdata/ps/whl; [ -d "$WHL" ] || WHL=.whl  # proof_scale_bundle.sh's own wheels (older bundles: .whl)
# SKIP_PIP=1 (a chained call) skips the install only where /tmp/site already has it: a machine released between calls
# comes back bare (session 36's second call found no kornia and no work folder)
[ -n "$SKIP_PIP" ] && PYTHONPATH=/tmp/site python3 -c "import kornia, diffusers" 2>/dev/null \
  || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$WHL"/*.whl || exit 9
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
W=${W:-runs/ps}
O=${OUT:-$W}
mkdir -p "$W"
echo "WORK: $(ls "$W" | tr '\n' ' ')"
if [ -f .devdata/ps/evaluator/classifier.json ] && [ ! -f "$W/classifier.json" ]; then
  cp .devdata/ps/evaluator/classifier.* "$W/" && echo "EVALUATOR placed (its classifier: FDs compare with the run it came from)"; fi
if [ -f .devdata/ps/evaluator/latent_lpips.json ] && [ ! -f "$W/latent_lpips.json" ]; then
  cp .devdata/ps/evaluator/latent_lpips.* "$W/" && echo "E-LatentLPIPS trunk placed"; fi
# a scored teacher row carried in (proof_scale_bundle.sh --teacher-row): teacher-eval is skipped when it matches. The
# helpers below start Python and import torch (seconds each; ~70 s of set-up with them in run 42's second call), so a
# chained call on the warm machine, whose work folder already has what they place, does not start them.
[ -d .devdata/ps/teacher_row ] && [ ! -f "$W/teacher_eval.json" ] && python3 -m proof_scale.carried_teacher place .devdata/ps/teacher_row "$W" \
  --teacher default_models/proof_scale/fmnist-teacher.safetensors --context .devdata/ps/context.safetensors
# rows carried in (.devdata/ps_init, proof_scale_bundle.sh --init*; renamed .devdata/ps_init_NAME when chained calls carry
# different rows, one per call for the 64 MiB): each placed as finished (distill/diffusion2gan unless its row.txt names
# another, e.g. reflow_2rf), once; a row placed by an earlier call on the same warm machine stays in the work folder
for init in .devdata/ps_init .devdata/ps_init_*; do
  [ -d "$init" ] || continue
  mark="$W/.placed_$(basename "$init")_$(cat "$init"/* 2>/dev/null | md5sum | cut -c1-12)"  # this content, placed before
  [ -f "$mark" ] || { python3 -m proof_scale.init_row place "$init" "$W" && touch "$mark"; }
done
nvidia-smi --query-gpu=name,memory.used --format=csv 2>/dev/null
# the compiled teacher's artifacts (--compile-cache): carried in .devdata/ps/compile_cache when an earlier call brought
# them back (compile_cache.tgz below), so the pairs skip the ~45 s compile
COMPILE_DIR=.devdata/ps/compile_cache; mkdir -p "$COMPILE_DIR"
cc_sum() { (cd "$COMPILE_DIR" && find . -type f -exec md5sum {} + | sort | md5sum); }; cc_before=$(cc_sum)
[ -z "$(ls -A "$COMPILE_DIR")" ] || echo "COMPILE CACHE carried: $(du -sh "$COMPILE_DIR" | cut -f1)"
# MAXS counts from this script's start: the set-up above took ~70 s in run 42's second call (imports of the place
# helpers), time a deadline counted from proof_scale.parallel's start did not have, so the call's timeout cut the row
# before its last save and 460 steps were lost
LEFT=$(( ${MAXS:-550} - SECONDS )); [ "$LEFT" -gt 0 ] || LEFT=1  # 0 would mean no deadline at all
echo "set-up took ${SECONDS} s; $LEFT s left of MAXS=${MAXS:-550}"
python3 -m proof_scale.parallel --work "$W" --max-seconds "$LEFT" --margin "${MARGIN:-45}" --rows none --data "${DATA:-.devdata/ps/fm}" \
  --context .devdata/ps/context.safetensors --teacher-import default_models/proof_scale/fmnist-teacher.safetensors \
  --sweep-steps 50 --sweep-cfg 1.5 --sweep-count 2000 --teacher-seeds "${TEACHER_SEEDS:-3}" --pairs "${PAIRS:-80000}" --heldout "${HELDOUT:-2000}" \
  ${NOCOMPILE:---compile-teacher default} --select-every "${SELECT:-250}" --log-every 50 ${VARIANTS:+--variants "$VARIANTS"} \
  ${FINISH:+--finish-at-deadline} --compile-cache "$COMPILE_DIR" $EXTRA 2>&1 \
  | tee "$O/call.log" | grep -v "step [0-9]*/[0-9]* \|captured a CUDA graph\|UserWarning\|This call originates\|torch._dynamo\|upsampling.py\|is_torch_version\|^\[phase[0-9]* gpu [0-9,]*\] *$" | tail -c 9000
rc=$?
grep "step [0-9]*/[0-9]* " "$O/call.log" | awk 'NR%4==0' | cut -c1-400 | tail -60
# the kept weights first: a call near its 600 s limit loses what is packed last
python3 - "$W" "$O" <<'PY'
import glob, hashlib, json, os, sys
from safetensors.torch import load_file, save_file
work, out = sys.argv[1:]
keep = [k for k in os.environ.get("KEEP", "").split(",") if k]


def best_fd(d):
    try:
        with open(os.path.join(d, "selection.json"), encoding="utf-8") as f:
            return json.load(f)["best"]["fd"]
    except (OSError, KeyError, TypeError, ValueError):
        return float("inf")


variants = [d for d in sorted(glob.glob(os.path.join(work, "distill", "*"))) if "__" in os.path.basename(d)]
best = min(variants, key=best_fd) if variants else None
if best is not None and any(k == "best" or k.startswith("best:") for k in keep + os.environ.get("KEEP_STATE", "").split(",")):
    print("best variant row (lowest selection FD):", os.path.basename(best), best_fd(best))
for d in sorted(glob.glob(os.path.join(work, "distill", "*"))):
    b, name = os.path.join(d, "best.safetensors"), os.path.basename(d)
    tag = "g" + hashlib.sha1(name.encode()).hexdigest()[:6] if "__" in name else name
    kept = tag in keep or ("variants" in keep and "__" in name) or ("best" in keep and d == best)  # variants / best: no tag to compute
    print("weights tag", tag, name, "kept" if kept else "")
    # KEEP_STATE=TAG:NAME,... (TAG as KEEP's, or variants; the last call of a session, for a row that goes on in the
    # next): the row's training state (its checkpoint's G EMA and the method's networks, e.g. SiD-LSG's fake score, as
    # int8 deltas from the teacher: proof_scale/carried_state.py) into $O/state_TAG/, two files of ~10 MB; next session
    # `proof_scale_bundle.sh --init-state DIR` carries it and rows with init_from=NAME go on from it
    for spec in [x for x in os.environ.get("KEEP_STATE", "").split(",") if x]:
        want, _, row = spec.partition(":")
        if (want == tag or (want == "variants" and "__" in name) or (want == "best" and d == best)) and os.path.isfile(os.path.join(d, "checkpoint.safetensors")):
            from proof_scale.carried_state import pack
            for path in pack(os.path.join(out, f"state_{tag}"), d, os.path.join(work, "teacher.safetensors"), row):
                print("state", path, os.path.getsize(path), "bytes")
    if not kept or not os.path.isfile(b):
        continue
    w = {k: v.half().contiguous() for k, v in load_file(b).items()}
    ks = sorted(w); h = len(ks) // 2  # two files of < 16 MiB each
    save_file({k: w[k] for k in ks[:h]}, os.path.join(out, f"best_{tag}_a.safetensors"))
    save_file({k: w[k] for k in ks[h:]}, os.path.join(out, f"best_{tag}_b.safetensors"))
PY
# new compile artifacts come back for the next call: tar -xzf compile_cache.tgz -C .devdata/ps/compile_cache (here)
if [ "$(cc_sum)" != "$cc_before" ]; then
  tar czf /tmp/compile_cache.tgz -C "$COMPILE_DIR" . && if [ "$(stat -c %s /tmp/compile_cache.tgz)" -le 15728640 ]; then
    mv /tmp/compile_cache.tgz "$O/"; else echo "compile cache over 15 MiB: not brought back"; fi; fi
tar czf "$O/records.tgz" --exclude='*.safetensors' --exclude='pairs' --exclude='pairs_heldout' --exclude='*.ckpt' "$W"
# the evaluator (classifier: CPU scoring of returned weights, and later runs' --evaluator) and the E-LatentLPIPS trunk,
# unless it was carried in (then it is already here)
[ -f .devdata/ps/evaluator/classifier.json ] || tar czf "$O/evaluator.tgz" "$W"/classifier.safetensors "$W"/latent_lpips.safetensors "$W"/*.json 2>/dev/null
ls -la "$O"
echo "parallel exit $rc"
