"""Teacher-pairs core without ComfyUI: prompt files, the shard layout, resume after interruption, disjoint
ranks, the validator and the Dataset, with a small deterministic stand-in teacher."""
from __future__ import annotations

import errno
import os

import pytest
import torch
from safetensors.torch import load_file

from onestep.pairs import DatasetError, PairDataset, PairSettings, PromptFileError, collate_pairs, read_prompts
from onestep.pairs.collect import collect, open_dataset
from onestep.pairs.manifest import prompts_hash
from onestep.pairs.validate import validate
from shared_data import shared_data

PARTI = shared_data("PartiPrompts.tsv")


class StandInTeacher:
    """latent = tanh(noise · w + mean(cond)): deterministic, depends on noise and prompt; prompt 1 encodes to 2×77 tokens."""

    def __init__(self, prompts, width=8):
        self.prompts, self.calls = prompts, []
        self.w = torch.linspace(0.5, 1.5, 4).view(1, 4, 1, 1)

    def noise(self, seed):
        return torch.randn([1, 4, 8, 8], generator=torch.Generator().manual_seed(seed))

    def conditioning(self, j):
        length = 154 if j == 1 else 77
        return {"cond": torch.full((1, length, 8), float(j)), "pooled": torch.full((1, 4), float(j))}

    def sample(self, noise, prompt_indices, hint_indices):
        self.calls.append(list(prompt_indices))
        bias = torch.tensor([float(j) for j in prompt_indices]).view(-1, 1, 1, 1)
        return torch.tanh(noise * self.w + bias)


def settings(prompts, **kw):
    base = dict(teacher="t" * 64, latent_format="SD15", latent_shape=(4, 8, 8), sampler="euler", scheduler="normal", steps=3,
                cfg=5.0, negative="", prompts_sha256=prompts_hash(prompts), seed_start=100, count=7, batch_size=2, shard_size=2)
    base.update(kw)
    return PairSettings(**base)


PROMPTS = ["a cat", "a very long prompt", "a dog"]


def make(folder, prompts=PROMPTS, rank=0, world=1, progress=None, **kw):
    s = settings(prompts, **kw)
    manifest = open_dataset(str(folder), s, prompts)
    teacher = StandInTeacher(prompts)
    collect(str(folder), manifest, teacher, rank, world, progress=progress)
    return manifest, teacher


def shard_tensors(folder):
    return {f: load_file(os.path.join(folder, f)) for f in sorted(os.listdir(folder)) if f.startswith("shard-")}


def test_prompt_files(tmp_path):
    parti = read_prompts(path=PARTI, column="prompt")
    assert len(parti) == 1632 and parti[0] == "bond"
    (tmp_path / "p.txt").write_text("one\n\n two \n")
    (tmp_path / "p.csv").write_text('id,Text\n1,"a, b"\n2,c\n')
    assert read_prompts("typed", str(tmp_path / "p.txt")) == ["typed", "one", "two"]
    assert read_prompts(path=str(tmp_path / "p.csv"), column="text") == ["a, b", "c"]
    with pytest.raises(PromptFileError, match="no 'caption' column.*Prompt"):
        read_prompts(path=PARTI, column="caption")
    with pytest.raises(PromptFileError, match="not found"):
        read_prompts(path=str(tmp_path / "none.txt"))
    with pytest.raises(PromptFileError, match="empty"):
        read_prompts(" \n ")
    (tmp_path / "b.txt").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(PromptFileError, match="not UTF-8"):
        read_prompts(path=str(tmp_path / "b.txt"))


def test_collect_validate_and_dataset(tmp_path):
    manifest, teacher = make(tmp_path / "d")
    assert manifest.complete and len(manifest.shards) == 4  # 7 items, shards of 2
    report = validate(str(tmp_path / "d"))
    assert report.ok and report.items == 7, report.text()
    ds = PairDataset(str(tmp_path / "d"))
    assert len(ds) == 7
    item = ds[4]
    assert int(item["seed"]) == 104 and int(item["prompt_index"]) == 4 % 3
    assert torch.equal(item["noise"], teacher.noise(104)[0])
    assert torch.allclose(item["latent"], teacher.sample(teacher.noise(104), [1], None)[0])
    assert item["context"].shape == (154, 8) and item["pooled"].shape == (4,)
    batch = collate_pairs([ds[0], ds[1]])  # prompt lengths 77 and 154 → both repeated to 154
    assert batch["context"].shape == (2, 154, 8) and torch.equal(batch["context"][0, 77:], batch["context"][0, :77])
    loader = torch.utils.data.DataLoader(ds, batch_size=3, num_workers=2, collate_fn=collate_pairs)
    seeds = torch.cat([b["seed"] for b in loader])
    assert seeds.tolist() == list(range(100, 107))


def test_interrupted_run_resumes_without_duplicates(tmp_path):
    ref, _ = make(tmp_path / "ref")

    def cancel_after_two_batches(done, total, latents):
        if done >= 4:
            raise KeyboardInterrupt("cancel")

    with pytest.raises(KeyboardInterrupt):
        make(tmp_path / "d", progress=cancel_after_two_batches)
    partial = validate(str(tmp_path / "d"))
    assert partial.ok and partial.good == [0, 1] and partial.missing == [2, 3]
    _, teacher = make(tmp_path / "d")
    assert len(teacher.calls) == 2  # only shards 2 and 3 were made again
    got, want = shard_tensors(str(tmp_path / "d")), shard_tensors(str(tmp_path / "ref"))
    assert got.keys() == want.keys()
    for name in want:
        for key in want[name]:
            assert torch.equal(got[name][key], want[name][key]), (name, key)
    assert validate(str(tmp_path / "d")).ok


def test_other_settings_refused(tmp_path):
    make(tmp_path / "d")
    with pytest.raises(DatasetError, match=r"other settings \(cfg: 5.0 → 6.0\)"):
        make(tmp_path / "d", cfg=6.0)


def test_ranks_take_disjoint_shards_and_match_one_process(tmp_path):
    make(tmp_path / "one")
    _, t0 = make(tmp_path / "two", rank=0, world=2)
    _, t1 = make(tmp_path / "two", rank=1, world=2)
    assert len(t0.calls) + len(t1.calls) == 4 and len(t0.calls) == 2  # shards 0,2 and 1,3; no seed twice
    a, b = shard_tensors(str(tmp_path / "one")), shard_tensors(str(tmp_path / "two"))
    assert a.keys() == b.keys() and all(torch.equal(a[n][k], b[n][k]) for n in a for k in a[n])


def test_truncated_shard_is_caught_and_remade(tmp_path):
    make(tmp_path / "d")
    path = tmp_path / "d" / "shard-000001.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    report = validate(str(tmp_path / "d"))
    assert not report.ok and any("shard-000001" in p and "truncated" in p for p in report.problems), report.text()
    assert "INVALID" in report.text()
    _, teacher = make(tmp_path / "d")  # resume sets the bad file aside and makes that shard again
    assert len(teacher.calls) == 1 and validate(str(tmp_path / "d")).ok
    assert any(".corrupt-" in f for f in os.listdir(tmp_path / "d"))


def test_full_disk_keeps_a_valid_dataset(tmp_path, monkeypatch):
    from onestep.pairs import shards

    real, calls = shards.save_file, []

    def fill_up(tensors, path, metadata=None):
        calls.append(path)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(tensors, path, metadata=metadata)

    monkeypatch.setattr(shards, "save_file", fill_up)
    with pytest.raises(DatasetError, match="No space left on device.*keeps its 2 finished shards"):
        make(tmp_path / "d")
    report = validate(str(tmp_path / "d"))
    assert report.ok and report.good == [0, 1]
    assert not [f for f in os.listdir(tmp_path / "d") if f.startswith(".tmp")]


def test_bad_settings_and_foreign_folders(tmp_path):
    with pytest.raises(DatasetError, match="multiple of batch size"):
        settings(PROMPTS, shard_size=3)
    with pytest.raises(DatasetError, match="no manifest.json"):
        PairDataset(str(tmp_path))
    assert "no manifest.json" in validate(str(tmp_path)).text()


# SDXL size/crop conditioning (CLIP Text Encode SDXL's settings), manifest.SIZE_KEYS order: the prompts', then the negative's
SIZES = (768, 1024, 16, 32, 640, 512, 1024, 1024, 0, 0, 1024, 1024)


class SizedTeacher(StandInTeacher):
    """The stand-in teacher with SDXL size conditioning: each prompt's (and the negative's) size, as ComfyTeacher gives it
    (77 tokens each, so the on-device batches take the dataset)."""

    def conditioning(self, j):
        return {"cond": torch.full((1, 77, 8), float(j)), "pooled": torch.full((1, 4), float(j)),
                "size": torch.tensor([SIZES[6:] if j < 0 else SIZES[:6]])}


def test_size_conditioning_round_trips_and_old_datasets_keep_their_format(tmp_path):
    """Pairs with SDXL size conditioning: recorded per prompt and for the negative, in the settings (manifest version 2),
    checked against them, read back by the Dataset and the on-device batches; a dataset without it is written exactly
    as before (version 1, the settings hash an older pack computed), loads without sizes and is no other dataset."""
    from onestep.pairs.manifest import Manifest
    from onestep.pairs.shards import settings_hash
    from training.device_data import DevicePairs

    s = settings(PROMPTS, sdxl_size=SIZES)
    manifest = open_dataset(str(tmp_path / "sized"), s, PROMPTS)
    collect(str(tmp_path / "sized"), manifest, SizedTeacher(PROMPTS))
    shard = load_file(str(tmp_path / "sized" / "shard-000000.safetensors"))
    assert shard["size.0"].tolist() == [list(SIZES[:6])] and shard["size.1"].tolist() == [list(SIZES[:6])]
    assert shard["negative.size"].tolist() == [list(SIZES[6:])] and shard["size.0"].dtype == torch.int64
    loaded = Manifest.load(str(tmp_path / "sized"))
    assert loaded.settings == s and loaded.settings.sdxl_size == SIZES and loaded.to_json()["version"] == 2
    report = validate(str(tmp_path / "sized"))
    assert report.ok and "prompts [768, 1024, 16, 32, 640, 512], negative [1024, 1024, 0, 0, 1024, 1024]" in report.text(), report.text()
    ds = PairDataset(str(tmp_path / "sized"))
    assert ds[4]["size"].tolist() == list(SIZES[:6]) and ds.negative()["size"].tolist() == list(SIZES[6:])
    batch = collate_pairs([ds[i] for i in range(3)])
    assert batch["size"].shape == (3, 6)
    on_device = DevicePairs(ds, "cpu").batch([0, 1, 2])
    assert on_device.keys() == batch.keys() and all(torch.equal(on_device[k], batch[k]) for k in batch if k != "context")
    # a shard whose sizes are not its settings' is caught (a hand-edited or mixed-up file)
    with pytest.raises(DatasetError, match="other settings.*sdxl_size"):
        open_dataset(str(tmp_path / "sized"), settings(PROMPTS), PROMPTS)
    with pytest.raises(DatasetError, match="sdxl_size must be 12"):
        settings(PROMPTS, sdxl_size=SIZES[:6])

    old = settings(PROMPTS, latent_format="SDXL", latent_shape=(4, 10, 8), negative="blurry", prompts_sha256=prompts_hash(["a", "b"]),
                   seed_start=10, count=3, batch_size=3, shard_size=3)
    assert settings_hash(old) == "4885fb9a797fabdffabfaeec00c696e46bba62dec5c29281136c54dc4deaabfd"  # what the pack computed before sizes
    manifest, _ = make(tmp_path / "plain")
    d = Manifest.load(str(tmp_path / "plain")).to_json()
    assert d["version"] == 1 and "sdxl_size" not in d["settings"]
    shard = load_file(str(tmp_path / "plain" / "shard-000000.safetensors"))
    assert not [k for k in shard if "size" in k] and "size" not in PairDataset(str(tmp_path / "plain"))[0]
    assert "size" not in PairDataset(str(tmp_path / "plain")).negative()


def test_size_conditioning_shards_are_checked_against_the_settings(tmp_path):
    """A shard of a sized dataset that lacks its sizes, or holds other ones, is set aside and made again on resume."""
    from safetensors.torch import save_file

    s = settings(PROMPTS, sdxl_size=SIZES)
    collect(str(tmp_path / "d"), open_dataset(str(tmp_path / "d"), s, PROMPTS), SizedTeacher(PROMPTS))
    path = str(tmp_path / "d" / "shard-000001.safetensors")
    from safetensors import safe_open
    with safe_open(path, "pt") as f:
        meta = f.metadata()
    tensors = load_file(path)
    tensors["negative.size"] = torch.tensor([[1, 2, 3, 4, 5, 6]])
    save_file(tensors, path, metadata=meta)
    report = validate(str(tmp_path / "d"))
    assert not report.ok and any("negative.size [1, 2, 3, 4, 5, 6] is not the size conditioning" in p for p in report.problems), report.text()
    del tensors["negative.size"]
    save_file(tensors, path, metadata=meta)
    assert any("lacks conditioning ['negative.size']" in p for p in validate(str(tmp_path / "d")).problems)
    teacher = SizedTeacher(PROMPTS)
    collect(str(tmp_path / "d"), open_dataset(str(tmp_path / "d"), s, PROMPTS), teacher)
    assert len(teacher.calls) == 1 and validate(str(tmp_path / "d")).ok
