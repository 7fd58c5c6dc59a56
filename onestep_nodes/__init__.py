"""Thin ComfyUI adapters: the only package that imports ComfyUI (`comfy`, `folder_paths`). Not named `nodes`, because
ComfyUI's own top-level module is. Each node module is imported on its own by the pack's entry point (the repository's
__init__.py), so one that fails to import is logged and the others still load."""
from __future__ import annotations

import importlib
import logging

log = logging.getLogger("onestep")

NODE_MODULES = (
    "load_generator", "generate", "sampler", "import_generator", "fast_decode", "latent_diff", "collect_pairs", "train_generator",
    "proof_scale_models", "train_flow", "train_sid_lsg",
)


def load_node_modules(names: tuple[str, ...] = NODE_MODULES) -> tuple[dict, dict]:
    """Import onestep_nodes.<name> for each name; merge their mappings; log and skip failures."""
    classes: dict = {}
    display: dict = {}
    for name in names:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except Exception:
            log.exception("[onestep] node module %r failed to import; its nodes are unavailable", name)
            continue
        classes.update(module.NODE_CLASS_MAPPINGS)
        display.update(getattr(module, "NODE_DISPLAY_NAME_MAPPINGS", {}))
    return classes, display
