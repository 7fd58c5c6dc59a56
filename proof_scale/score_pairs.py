"""A pairs folder's latents scored like a row: what a regression row's targets reach — the teacher's 50-step pairs, or
the 2-RF's own 25-step pairs that InstaFlow's one-step stage learns from. A row that only regresses on them is bounded
by them (issue 17: is InstaFlow's one-step target reachable by its E-LatentLPIPS stage, or only with a GAN term that
sees real images?). Disjoint sets of `count` items stand in for a row's scoring seeds.

  python -m proof_scale.score_pairs PAIRS_FOLDER --work WORK [--data DATA_DIR] [--count 10000] [--sets 2] [--json OUT]
"""
from __future__ import annotations

import argparse
import os
import sys

import torch
from safetensors import safe_open

from onestep.pairs.dataset import PairDataset

from .common import write_json
from .data import FASHION_MNIST_DIR
from .evaluator import score, work_reference


def latents(folder: str, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The folder's first `count` latents [N, 1, 32, 32] and their class labels (the proof-scale prompts are the class
    names, so a pair's prompt index is its class)."""
    data = PairDataset(folder)
    xs, ys, n = [], [], 0
    for shard in data.shards:
        if n >= count:
            break
        with safe_open(os.path.join(folder, shard["file"]), "pt") as f:
            xs.append(f.get_tensor("latent")[: count - n].float())
            ys.append(f.get_tensor("prompt_index")[: count - n].long())
        n += len(xs[-1])
    if n < count:
        raise ValueError(f"{folder} has {n} pairs, fewer than the {count} asked for")
    return torch.cat(xs), torch.cat(ys)


def score_folder(folder: str, work: str, data: str, count: int, sets: int, device: str = "cpu", test_limit: int | None = None) -> dict:
    """{fd, precision, recall, class_acc}: means over `sets` disjoint sets of `count` pairs; `fd_sets` each set's FD."""
    reference = work_reference(work, data, test_limit, torch.device(device))
    x, y = latents(folder, count * sets)
    per = [score(x[i * count:(i + 1) * count].to(device), y[i * count:(i + 1) * count], reference) for i in range(sets)]
    out = {k: sum(p[k] for p in per) / sets for k in per[0]}
    return {**out, "fd_sets": [p["fd"] for p in per], "count": count, "folder": os.path.abspath(folder)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m proof_scale.score_pairs", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", help="a pairs folder (WORK/pairs, WORK/pairs_2rf)")
    p.add_argument("--work", required=True, help="the work folder (its classifier and reference cache)")
    p.add_argument("--data", default=FASHION_MNIST_DIR, help="the folder with Fashion-MNIST's test split")
    p.add_argument("--count", type=int, default=10000, help="pairs per set (a row's samples per seed: 10,000)")
    p.add_argument("--sets", type=int, default=2)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    result = score_folder(a.folder, a.work, a.data, a.count, a.sets, a.device)
    print(f"pairs {a.folder}: FD {result['fd']:.2f} (sets {', '.join(f'{v:.2f}' for v in result['fd_sets'])}), precision "
          f"{result['precision']:.3f}, recall {result['recall']:.3f}, class acc {result['class_acc']:.4f}")
    if a.json:
        write_json(a.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
