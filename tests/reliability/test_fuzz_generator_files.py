"""Fuzzing the generator-file loader the nodes use (issue 21): ≥ 200 seeded mutations of a valid generator file —
truncation at random offsets, bit flips in the header and in the body, absurd header lengths, wrong dtypes and shapes
in otherwise valid safetensors, metadata of the wrong type, NaN/Inf weights. Every one either loads (a body flip can
leave finite numbers: nothing can tell) or ends in the pack's own GeneratorFileError naming the file — never another
exception, never a hang. The counts are what docs/reliability.md reports."""
from __future__ import annotations

import os
import random

import pytest

from onestep.format import GeneratorFileError, load_generator
from reliability.harness import mutate_safetensors, run_cases
from proof_scale.teacher import TeacherNetConfig
from tools.proof_scale_encoder import write_unet

TINY_NET = TeacherNetConfig(block_out_channels=(32, 32), attention=(False, True), layers_per_block=1, heads=2, context_dim=16)
PER_KIND = {"truncate": 50, "header_flip": 50, "body_flip": 30, "header_length": 15, "dtype": 15, "shape": 15, "metadata": 30, "nonfinite": 15}


FIELDS = ["onestep.timestep", "onestep.latent_channels", "onestep.unet_config", "onestep.guidance", "onestep.format_version",
          "onestep.prediction", "onestep.notes", "onestep.training_steps", "onestep.input_convention", "onestep.base"]


def mutate(kind: str, good: str, out: str, rng: random.Random) -> None:
    mutate_safetensors(kind, good, out, rng, FIELDS)


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("fuzz") / "good.safetensors")
    write_unet(path, "student", TINY_NET, seed=1)
    load_generator(path)  # the seed file itself is valid
    return path


def test_every_mutated_generator_file_loads_or_is_refused_by_name(good, tmp_path):
    rng = random.Random(21)

    def cases():
        for kind, count in PER_KIND.items():
            for i in range(count):
                name = f"mut-{kind}-{i}.safetensors"
                mutate(kind, good, str(tmp_path / name), rng)
                yield kind, name
                os.remove(tmp_path / name)

    outcomes, bad = run_cases(cases(), lambda name: load_generator(str(tmp_path / name)), GeneratorFileError)
    total = sum(PER_KIND.values())
    print(f"generator files: {total} mutations; " + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())))
    assert total >= 200 and not bad, "\n".join(f"{n}: {m}" for n, m in bad)
    # the mutations that can never be valid are all refused (a wrong shape by the node's loader: test_comfy_inprocess_fuzz.py)
    for kind in ("truncate", "header_length", "dtype", "nonfinite"):
        assert outcomes[(kind, "loaded")] <= (1 if kind == "truncate" else 0), (kind, outcomes)
