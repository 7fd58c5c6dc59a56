"""The pack's ComfyUI-side modules for command-line tools that run ComfyUI as a library (no server): the repo is
imported as a package the way ComfyUI imports a custom-node folder, so nodes/ keeps its relative imports."""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys

PACKAGE = "onestep_pack"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def pack_module(relative: str):
    """`<pack>.<relative>` (e.g. "nodes.pair_collection"); ComfyUI is told to use the CPU when there is no GPU."""
    import comfy.cli_args  # must be set before comfy.model_management loads
    import torch

    comfy.cli_args.args.cpu = comfy.cli_args.args.cpu or not torch.cuda.is_available()
    if PACKAGE not in sys.modules:
        spec = importlib.util.spec_from_file_location(PACKAGE, os.path.join(REPO, "__init__.py"), submodule_search_locations=[REPO])
        sys.modules[PACKAGE] = importlib.util.module_from_spec(spec)  # the package namespace only: no node registration
    return importlib.import_module(f"{PACKAGE}.{relative}")
