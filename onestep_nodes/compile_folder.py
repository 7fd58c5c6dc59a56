"""Where the pack's persistent torch.compile artifacts live on a ComfyUI host: a folder of ComfyUI's user directory
(kept across restarts, unlike its temp folder, which ComfyUI empties at start), never a path from a node input."""
from __future__ import annotations

import os

import folder_paths

from onestep.cuda_graph import set_compile_cache_folder

SUBFOLDER = ("onestep", "compile_cache")


def compile_cache_folder() -> str:
    return os.path.join(folder_paths.get_user_directory(), *SUBFOLDER)


def use_compile_cache_folder() -> str:
    """Point onestep.cuda_graph's compile modes at the user folder's cache; returns the folder."""
    folder = compile_cache_folder()
    set_compile_cache_folder(folder)
    return folder
