#!/usr/bin/env bash
# The test command: builds the local host if needed (scripts/bootstrap.sh), then runs the core unit tests and
# the tests against a real ComfyUI started on 127.0.0.1. Extra arguments go to pytest.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$here/scripts/bootstrap.sh"
comfy="${COMFYUI_DIR:-$here/.host/ComfyUI}"
cd "$here"
# The ComfyUI tree goes on PYTHONPATH only for the tests that use ComfyUI's modules in-process.
PYTHONPATH="$comfy" exec "$here/.host/venv/bin/python" -m pytest "$@"
