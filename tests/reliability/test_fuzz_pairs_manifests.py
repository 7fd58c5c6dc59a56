"""Fuzzing teacher-pairs manifests (issue 21): ≥ 200 seeded mutations of a valid dataset's manifest.json — truncation,
byte flips, JSON of another shape, settings and shard entries of the wrong type or out of range — opened the way the
training node and the CLI open a dataset (PairDataset, then every item) and by the validator. Each either opens and
reads (a change that leaves a consistent manifest) or ends in the pack's DatasetError naming the dataset — never
another exception, never a hang."""
from __future__ import annotations

import json
import os
import random
import shutil

import pytest

from onestep.pairs import DatasetError, PairDataset, PairSettings
from onestep.pairs.collect import collect, open_dataset
from onestep.pairs.manifest import prompts_hash
from onestep.pairs.validate import validate
from reliability.harness import run_cases
from reliability.kill_child import PROMPTS, Teacher

WRONG = ["abc", -1, 0, 1.5, None, [], {}, [1, 2], True, 10**12, "1e400", ""]


def _set_path(d, path, value):
    for k in path[:-1]:
        d = d[k]
    d[path[-1]] = value


def mutate(text: str, rng: random.Random) -> bytes:
    kind = rng.choice(["truncate", "flip", "shape", "field", "field", "shard"])
    if kind == "truncate":
        return text.encode()[: rng.randrange(len(text))]
    if kind == "flip":
        b = bytearray(text.encode())
        for _ in range(rng.randint(1, 3)):
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(7)
        return bytes(b)
    d = json.loads(text)
    if kind == "shape":
        d = rng.choice([[], "manifest", 3, None, [d], {"format": d["format"]}])
    elif kind == "field":
        key = rng.choice(sorted(d["settings"]) + ["prompts", "shards", "version", "complete", "info"])
        path = ["settings", key] if key in d["settings"] else [key]
        _set_path(d, path, rng.choice(WRONG))
    else:
        entry = rng.choice(d["shards"])
        entry[rng.choice(sorted(entry))] = rng.choice(WRONG)
    return json.dumps(d).encode()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> str:
    folder = str(tmp_path_factory.mktemp("pairs") / "good")
    s = PairSettings(teacher="t" * 64, latent_format="SD15", latent_shape=(4, 8, 8), sampler="euler", scheduler="normal", steps=2, cfg=1.0,
                     negative="", prompts_sha256=prompts_hash(PROMPTS), seed_start=0, count=12, batch_size=2, shard_size=4)
    collect(folder, open_dataset(folder, s, PROMPTS), Teacher())
    assert validate(folder).ok
    return folder


def _open_and_read(folder: str) -> None:
    ds = PairDataset(folder)
    for i in range(len(ds)):
        ds[i]
    report = validate(folder)
    if not report.ok:
        raise DatasetError(f"{os.path.basename(folder)}: " + report.text())


def test_every_mutated_manifest_opens_or_is_refused_by_name(dataset, tmp_path):
    rng = random.Random(21)
    text = open(os.path.join(dataset, "manifest.json"), encoding="utf-8").read()

    def cases():
        for i in range(200):
            folder = str(tmp_path / f"mut-{i}")
            shutil.copytree(dataset, folder)
            with open(os.path.join(folder, "manifest.json"), "wb") as f:
                f.write(mutate(text, rng))
            yield "manifest", f"mut-{i}"
            shutil.rmtree(folder)

    outcomes, bad = run_cases(cases(), lambda name: _open_and_read(str(tmp_path / name)), DatasetError)
    print(f"pairs manifests: 200 mutations; {dict(outcomes)}")
    assert sum(outcomes.values()) == 200 and not bad, "\n".join(f"{n}: {m}" for n, m in bad)
