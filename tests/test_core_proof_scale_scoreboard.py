"""benchmarks/results/proof_scale.json is the proof-scale scoreboard tools.collect_proof_scale gathers from the
committed run records: it must be what the records give (not edited by hand, not stale), with honest target flags."""
import json
import os

from tools import collect_proof_scale as board


def test_committed_scoreboard_is_what_the_run_records_give():
    with open(os.path.join(board.REPO, board.OUT), encoding="utf-8") as f:
        committed = json.load(f)
    assert committed == board.collect(), "stale scoreboard: run python -m tools.collect_proof_scale"
    assert board.main(["--check"]) == 0


def test_every_row_is_read_from_its_record_and_judged_against_its_evaluators_teacher():
    result = board.collect()
    rows = result["rows"]
    for evaluator, name in board.TEACHERS.items():  # each evaluator's teacher row is its own, scored by it
        assert rows[name]["evaluator"] == evaluator and rows[name]["fd_ratio"] == 1.0 and 5.0 < rows[name]["fd"] < 12.0
    for name, row in rows.items():
        path = row["source"].split(".json")[0] + ".json"
        assert os.path.isfile(os.path.join(board.REPO, path)), (name, path)
        teacher = board.teacher_fd(row, rows[board.TEACHERS[row["evaluator"]]])
        assert abs(row["fd_ratio"] - row["fd"] / teacher) < 1e-4
        if "target" in row:
            assert row["target"]["met"] == (row["fd"] / teacher <= row["target"]["fd_ratio_max"])
    # the markdown says "missed" exactly for the rows whose target is missed
    text = board.markdown(result)
    missed = [n for n, r in rows.items() if "target" in r and not r["target"]["met"]]
    assert text.count("(missed)") == len(missed)


def test_a_row_is_divided_by_the_teacher_on_its_own_seeds_when_the_teacher_has_them():
    teacher = {"fd": 8.6, "fd_seeds": [8.5, 8.7, 8.6], "seeds": [1000000, 1000001, 1000002]}
    assert board.teacher_fd({"fd": 9.0, "fd_seeds": [8.9, 9.1], "seeds": [1000000, 1000001]}, teacher) == (8.5 + 8.7) / 2
    assert board.teacher_fd({"fd": 9.0, "fd_seeds": [9.1], "seeds": [1000001]}, teacher) == 8.7
    one_seed = {"fd": 8.5, "fd_seeds": [8.5], "seeds": [1000000]}  # runs 15-17's teacher: a 2-seed row is not paired
    assert board.teacher_fd({"fd": 9.0, "fd_seeds": [8.9, 9.1], "seeds": [1000000, 1000001]}, one_seed) == 8.5
    assert board.teacher_fd({"fd": 9.0}, teacher) == 8.6  # a row without its seeds: the teacher's own mean
