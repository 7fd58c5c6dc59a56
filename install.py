"""Run by ComfyUI-Manager after it installs requirements.txt (and later by Automatic1111's launcher).

The pack needs nothing beyond ComfyUI's own dependencies and requirements.txt, so this only checks them and
says what is missing; it never installs at import time.
"""
import importlib.util
import sys

missing = [m for m in ("torch", "safetensors") if importlib.util.find_spec(m) is None]
if missing:
    sys.stderr.write(f"[onestep] missing packages: {', '.join(missing)}; run: pip install -r requirements.txt\n")
    sys.exit(1)
