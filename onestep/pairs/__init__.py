"""Teacher pairs: (noise z, prompt c, teacher latent x) datasets recorded from a teacher's deterministic ODE
sampler, the training data of Diffusion2GAN and reflow (docs/methods.md). Host-independent: the prompt readers,
the on-disk layout (safetensors shards + a JSON manifest), the resumable collection loop, the validator and
the PyTorch Dataset. The ComfyUI side (encoding prompts, core sampling) lives in onestep_nodes/pair_collection.py."""
from .dataset import PairDataset, collate_pairs
from .manifest import DatasetError, Manifest, PairSettings
from .prompts import PromptFileError, read_prompts

__all__ = ["DatasetError", "Manifest", "PairDataset", "PairSettings", "PromptFileError", "collate_pairs", "read_prompts"]
