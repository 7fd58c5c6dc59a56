#!/usr/bin/env bash
# The main job: installs what is needed (a local ComfyUI host in .host/ unless COMFYUI_DIR names one), builds the
# embedded default models, links the pack into custom_nodes/ and starts ComfyUI at http://127.0.0.1:${PORT:-8188}.
# Extra arguments go to ComfyUI's main.py (e.g. --cpu on a machine without a GPU is chosen automatically).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$here/scripts/bootstrap.sh"
comfy="${COMFYUI_DIR:-$here/.host/ComfyUI}"
py="$here/.host/venv/bin/python"
link="$comfy/custom_nodes/$(basename "$here")"
[ -e "$link" ] || ln -s "$here" "$link"
echo "[serve] installing the embedded Fashion-MNIST models; building the random-weight SD1.5 set (first run only)"
(cd "$here" && PYTHONPATH="$here:$comfy" "$py" -m tools.build_default_models "$comfy")
extra=()
"$py" -c "import torch,sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null || extra+=(--cpu)
cd "$comfy"
exec "$py" main.py --listen 127.0.0.1 --port "${PORT:-8188}" "${extra[@]}" "$@"
