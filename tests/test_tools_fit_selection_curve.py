"""tools.fit_selection_curve: the asymptote of a row's validation curve over resumed parts."""
import json
import math

import pytest

from tools.fit_selection_curve import chained_points, fit_exponential, main


def write_part(folder, points, steps):
    folder.mkdir()
    (folder / "selection.json").write_text(json.dumps({"points": points, "best": None}))
    (folder / "timing.json").write_text(json.dumps({"steps": steps, "train_seconds": 1.0}))


def test_fit_recovers_a_known_curve():
    points = [(s, 15.0 + 8.0 * math.exp(-s / 3000.0)) for s in range(500, 6001, 500)]
    fit = fit_exponential(points)
    assert fit["a"] == pytest.approx(15.0, abs=1e-3)
    assert fit["tau"] == pytest.approx(3000.0, rel=1e-3)
    assert not fit["tau_at_grid_edge"]


def test_a_straight_line_is_reported_at_the_grid_edge():
    fit = fit_exponential([(s, 20.0 - 0.001 * s) for s in range(500, 5001, 500)])
    assert fit["tau_at_grid_edge"]


def test_parts_chain_by_their_trained_steps_and_keep_one_ema(tmp_path):
    write_part(tmp_path / "k", [{"step": 500, "ema": 0.99, "fd": 20.0}, {"step": 500, "ema": 0.999, "fd": 30.0}], 768)
    write_part(tmp_path / "l", [{"step": 500, "ema": 0.99, "fd": 19.0}], 900)
    assert chained_points([tmp_path / "k", tmp_path / "l"], 0.99, "fd") == [(500, 20.0), (1268, 19.0)]


def test_too_few_points_is_a_named_error(tmp_path, capsys):
    write_part(tmp_path / "k", [{"step": 500, "ema": 0.99, "fd": 20.0}], 500)
    assert main([str(tmp_path / "k")]) == 2
    assert "at least 4" in capsys.readouterr().err
