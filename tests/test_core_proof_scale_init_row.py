"""proof_scale.init_row: a row the device budget stopped before its last step (a long data-free SiD-LSG row spread over
sessions) is carried from its selection.json and plan.json, as a finished row is from its result.json."""
import json
import os

import pytest
import torch
from safetensors.torch import load_file, save_file

from proof_scale import init_row


def _halves(tmp_path):
    a, b = str(tmp_path / "best_a.safetensors"), str(tmp_path / "best_b.safetensors")
    save_file({"conv.weight": torch.randn(4, 4)}, a)
    save_file({"conv.bias": torch.randn(4)}, b)
    return [a, b]


def _records(tmp_path, best):
    selection, plan = tmp_path / "selection.json", tmp_path / "plan.json"
    selection.write_text(json.dumps({"points": [best] if best else [], "best": best}))
    plan.write_text(json.dumps({"row": "sid_lsg@lr=1e-4:batch=512", "method": "sid-lsg", "batch": 512, "steps": 3000}))
    return str(selection), str(plan)


def test_an_unfinished_row_is_packed_from_its_selection_and_placed_as_a_start(tmp_path):
    halves = _halves(tmp_path)
    selection, plan = _records(tmp_path, {"step": 1750, "fd": 14.2})
    out = str(tmp_path / "init")
    assert init_row.main(["pack", out, "--row", "sid_lsg_s1", "--weights", *halves, "--selection", selection, "--plan", plan]) == 0
    with open(os.path.join(out, "result.json")) as f:
        record = json.load(f)
    assert record["row"] == {"selected_step": 1750, "training_samples": 1750 * 512, "val_fd": 14.2, "finished": False}
    assert record["plan"]["batch"] == 512 and "stopped before its end" in record["carried_from"]["result"]
    packed = load_file(os.path.join(out, "best.safetensors"))
    assert set(packed) == {"conv.weight", "conv.bias"} and packed["conv.weight"].dtype == torch.float16
    work = str(tmp_path / "work")
    assert init_row.place(out, work) == "sid_lsg_s1"
    assert os.path.isfile(os.path.join(work, "distill", "sid_lsg_s1", "best.safetensors"))


def test_an_unfinished_row_needs_a_selected_point_and_one_kind_of_record(tmp_path, capsys):
    halves = _halves(tmp_path)
    selection, plan = _records(tmp_path, None)
    with pytest.raises(ValueError, match="no best point"):
        init_row.main(["pack", str(tmp_path / "init"), "--weights", *halves, "--selection", selection, "--plan", plan])
    for extra in ([], ["--selection", selection], ["--result", selection, "--selection", selection, "--plan", plan]):
        with pytest.raises(SystemExit):
            init_row.main(["pack", str(tmp_path / "init"), "--weights", *halves, *extra])
    assert "--selection and --plan" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "init")


def test_kept_halves_are_split_under_the_repository_file_limit(tmp_path, monkeypatch):
    """init_row split: KEEP's halves (up to ~11 MB) re-split into parts under the limit, the same tensors together."""
    g = torch.Generator().manual_seed(0)
    a, b = str(tmp_path / "a.safetensors"), str(tmp_path / "b.safetensors")
    w = {f"block{i}.weight": torch.randn(64, 64, generator=g).half() for i in range(10)}
    save_file(dict(list(w.items())[:4]), a)
    save_file(dict(list(w.items())[4:]), b)
    monkeypatch.setattr(init_row, "GIT_FILE_LIMIT", 30_000)  # 10 tensors of 8 KiB: parts of at most 3 tensors
    paths = init_row.split_for_git(str(tmp_path / "kept"), "instaflow", [a, b])
    assert [os.path.basename(p) for p in paths] == [f"best_instaflow_{c}.safetensors" for c in "abcd"]
    assert all(os.path.getsize(p) < 30_000 for p in paths)
    back = {k: v for p in paths for k, v in load_file(p).items()}
    assert set(back) == set(w) and all(torch.equal(back[k], w[k]) for k in w)
