#!/usr/bin/env bash
# Builds the Forge host for the A1111/Forge tests in .host/ (ignored by git); run by the Forge tests, not by
# scripts/bootstrap.sh, so only the tests that need Forge pay for it:
#   .host/forge        Stable Diffusion WebUI Forge at commit $FORGE_COMMIT (the tree as released, untouched)
#   .host/forge-venv   its Python deps: torch + torchvision from PyPI, Forge's requirements_versions.txt with the
#                      setuptools pin widened to what this torch needs, joblib (missing from that file) and
#                      huggingface-guess 0.1.0 from PyPI (the same files as the commit Forge pins, 8482624).
# Forge is not on PyPI, Debian or npm, and CI reaches nothing else, so its source must already be on the machine:
#   FORGE_SRC=<git repository or .tar/.tar.gz archive of the Forge repository>   (the commit below is taken from a
#   repository; an archive must be of that commit). Without it this exits 3 and says so; the Forge tests (opted in
#   with ONESTEP_FORGE_TESTS=1, see tests/conftest.py) then fail with that message.
# FORGE_DIR=/path/to/Forge uses an existing Forge tree as is (its deps still go into .host/forge-venv).
# Idempotent: each step is skipped when its stamp exists. Prints the tree and the venv's python on the last line.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
host="$here/.host"
mkdir -p "$host"
FORGE_COMMIT=dfdcbab685e57677014f05a3309b48cc87383167
TORCH_PINS=(torch==2.14.1 torchvision==0.29.1)
py="${PYTHON:-python3}"
log() { echo "[bootstrap-forge] $*" >&2; }

forge="${FORGE_DIR:-$host/forge}"
if [ -z "${FORGE_DIR:-}" ] && [ ! -f "$forge/.tree-ok" ]; then
  src="${FORGE_SRC:-}"
  if [ -z "$src" ] || [ ! -e "$src" ]; then
    log "FORGE NOT AVAILABLE: Stable Diffusion WebUI Forge is not on PyPI, Debian or npm, and its repository"
    log "cannot be cloned here. Set FORGE_SRC to a git repository (or a .tar.gz archive) of"
    log "lllyasviel/stable-diffusion-webui-forge at $FORGE_COMMIT, or set FORGE_DIR to a Forge tree."
    exit 3
  fi
  stage="$forge.partial"
  rm -rf "$stage" && mkdir -p "$stage"
  if [ -d "$src" ] && git --git-dir="$src" rev-parse -q --verify "$FORGE_COMMIT^{commit}" >/dev/null 2>&1; then
    log "exporting Forge $FORGE_COMMIT from $src"
    git --git-dir="$src" archive "$FORGE_COMMIT" | tar -x -C "$stage"
  elif [ -d "$src/.git" ]; then
    log "exporting Forge $FORGE_COMMIT from $src"
    git -C "$src" archive "$FORGE_COMMIT" | tar -x -C "$stage"
  else
    log "unpacking Forge from $src"
    tar -xf "$src" -C "$stage"
    # An archive made with a top folder (git archive --prefix=...) is unpacked from inside it.
    if [ ! -f "$stage/launch.py" ] && [ "$(ls "$stage" | wc -l)" = 1 ]; then
      inner="$stage/$(ls "$stage")"; mv "$inner" "$stage.inner" && rm -rf "$stage" && mv "$stage.inner" "$stage"
    fi
  fi
  [ -f "$stage/launch.py" ] && [ -d "$stage/modules_forge" ] || { log "$src does not hold a Forge tree"; exit 3; }
  touch "$stage/.tree-ok"
  rm -rf "$forge" && mv "$stage" "$forge"
fi

venv="$host/forge-venv"
if [ ! -x "$venv/bin/python" ]; then
  "$py" -m venv "$venv"
fi
vpy="$venv/bin/python"
pip=("$vpy" -m pip install --disable-pip-version-check -q)
if [ ! -f "$venv/.torch-ok" ]; then
  log "installing ${TORCH_PINS[*]} from PyPI (a few minutes)"
  "${pip[@]}" "${TORCH_PINS[@]}"
  touch "$venv/.torch-ok"
fi
if [ ! -f "$venv/.reqs-ok" ] || [ "$forge/requirements_versions.txt" -nt "$venv/.reqs-ok" ]; then
  log "installing Forge's requirements_versions.txt"
  # Torch is pinned above; setuptools 69.5.1 is too old for this torch and >= 81 lacks pkg_resources, which
  # pytorch_lightning 1.9.4 imports at start.
  sed -E -e '/^torch\s*$/d' -e 's/^setuptools==.*/setuptools>=77.0.3,<81/' "$forge/requirements_versions.txt" > "$venv/forge-reqs.txt"
  "${pip[@]}" -r "$venv/forge-reqs.txt" "${TORCH_PINS[@]}" joblib huggingface-guess==0.1.0
  touch "$venv/.reqs-ok"
fi
echo "$forge $vpy"
