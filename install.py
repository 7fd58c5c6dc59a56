"""Run as a script by ComfyUI-Manager after it installs requirements.txt, and by the Automatic1111/Forge launcher
(with the app's root on PYTHONPATH) when the repository is installed as an extension. Nothing happens on import.

ComfyUI: the pack needs nothing beyond ComfyUI's dependencies and requirements.txt, so this only says what is
missing. A1111/Forge: the one-step script needs torch and safetensors, which the app ships; a missing one is
installed through the launcher's own helpers (launch.is_installed / launch.run_pip), never with a pinned version
that could move the app's own pins.
"""
import importlib.util
import sys

A1111_NEEDS = {"safetensors": "safetensors>=0.4.2"}  # module → pip requirement; torch is the app's own


def main() -> int:
    try:
        import launch  # only the A1111-family launcher provides it
    except ImportError:
        launch = None
    if launch is not None and hasattr(launch, "run_pip"):
        for module, requirement in A1111_NEEDS.items():
            if not launch.is_installed(module):
                launch.run_pip(f"install {requirement}", f"{requirement} for the one-step generator script")
        return 0
    missing = [m for m in ("torch", "safetensors") if importlib.util.find_spec(m) is None]
    if missing:
        sys.stderr.write(f"[onestep] missing packages: {', '.join(missing)}; run: pip install -r requirements.txt\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
