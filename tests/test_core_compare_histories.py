"""tools.compare_histories: window means of two training histories, their relative differences, and the terms only one has."""
import json
import os

import pytest

from tools import compare_histories as C


def test_window_means_and_differences(tmp_path, capsys):
    a = {"regression": [[1, 1.0], [2, 3.0], [3, 5.0], [4, 7.0]], "r1": [[4, 0.5]]}
    b = {"regression": [[1, 1.0], [2, 3.0], [3, 5.5], [4, 7.5]], "d_gap": [[2, 0.1]]}
    result = C.compare(a, b, window=2)
    rows = result["terms"]["regression"]["windows"]
    assert [(r["start"], r["a"], r["b"]) for r in rows] == [(1, 2.0, 2.0), (3, 6.0, 6.5)]
    assert rows[0]["rel"] == 0 and rows[1]["rel"] == pytest.approx(0.5 / 6)
    assert result["terms"]["regression"]["max_rel"] == pytest.approx(0.5 / 6)
    assert result["only_in_a"] == ["r1"] and result["only_in_b"] == ["d_gap"] and set(result["terms"]) == {"regression"}
    pa, pb, out = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.json"
    pa.write_text(json.dumps(a))
    pb.write_text(json.dumps(b))
    assert C.main([str(pa), str(pb), "--window", "2", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| regression | 3–4 | 6 | 6.5 | 8.33% |" in printed and "only in A: r1" in printed
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))


def test_a_history_against_itself_differs_nowhere():
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(repo, "benchmarks/results/proof_scale_h200_run5/call3/distill/diffusion2gan__timestep-625/history.json")) as f:
        h = json.load(f)
    result = C.compare(h, h, window=100)
    assert set(result["terms"]) == set(h) and all(r["max_rel"] == 0 for r in result["terms"].values())
    assert len(result["terms"]["regression"]["windows"]) == 6  # 600 steps
