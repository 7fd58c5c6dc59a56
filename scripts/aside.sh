# Sourced by the device bundle scripts (scripts/device_bundle.sh, benchmarks/device/proof_scale_bundle.sh): moves
# tracked files and folders a device call does not need out of the tree, into a git-ignored folder, so the tree fits
# the call's 64 MiB — and back. The caller sets ASIDE (that folder, under .devdata/) and ASIDE_PATHS (an array).
#   aside_out [KEEP ...]   move ASIDE_PATHS away; files named KEEP (inside them, e.g. the run's run.sh) stay in the tree
#   aside_back             everything back; what the tree holds now (kept files edited meanwhile, new files) wins

aside_out() {
  [ ! -e "$ASIDE" ] || { echo "$ASIDE exists: restore first" >&2; return 1; }
  local p f
  for f in "$@"; do [ -f "$f" ] || { echo "no file $f to keep" >&2; return 2; }; done
  for p in "${ASIDE_PATHS[@]}"; do
    [ -e "$p" ] || continue
    mkdir -p "$ASIDE/$(dirname "$p")" && mv "$p" "$ASIDE/$p"
  done
  for f in "$@"; do
    [ -e "$f" ] || { mkdir -p "$(dirname "$f")" && cp -p "$ASIDE/$f" "$f"; }
  done
  echo "moved aside into $ASIDE: ${ASIDE_PATHS[*]}; kept: ${*:-nothing}"
}

aside_back() {
  [ -d "$ASIDE" ] || { echo "nothing aside ($ASIDE)" >&2; return 1; }
  local p left back=()
  for p in "${ASIDE_PATHS[@]}"; do
    [ -e "$ASIDE/$p" ] || continue
    if [ -d "$p" ]; then cp -a "$p"/. "$ASIDE/$p"/ && rm -rf "$p"
    elif [ -e "$p" ]; then mv -f "$p" "$ASIDE/$p"; fi
    mkdir -p "$(dirname "$p")" && mv "$ASIDE/$p" "$p" && back+=("$p")
  done
  left=$(find "$ASIDE" -type f | head -n 3)
  [ -z "$left" ] || { echo "left in $ASIDE (not in ASIDE_PATHS): $left" >&2; return 1; }
  rm -rf "$ASIDE"
  echo "restored: ${back[*]:-nothing}"
}
