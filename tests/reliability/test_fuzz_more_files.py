"""Fuzzing the other files the pack reads (issue 21): ≥ 200 seeded mutations each of a teacher-pairs shard, a trainer
checkpoint, E-LatentLPIPS weights and prompt files (.txt/.tsv/.csv), through the loaders the nodes use — a dataset as
the training node opens it (PairDataset, every item, the validator), a checkpoint as a resume loads it (Trainer.load),
weights as the nodes load them (latent_lpips.weights.load), prompts as Collect Teacher Pairs reads them. Each either
loads (a change that leaves valid content) or ends in the pack's own error naming the file — never another exception,
never a hang. The counts are what docs/reliability.md reports."""
from __future__ import annotations

import os
import random
import shutil

import pytest

from onestep.latent_lpips import LatentLPIPS, get_encoder
from onestep.latent_lpips import weights as elpips_weights
from onestep.pairs import DatasetError, PairDataset
from onestep.pairs.prompts import PromptFileError, read_prompt_file
from onestep.pairs.validate import validate
from reliability.harness import SAFETENSORS_KINDS, mutate_safetensors, run_cases
from reliability.kill_child import PairCollection

PER_KIND = {"truncate": 40, "header_flip": 35, "body_flip": 25, "header_length": 15, "dtype": 25, "shape": 20, "metadata": 20, "nonfinite": 20}
SHARD = "shard-000001.safetensors"


def _cases(tmp_path, good: str, ext: str, fields: list[str], rng: random.Random, keys: list[str] | None = None):
    for kind in SAFETENSORS_KINDS:
        for i in range(PER_KIND[kind]):
            name = f"mut-{kind}-{i}{ext}"
            mutate_safetensors(kind, good, str(tmp_path / name), rng, fields, keys=keys)
            yield kind, name
            os.remove(tmp_path / name)


def _report(what: str, outcomes, bad) -> None:
    total = sum(outcomes.values()) + len(bad)
    print(f"{what}: {total} mutations; " + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())))
    assert total >= 200 and not bad, "\n".join(f"{n}: {m}" for n, m in bad)


def test_every_mutated_pairs_shard_is_read_or_refused_by_name(tmp_path):
    dataset = str(tmp_path / "good")
    PairCollection().job(dataset)
    assert validate(dataset).ok
    rng = random.Random(21)
    work = tmp_path / "mut"
    work.mkdir()

    def open_case(name: str) -> None:
        folder = str(tmp_path / "case")
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(dataset, folder)
        shutil.copy(work / name, os.path.join(folder, SHARD))
        try:
            ds = PairDataset(folder)
            for i in range(len(ds)):
                ds[i]
            report = validate(folder)
            if not report.ok:
                raise DatasetError(report.text())
        except DatasetError as e:
            if SHARD not in str(e):
                raise AssertionError(f"the message does not name the shard: {e}") from None
            raise DatasetError(f"{name}: {e}") from None

    fields = ["onestep.pairs.shard", "onestep.pairs.first", "onestep.pairs.count", "onestep.pairs.settings"]
    outcomes, bad = run_cases(_cases(work, os.path.join(dataset, SHARD), ".safetensors", fields, rng), open_case, DatasetError)
    _report("pairs shards", outcomes, bad)
    for kind in ("truncate", "header_length", "dtype", "shape", "nonfinite"):
        assert outcomes[(kind, "loaded")] == 0, (kind, outcomes)


@pytest.fixture(scope="module")
def trainer():
    from test_core_training_fixtures import config

    from reliability.kill_training import small_unet
    from training.trainer import Trainer

    return Trainer(small_unet(), config(loss={"regression": "mse", "warmup_steps": 0}, discriminator={"r1_every": 2}, save_every=1))


def test_every_mutated_checkpoint_resumes_or_is_refused_by_name(trainer, tmp_path):
    from reliability.kill_training import _fixtures
    from training.checkpoint import CheckpointError
    from training.core import PairDataset as Pairs

    pairs, _ = _fixtures(str(tmp_path))
    good = str(tmp_path / "good.safetensors")
    trainer.run(Pairs(pairs), 1, checkpoint=good)  # a state with both optimisers' moments in it
    state_keys = None
    rng = random.Random(21)
    work = tmp_path / "mut"
    work.mkdir()
    fields = ["onestep.trainer_state", "onestep.format", "format"]
    outcomes, bad = run_cases(_cases(work, good, ".safetensors", fields, rng, keys=state_keys),
                              lambda name: trainer.load(str(work / name)), CheckpointError)
    _report("trainer checkpoints", outcomes, bad)
    for kind in ("truncate", "header_length", "dtype", "shape", "nonfinite"):
        assert outcomes[(kind, "loaded")] == 0, (kind, outcomes)


def test_every_mutated_elatentlpips_weights_file_loads_or_is_refused_by_name(tmp_path):
    import torch

    torch.manual_seed(0)
    good = str(tmp_path / "good.safetensors")
    elpips_weights.save(good, LatentLPIPS(in_channels=4, width=1 / 8), get_encoder("sd15"), "test heads", "fuzz")
    elpips_weights.load(good)
    rng = random.Random(21)
    work = tmp_path / "mut"
    work.mkdir()
    fields = ["latent_lpips.format", "latent_lpips.encoder", "latent_lpips.channels", "latent_lpips.heads", "latent_lpips.source"]
    outcomes, bad = run_cases(_cases(work, good, ".safetensors", fields, rng), lambda name: elpips_weights.load(str(work / name)),
                              elpips_weights.WeightsFileError)
    _report("E-LatentLPIPS weights", outcomes, bad)
    for kind in ("truncate", "header_length", "dtype", "shape", "nonfinite"):
        assert outcomes[(kind, "loaded")] == 0, (kind, outcomes)


PROMPT_FILES = {
    ".txt": "a cat on a mat\na dog in the fog\n\na bird, singing\n",
    ".tsv": "Prompt\tCategory\na cat on a mat\tAnimals\na dog in the fog\tAnimals\n\"quoted\tprompt\"\tOdd\n",
    ".csv": "id,prompt,notes\n1,a cat on a mat,x\n2,\"a dog, in the fog\",y\n3,a bird,\n",
}
PROMPT_KINDS = ("truncate", "flip", "nul", "binary", "huge_field", "bad_utf8", "unbalanced_quote", "no_column", "short_row", "empty")


def mutate_prompts(kind: str, text: str, rng: random.Random) -> bytes:
    data = text.encode()
    if kind == "truncate":
        return data[: rng.randrange(len(data))]
    if kind == "flip":
        b = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        return bytes(b)
    if kind == "nul":
        i = rng.randrange(len(data))
        return data[:i] + b"\x00" + data[i:]
    if kind == "binary":
        return bytes(rng.randrange(256) for _ in range(rng.randint(1, 400)))
    if kind == "huge_field":
        return data + b"x" * rng.choice([140_000, 300_000]) + b"\n"
    if kind == "bad_utf8":
        i = rng.randrange(len(data))
        return data[:i] + rng.choice([b"\xff", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80"]) + data[i:]
    if kind == "unbalanced_quote":
        i = rng.randrange(len(data))
        return data[:i] + b'"' + data[i:] + b"x" * rng.choice([10, 200_000])
    if kind == "no_column":
        return data.replace(b"Prompt", b"Text").replace(b"prompt", b"text")
    if kind == "short_row":
        return data + rng.choice([b"lonely\n", b"\n\n", b"a\tb\n", b"1\n"])
    return b""


def test_every_mutated_prompt_file_is_read_or_refused_by_name(tmp_path):
    rng = random.Random(21)

    def cases():
        for ext, text in PROMPT_FILES.items():
            for i in range(70):
                kind = PROMPT_KINDS[i % len(PROMPT_KINDS)]
                name = f"mut-{kind}-{i}{ext}"
                (tmp_path / name).write_bytes(mutate_prompts(kind, text, rng))
                yield f"{ext} {kind}", name
                os.remove(tmp_path / name)

    def open_case(name: str) -> None:
        prompts = read_prompt_file(str(tmp_path / name))
        assert all(isinstance(p, str) and p == p.strip() and p for p in prompts)

    outcomes, bad = run_cases(cases(), open_case, PromptFileError)
    _report("prompt files", outcomes, bad)
