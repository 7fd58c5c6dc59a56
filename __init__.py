"""ComfyUI entry point of the one-step pack (works whatever this folder is named).

ComfyUI imports this folder by its path under a name of its own choosing. Everything else is an ordinary top-level
package of this folder (onestep, training, proof_scale: the core; onestep_nodes: the ComfyUI adapters), imported by
that one name here as in the tests and command-line tools, where the repository root is on the path already. So the
folder joins sys.path — at the end, never shadowing anything — and a name another package already took is an error."""
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

from onestep_nodes import load_node_modules  # noqa: E402

NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = load_node_modules()
WEB_DIRECTORY = "./web"  # the node help pages (web/docs/<NodeClass>.md) the frontend's node library shows
__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
