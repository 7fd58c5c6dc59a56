"""Reader for BAPPS 2AFC data (Zhang et al. 2018, "The Unreasonable Effectiveness of Deep Features"):
<root>/<split>/<subset>/{ref,p0,p1}/<id>.png and judge/<id>.npy (the fraction of people who chose p1)."""
from __future__ import annotations

import os

import numpy as np
import torch
from PIL import Image

SUBSETS = ("cnn", "traditional", "color", "deblur", "superres", "frameinterp")


def read_2afc(root: str, split: str = "val", subset: str = "traditional", size: int = 64, limit: int | None = None) -> dict[str, torch.Tensor]:
    """{"ref", "p0", "p1": float [N, 3, size, size] in [−1, 1], "judge": float [N]}."""
    folder = os.path.join(root, split, subset)
    ref_dir = os.path.join(folder, "ref")
    if not os.path.isdir(ref_dir):
        raise FileNotFoundError(f"{folder} is not a BAPPS 2AFC folder (ref/, p0/, p1/, judge/ expected)")
    ids = sorted(os.path.splitext(f)[0] for f in os.listdir(ref_dir) if f.endswith(".png"))[:limit]
    out: dict[str, list] = {"ref": [], "p0": [], "p1": [], "judge": []}
    for i in ids:
        for key in ("ref", "p0", "p1"):
            img = Image.open(os.path.join(folder, key, f"{i}.png")).convert("RGB").resize((size, size), Image.BICUBIC)
            out[key].append(torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).float() / 127.5 - 1.0)
        out["judge"].append(float(np.load(os.path.join(folder, "judge", f"{i}.npy")).reshape(-1)[0]))
    if not ids:
        raise ValueError(f"{folder} holds no triplets")
    return {k: torch.stack(v) if k != "judge" else torch.tensor(v) for k, v in out.items()}
