#!/usr/bin/env bash
# Builds what a GPU benchmark call on the lent device needs beside the tracked tree: that machine has python3 with
# torch 2.11/CUDA but no ComfyUI and no diffusers, kornia, torchsde, av, ..., and no network. Run here after
# scripts/bootstrap.sh (it reads .host/ComfyUI and .host/venv):
#   scripts/device_bundle.sh            .devdata/comfy/ComfyUI: .host/ComfyUI stripped to what importing ComfyUI's
#                                       model code, nodes.py and comfy_extras needs (no tests, models, tokenizers other
#                                       than CLIP's, API nodes, docs); .whl/: the missing wheels for Python 3.12
#                                       x86-64, at .host/venv's versions; prints the size a call carries + its carry list
#   scripts/device_bundle.sh aside      moves default_models/ and benchmarks/results/ (tracked, ~57 MB, not used on the
#                                       device) into .devdata/aside/ so the tree fits the call's 64 MiB;
#   scripts/device_bundle.sh restore    ... and back (run it after the device calls; `git status` must be clean again)
#   scripts/device_bundle.sh check      the benchmarks' --tiny CPU runs against the stripped tree (a missing file
#                                       shows here, not on the device); ~7 min on two cores
# The device side: benchmarks/device/issue20.sh (installs the wheels into /tmp/site, sets PYTHONPATH).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
vpy=.host/venv/bin/python
comfy_src=.host/ComfyUI
comfy_dst=.devdata/comfy/ComfyUI
# Wheels the device lacks (its package list: /work/.library/device/KINDS.md): ComfyUI's imports (av through
# comfy_api.latest, torchsde/trampoline through k_diffusion; kornia and spandrel through comfy_extras), the pack's
# (kornia, kornia_rs) and the diffusers-based benchmarks/proof scale (diffusers, importlib_metadata, lazy_importer).
wheels=(av diffusers importlib_metadata lazy_importer kornia kornia_rs spandrel torchsde trampoline)
ASIDE=.devdata/aside
ASIDE_PATHS=(default_models benchmarks/results)
source scripts/aside.sh
carry='[".whl", ".devdata/comfy"]'

case "${1:-build}" in
aside) aside_out; exit ;;
restore) aside_back; git status --short -- "${ASIDE_PATHS[@]}"; exit ;;
check)
  # As on the device: the stripped tree (not .host's) on PYTHONPATH; the local venv stands in for the device's python.
  export PYTHONPATH="$root:$root/$comfy_dst"
  run() { echo "== $*"; timeout 1200 "$vpy" -m "$@" > "/tmp/device_bundle_check.log" 2>&1 \
          && echo "ok: $(grep -c '^| ' /tmp/device_bundle_check.log) table lines" \
          || { tail -n 30 /tmp/device_bundle_check.log; exit 1; }; }
  "$vpy" - "$comfy_dst" <<'PY'
import importlib, os, sys
# Every comfy_extras module imports (what nodes.init_extra_nodes loads), from the stripped tree.
tree = os.path.abspath(sys.argv[1])
import utils.extra_config  # noqa: F401  (main.py imports the utils package before nodes.py puts comfy/ on sys.path)
import comfy.cli_args
comfy.cli_args.args.cpu = True
import nodes
assert os.path.dirname(os.path.abspath(nodes.__file__)) == tree, nodes.__file__
failed = []
for f in sorted(os.listdir(os.path.join(tree, "comfy_extras"))):
    if f.endswith(".py") and f != "__init__.py":
        try:
            importlib.import_module("comfy_extras." + f[:-3])
        except ModuleNotFoundError as e:
            if e.name != "torchaudio":  # the device has torchaudio; this venv has no CPU build of it
                failed.append(f"{f}: {type(e).__name__}: {e}")
        except Exception as e:
            failed.append(f"{f}: {type(e).__name__}: {e}")
print("comfy_extras imports failing:", failed or "none")
sys.exit(1 if failed else 0)
PY
  run benchmarks.bench_onestep --arch sdxl --tiny
  run benchmarks.bench_onestep --arch sd15 --tiny
  run benchmarks.bench_train --tiny --arch sdxl
  run benchmarks.bench_pairs --tiny --prompts tests/data/PartiPrompts.tsv
  exit 0 ;;
build) ;;
*) echo "usage: $0 [build|aside|restore|check]" >&2; exit 2 ;;
esac

[ -f "$comfy_src/nodes.py" ] && [ -x "$vpy" ] || { echo "run scripts/bootstrap.sh first (.host/ComfyUI, .host/venv)" >&2; exit 1; }
{ git check-ignore -q .devdata/x && git check-ignore -q .whl/x; } || { echo ".devdata/ and .whl/ must be git-ignored (.gitignore)" >&2; exit 1; }

# (a) ComfyUI, stripped.
"$vpy" - "$comfy_src" "$comfy_dst" <<'PY'
import os, shutil, sys
src, dst = sys.argv[1], sys.argv[2]
# Top-level folders nothing imports at node/model level: git, tests, data folders, example scripts, the API nodes
# (only loaded with init_api_nodes, need pydantic & co), the alembic migrations (server database).
DROP_TOP = {".git", ".github", ".ci", "tests", "tests-unit", "models", "input", "output", "user", "temp", "script_examples",
            "comfy_api_nodes", "alembic_db"}
# comfy/text_encoders/<name>_tokenizer: tokenizer data of models other than SD1.5/SDXL (CLIP's is comfy/sd1_tokenizer);
# read only when such a text encoder is loaded. ~16 MB of the 25.
def ignore(folder, names):
    rel = os.path.relpath(folder, src)
    # Links are dropped: serve.sh links the pack itself into custom_nodes/, and following that link copies the pack's
    # .devdata/ (this very copy) into itself until the disk is full.
    drop = {n for n in names if n == "__pycache__" or n.endswith((".pyc", ".md")) or os.path.islink(os.path.join(folder, n))}
    if rel == ".":
        drop |= DROP_TOP & set(names)
    if rel == os.path.join("comfy", "text_encoders"):
        drop |= {n for n in names if n.endswith("_tokenizer") and os.path.isdir(os.path.join(folder, n))}
    return drop
stage = dst + ".partial"
shutil.rmtree(stage, ignore_errors=True)
shutil.copytree(src, stage, ignore=ignore)
shutil.rmtree(dst, ignore_errors=True)
os.makedirs(os.path.dirname(dst), exist_ok=True)
os.rename(stage, dst)
PY
echo "[bundle] $comfy_dst: $(du -sh "$comfy_dst" | cut -f1)"

# (b) wheels at .host/venv's versions; any other wheel in .whl/ would be installed too (two versions of one package
# stop the device's pip), so the folder holds exactly these.
mapfile -t pins < <("$vpy" -c 'import sys, importlib.metadata as m; [print(f"{n}=={m.version(n)}") for n in sys.argv[1:]]' "${wheels[@]}")
mkdir -p .whl
"$vpy" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl "${pins[@]}" 2>&1 \
  | grep -v "is ignored: it is neither a file nor a directory" || true
"$vpy" - "${pins[@]}" <<'PY'
import glob, os, re, sys
want = {re.sub(r"[-_.]+", "_", p.split("==")[0]).lower(): p.split("==")[1] for p in sys.argv[1:]}
seen = set()
for w in sorted(glob.glob(".whl/*.whl")):
    name, version = os.path.basename(w).split("-")[:2]
    name = re.sub(r"[-_.]+", "_", name).lower()
    if want.get(name) == version:
        seen.add(name)
    else:
        os.remove(w)
        print(f"[bundle] removed {w} (not in the bundle's list)")
missing = set(want) - seen
if missing:
    sys.exit(f"[bundle] no wheel downloaded for {sorted(missing)}")
PY
echo "[bundle] .whl: ${pins[*]} ($(du -sh .whl | cut -f1))"

# (c) what a call carries: the tracked and untracked-not-ignored files present (less what `aside` moves away),
# .whl and .devdata/comfy. The device's limit is 64 MiB.
"$vpy" - "$carry" "${ASIDE_PATHS[@]}" <<'PY'
import json, os, subprocess, sys
carry, aside = json.loads(sys.argv[1]), sys.argv[2:]
def files(*args):
    return subprocess.run(["git", "ls-files", "-z", *args], capture_output=True, check=True).stdout.decode().split("\0")
def size(paths):
    return sum(os.path.getsize(p) for p in paths if p and os.path.isfile(p) and not os.path.islink(p))
tree = [p for p in files() + files("--others", "--exclude-standard") if p]
moved = [p for p in tree if any(p == a or p.startswith(a + "/") for a in aside)]
walk = lambda top: [os.path.join(d, f) for d, _, fs in os.walk(top) for f in fs]
tree_b, moved_b = size(tree), size(moved)
carried = {c: size(walk(c)) for c in carry}
total = tree_b - moved_b + sum(carried.values())
mib = lambda b: f"{b / 2**20:.1f} MiB"
print(f"[bundle] tree present now {mib(tree_b)}; less {' + '.join(aside)} ({mib(moved_b)}) = {mib(tree_b - moved_b)}")
for c, b in carried.items():
    print(f"[bundle] carry {c}: {mib(b)}")
print(f"[bundle] a call carries {mib(total)} of 64 MiB after `scripts/device_bundle.sh aside`"
      + ("" if total <= 64 * 2**20 else "  -- OVER THE LIMIT"))
print(f"[bundle] carry: {json.dumps(carry)}")
PY
