"""A pairs collection that SIGKILLs itself at its KILL_AT-th write event (test_kill_anywhere.py runs it).

Every write of the pack ends in os.replace(tmp, final) (onestep/atomic.py); event 2i−1 is "the i-th temporary file is
written, not yet renamed", event 2i "the i-th rename is done". KILL_AT=0 runs to the end (or resumes to it)."""
from __future__ import annotations

import os
import signal
import sys

import torch

from onestep.pairs import PairSettings
from onestep.pairs.collect import collect, open_dataset
from onestep.pairs.manifest import prompts_hash

PROMPTS = ["a cat", "a dog", "a bird"]
KILL_AT = int(os.environ.get("KILL_AT", "0"))
_events = [0]
_replace = os.replace


def _event() -> None:
    _events[0] += 1
    if _events[0] == KILL_AT:
        os.kill(os.getpid(), signal.SIGKILL)


def replace_then_maybe_die(src, dst, *a, **kw):
    _event()
    _replace(src, dst, *a, **kw)
    _event()


class Teacher:
    def noise(self, seed):
        return torch.randn([1, 4, 8, 8], generator=torch.Generator().manual_seed(seed))

    def conditioning(self, j):
        return {"cond": torch.full((1, 77, 8), float(j))}

    def sample(self, noise, prompt_indices, hint_indices):
        return torch.tanh(noise + torch.tensor([float(j) for j in prompt_indices]).view(-1, 1, 1, 1))


def main(folder: str) -> int:
    os.replace = replace_then_maybe_die
    s = PairSettings(teacher="t" * 64, latent_format="SD15", latent_shape=(4, 8, 8), sampler="euler", scheduler="normal", steps=2, cfg=1.0,
                     negative="", prompts_sha256=prompts_hash(PROMPTS), seed_start=0, count=20, batch_size=2, shard_size=4)
    collect(folder, open_dataset(folder, s, PROMPTS), Teacher())
    print(f"events {_events[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
