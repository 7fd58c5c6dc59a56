#!/usr/bin/env bash
# Build what a proof-scale GPU run carries besides the working tree (session 15 rebuilt it by hand after the last
# session's git-ignored copies were lost; this makes it one command). Run here, after scripts/bootstrap.sh:
#
#   bash benchmarks/device/proof_scale_bundle.sh [--train-images | --train-head N] [--evaluator DIR [--teacher-row RUN_DIR]] [--init-row ROW]
#        [--init GENERATOR.safetensors | --init-weights "best_TAG_a.safetensors best_TAG_b.safetensors"
#         (--init-result RESULT.json | --init-selection SELECTION.json --init-plan PLAN.json) | --init-state DIR]
#   bash benchmarks/device/proof_scale_bundle.sh aside [FILE ...]   before the device calls: moves the tracked files a call
#        does not need (benchmarks/results, tests, web, workflows, docs, the shipped student and text encoder) into
#        .devdata/aside_ps/ (git-ignored, so they do not travel), keeping the FILEs named (e.g. the run's run.sh)
#   bash benchmarks/device/proof_scale_bundle.sh restore            after them: everything back (git status clean again)
#
#   .devdata/ps/context.safetensors   the context table of the shipped text encoder (tools.proof_scale_encoder table)
#   .devdata/ps/fm/                   Fashion-MNIST's test split (scoring); with --train-images the train split too
#                                     (30 MB: only a first call that trains the evaluators needs it — carry it once);
#                                     with --train-head N its first N items only (8,000: 3.5 MB), for rows whose D
#                                     sees real images (d_real=images) beside an init and the evaluator
#   .devdata/ps_init/                 with --init: that one-step generator as the diffusers state dict a row's
#                                     init_from reads (best.safetensors) + result.json/plan.json/row.txt, placed by
#                                     benchmarks/device/proof_scale_run.sh as the finished row ROW (default
#                                     diffusion2gan: rows `...@init_from=diffusion2gan`); with --init-weights, a row
#                                     an earlier session brought back (KEEP's halves + its result.json from
#                                     records.tgz), e.g. --init-row reflow_2rf for pairs-2rf and InstaFlow
#                                     (proof_scale/init_row.py); a row the budget stopped before its end has no
#                                     result.json: its selection.json + plan.json stand for it (--init-selection/-plan);
#                                     with --init-state, a long row's training state that KEEP_STATE brought back
#                                     (G and the method's networks, int8 deltas from the teacher: proof_scale/
#                                     carried_state.py), copied as it is (its row's name is inside it)
#   .devdata/ps/evaluator/            with --evaluator: a run's classifier (classifier.safetensors + .json, e.g.
#                                     benchmarks/results/proof_scale_h200_run15/evaluator) — the run then scores with
#                                     it instead of training one, so its FDs compare with that run's; and the
#                                     E-LatentLPIPS trunk (latent_lpips.safetensors + .json) when the folder has it —
#                                     with both, no call needs --train-images
#   .devdata/ps/teacher_row/          with --teacher-row: a run's scored teacher row (teacher_eval.json + teacher.json and the
#                                     context.safetensors it scored with where kept, e.g. benchmarks/results/proof_scale_h200_run28,
#                                     scored by run 15's evaluator): placed
#                                     into the work folder when the teacher and context match (proof_scale.carried_teacher),
#                                     so teacher-eval is skipped (~130 s of device time); only with the evaluator that scored it
#   .devdata/ps/whl/                  the wheels the device image lacks (Python 3.12): diffusers, kornia, kornia_rs,
#                                     importlib_metadata (apart from scripts/device_bundle.sh's .whl/, whose nine
#                                     wheels would push a proof-scale call past 64 MiB); diffusers' without its
#                                     pipelines (3.4 MB: only its models are imported here)
# The device call: carry [".devdata/ps"] (+ ".devdata/ps_init"), after `aside` — this prints the sizes. The run:
# benchmarks/device/proof_scale_run.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
ASIDE=.devdata/aside_ps
ASIDE_PATHS=(benchmarks/results tests web workflows docs
             default_models/proof_scale/fmnist-student.safetensors default_models/proof_scale/fmnist-text-encoder.safetensors)
source scripts/aside.sh
case "${1:-}" in
aside) shift; aside_out "$@"; exit ;;
restore) aside_back; git status --short; exit ;;
esac
PY=.host/venv/bin/python
FM=${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
TRAIN=0; TRAIN_HEAD=""; INIT=""; EVAL=""; INIT_W=""; INIT_R=""; INIT_SEL=""; INIT_PLAN=""; INIT_STATE=""; INIT_ROW=diffusion2gan; TEACHER_ROW=""
while [ $# -gt 0 ]; do
  case "$1" in
    --train-images) TRAIN=1 ;;
    --train-head) TRAIN_HEAD="$2"; shift ;;
    --init) INIT="$2"; shift ;;
    --init-weights) INIT_W="$2"; shift ;;
    --init-result) INIT_R="$2"; shift ;;
    --init-selection) INIT_SEL="$2"; shift ;;
    --init-plan) INIT_PLAN="$2"; shift ;;
    --init-row) INIT_ROW="$2"; shift ;;
    --init-state) INIT_STATE="$2"; shift ;;
    --evaluator) EVAL="$2"; shift ;;
    --teacher-row) TEACHER_ROW="$2"; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac; shift
done
grep -qx "/.devdata/" .gitignore || { echo "/.devdata/ must be git-ignored (.gitignore)" >&2; exit 2; }
mkdir -p .devdata/ps/fm .devdata/ps/whl
rm -f .devdata/ps/fm/*
cp "$FM"/t10k-*.gz .devdata/ps/fm/
[ "$TRAIN" = 1 ] && cp "$FM"/train-*.gz .devdata/ps/fm/
if [ -n "$TRAIN_HEAD" ]; then
  $PY -c 'import sys; from onestep.latent_lpips.datasets import split_head; split_head(sys.argv[1], sys.argv[2], "train", int(sys.argv[3]))' \
    "$FM" .devdata/ps/fm "$TRAIN_HEAD"
fi
rm -rf .devdata/ps/evaluator
if [ -n "$EVAL" ]; then mkdir -p .devdata/ps/evaluator && cp "$EVAL"/classifier.safetensors "$EVAL"/classifier.json .devdata/ps/evaluator/
  # the E-LatentLPIPS trunk too when the folder has it: then no stage needs the training images
  if [ -f "$EVAL"/latent_lpips.safetensors ]; then cp "$EVAL"/latent_lpips.safetensors "$EVAL"/latent_lpips.json .devdata/ps/evaluator/; fi; fi
rm -rf .devdata/ps/teacher_row
if [ -n "$TEACHER_ROW" ]; then
  [ -n "$EVAL" ] || { echo "--teacher-row needs --evaluator (the classifier that scored it)" >&2; exit 2; }
  mkdir -p .devdata/ps/teacher_row && cp "$TEACHER_ROW"/teacher_eval.json "$TEACHER_ROW"/teacher.json .devdata/ps/teacher_row/
  # the table it scored with, when kept: a rebuilt table that differs by round-off only still matches (carried_teacher)
  if [ -f "$TEACHER_ROW"/context.safetensors ]; then cp "$TEACHER_ROW"/context.safetensors .devdata/ps/teacher_row/; fi; fi
PYTHONPATH=.host/ComfyUI $PY -m tools.proof_scale_encoder table default_models/proof_scale/fmnist-text-encoder.safetensors .devdata/ps/context.safetensors
if [ -n "$INIT_STATE" ]; then
  [ -f "$INIT_STATE/best.q8.safetensors" ] || { echo "--init-state $INIT_STATE: no best.q8.safetensors (proof_scale_run.sh KEEP_STATE)" >&2; exit 2; }
  rm -rf .devdata/ps_init && mkdir -p .devdata/ps_init && cp "$INIT_STATE"/*.q8.safetensors .devdata/ps_init/
fi
if [ -n "$INIT" ] || [ -n "$INIT_W" ]; then
  rm -rf .devdata/ps_init
  if [ -n "$INIT" ]; then $PY -m proof_scale.init_row pack .devdata/ps_init --row "$INIT_ROW" --generator "$INIT"
  elif [ -n "$INIT_R" ]; then $PY -m proof_scale.init_row pack .devdata/ps_init --row "$INIT_ROW" --weights $INIT_W --result "$INIT_R"
  else $PY -m proof_scale.init_row pack .devdata/ps_init --row "$INIT_ROW" --weights $INIT_W --selection "$INIT_SEL" --plan "$INIT_PLAN"; fi
fi
# pinned at .host/venv's versions, as scripts/device_bundle.sh pins them (two versions of one package stop the install)
pins=$($PY -c 'from importlib.metadata import version as v; print(" ".join(f"{n}=={v(n)}" for n in ("diffusers", "kornia", "kornia_rs", "importlib_metadata")))')
.host/venv/bin/pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .devdata/ps/whl $pins 2>&1 | grep -v "^WARNING" || true
# diffusers' pipelines (every model family's) are never imported here: dropping them keeps 3.4 MB of room for data
$PY - .devdata/ps/whl/diffusers-*.whl <<'PY'
import os, sys, zipfile
path = sys.argv[1]
with zipfile.ZipFile(path) as src:
    keep = [i for i in src.infolist() if not (i.filename.startswith("diffusers/pipelines/") and i.filename.count("/") > 2)]
    if len(keep) < len(src.infolist()):
        with zipfile.ZipFile(path + ".tmp", "w", zipfile.ZIP_DEFLATED) as dst:
            for i in keep:
                dst.writestr(i, src.read(i.filename))
        os.replace(path + ".tmp", path)
PY
du -sh --apparent-size .devdata/ps .devdata/ps_init 2>/dev/null || true
echo "tracked tree without benchmarks/results, tests, web, workflows, docs, the student and the text encoder:"
git ls-files | grep -v '^benchmarks/results/\|^tests/\|^web/\|^workflows/\|^docs/\|fmnist-student\|fmnist-text-encoder' | tr '\n' '\0' | du -c --apparent-size -m --files0-from=- | tail -1
