"""ComfyUI entry point of the Diffusion2GAN one-step pack (works whatever this folder is named)."""
import importlib.util

if importlib.util.find_spec("comfy") is not None:
    from .nodes import load_node_modules

    NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = load_node_modules(__name__)
else:  # imported outside ComfyUI (pytest collects the repo root as a package; CLI tools): no nodes to offer
    NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = {}, {}

WEB_DIRECTORY = "./web"  # the node help pages (web/docs/<NodeClass>.md) the frontend's node library shows
__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
