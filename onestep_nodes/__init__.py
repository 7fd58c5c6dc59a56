"""Thin ComfyUI adapters: the only package that imports ComfyUI (`comfy`, `comfy_api`, `folder_paths`). Not named
`nodes`, because ComfyUI's own top-level module is.

Every node is declared with ComfyUI's V3 schema (`comfy_api.latest.io.ComfyNode`: `define_schema` and a classmethod
`execute`); each node module lists its node classes in `NODES`. The pack's entry point (the repository's __init__.py)
registers them through `comfy_entrypoint`. Each node module is imported on its own, and each node's schema is built on
its own before ComfyUI sees it, so a module that fails to import, or a node whose schema cannot be built, is logged and
the other nodes still load (ComfyUI builds the schemas of a pack's node list in one loop: one raising there would take
the whole pack down). This package's own __init__ imports no host module."""
from __future__ import annotations

import importlib
import logging

log = logging.getLogger("onestep")

NODE_MODULES = (
    "load_generator", "generate", "sampler", "import_generator", "fast_decode", "latent_diff", "collect_pairs", "train_generator",
    "proof_scale_models", "train_flow", "train_sid_lsg",
)


def load_node_modules(names: tuple[str, ...] = NODE_MODULES) -> list[type]:
    """The node classes (io.ComfyNode) of onestep_nodes.<name> for each name, in order; failures are logged and skipped."""
    found: list[type] = []
    for name in names:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except Exception:
            log.exception("[onestep] node module %r failed to import; its nodes are unavailable", name)
            continue
        for node in module.NODES:
            try:
                node.GET_SCHEMA()
            except Exception:
                log.exception("[onestep] node %s (module %r) has a schema ComfyUI cannot build; it is unavailable", node.__name__, name)
                continue
            found.append(node)
    return found
