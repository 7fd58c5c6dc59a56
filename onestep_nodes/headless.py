"""ComfyUI as a library (no server) for command-line tools. ComfyUI picks its device when comfy.model_management first
loads, from comfy.cli_args, which only main.py parses; a tool on a machine without a GPU must ask for the CPU first."""
from __future__ import annotations


def use_cpu_without_gpu() -> None:
    """Call before importing a node module (they import comfy.model_management)."""
    import comfy.cli_args
    import torch

    comfy.cli_args.args.cpu = comfy.cli_args.args.cpu or not torch.cuda.is_available()
