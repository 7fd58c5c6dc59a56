"""ComfyUI entry point of the Diffusion2GAN one-step pack (works whatever this folder is named)."""
from .nodes import load_node_modules

NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = load_node_modules(__name__)

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
