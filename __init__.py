"""ComfyUI entry point of the one-step pack (works whatever this folder is named).

ComfyUI imports this folder by its path under a name of its own choosing. Everything else is an ordinary top-level
package of this folder (onestep, training, proof_scale: the core; onestep_nodes: the ComfyUI adapters), imported by
that one name here as in the tests and command-line tools, where the repository root is on the path already. So the
folder joins sys.path — at the end, never shadowing anything — and a name another package already took is an error.
The nodes are V3 nodes (comfy_api.latest), registered through `comfy_entrypoint`; onestep_nodes.load_node_modules
imports each node module on its own, so one that fails takes only its own nodes down."""
import importlib
import os
import sys

ROOT = os.path.dirname(os.path.abspath(__file__))
PACKAGES = ("onestep", "training", "proof_scale", "onestep_nodes")

if ROOT not in sys.path:
    sys.path.append(ROOT)
for _name in PACKAGES:
    _found = os.path.dirname(os.path.dirname(os.path.realpath(importlib.import_module(_name).__file__)))
    if _found != os.path.realpath(ROOT):
        raise ImportError(f"[onestep] package {_name!r} resolves to {_found}, not to this pack's folder {ROOT}: another custom "
                          "node or installed package has the same top-level name (or a second copy of this pack is loaded)")

try:
    from comfy_api.latest import ComfyExtension, io  # noqa: E402
except ImportError as e:
    raise ImportError("[onestep] this pack's nodes use ComfyUI's V3 node API (comfy_api.latest, from ComfyUI 0.3.48); "
                      "the pack needs ComfyUI 0.3.68 or newer (tested on 0.3.75, README): update ComfyUI") from e

from onestep_nodes import load_node_modules  # noqa: E402

WEB_DIRECTORY = "./web"  # the node help pages (web/docs/<NodeClass>.md) the frontend's node library shows


class OneStepExtension(ComfyExtension):
    """The pack's nodes for ComfyUI's V3 loader. No NODE_CLASS_MAPPINGS here: ComfyUI reads a module's V1 mappings in
    preference to its comfy_entrypoint, and every node is a V3 io.ComfyNode."""

    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        from onestep_nodes.compile_folder import use_compile_cache_folder

        use_compile_cache_folder()  # torch.compile modes keep their artifacts in ComfyUI's user folder, across restarts
        return load_node_modules()


async def comfy_entrypoint() -> OneStepExtension:
    """What ComfyUI calls after importing this folder (V3 registration)."""
    return OneStepExtension()


__all__ = ["WEB_DIRECTORY", "comfy_entrypoint"]
