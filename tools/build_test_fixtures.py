"""Build the random-weight models the host tests use, into a ComfyUI models folder.

Usage (ComfyUI tree on PYTHONPATH): python -m tools.build_test_fixtures BASE_DIR
Builds the pack's default models (SD1.5 architecture, random weights) plus small generator variants.
"""
from __future__ import annotations

import argparse
import logging
import os
import time

from tools import fixtures as F
from tools.build_default_models import build_defaults

TINY_VARIANTS = {  # file name → metadata overrides of the tiny generator
    "tiny_eps_t999.safetensors": {},
    "tiny_eps_t625_sid.safetensors": dict(method="sid-lsg", timestep=625, guidance=1.5),
    "tiny_eps_t399_rawz.safetensors": dict(method="dmd2", timestep=399, input_convention="raw_z"),
    "tiny_eps_t999_rawz.safetensors": dict(method="dmd2", timestep=999, input_convention="raw_z"),
    "tiny_v_t999.safetensors": dict(method="other", prediction="v"),
    "tiny_x0_t999.safetensors": dict(method="other", prediction="x0"),
    "tiny_flow.safetensors": dict(method="instaflow", prediction="flow", timestep=1000),
}


def build(base_dir: str) -> None:
    """Write every fixture under `base_dir`/models (skips files that exist)."""
    t0 = time.time()
    build_defaults(base_dir)
    models = os.path.join(base_dir, "models")

    def want(rel: str) -> str | None:
        path = os.path.join(models, rel)
        return None if os.path.exists(path) else path

    for name, meta in TINY_VARIANTS.items():
        if p := want(f"onestep/{name}"):
            F.write_generator(p, **meta)
    if p := want("onestep/tiny_sd21_width1024.safetensors"):
        F.write_generator(p, {**F.TINY_UNET, "context_dim": 1024}, base="sd21")
    logging.info("fixtures ready in %s (%.1f s)", models, time.time() - t0)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    ap = argparse.ArgumentParser()
    ap.add_argument("base_dir")
    build(ap.parse_args().base_dir)
