"""proof_scale.carried_teacher: a scored teacher row goes into a fresh work folder only with the teacher file and context
table it was scored with, never over a record the folder has; the pipeline then skips teacher-eval."""
import json
import os
import shutil

import torch
from safetensors.torch import load_file, save_file

from onestep.atomic import file_sha256
from proof_scale import carried_teacher
from proof_scale.checkpoint import digest


def _run_dir(tmp_path):
    teacher, context = tmp_path / "teacher.safetensors", tmp_path / "context.safetensors"
    save_file({"w": torch.arange(6.0)}, str(teacher))
    table = torch.randn(3, 4, 8)
    save_file({"context": table}, str(context))
    run = tmp_path / "run"
    run.mkdir()
    (run / "teacher.json").write_text(json.dumps({"imported_sha256": file_sha256(teacher), "context_sha256": digest({"context": table})}))
    (run / "teacher_eval.json").write_text(json.dumps({"seeds": [1000000, 1000001, 1000002], "cfg": 1.5, "steps": 50, "row": {"fd": 8.47}}))
    return str(run), str(teacher), str(context)


def test_placed_with_the_same_teacher_and_context(tmp_path):
    run, teacher, context = _run_dir(tmp_path)
    work = str(tmp_path / "work")
    said = carried_teacher.place(run, work, teacher, context)
    assert said.startswith("TEACHER ROW placed") and "1000002" in said
    with open(os.path.join(work, "teacher_eval.json")) as f:
        assert json.load(f)["row"]["fd"] == 8.47


def test_refused_for_another_teacher_or_context_and_never_over_a_record(tmp_path):
    run, teacher, context = _run_dir(tmp_path)
    other = tmp_path / "other.safetensors"
    save_file({"w": torch.arange(7.0)}, str(other))
    work = str(tmp_path / "work")
    assert "not the teacher" in carried_teacher.place(run, work, str(other), context)
    other_ctx = tmp_path / "other_ctx.safetensors"
    save_file({"context": torch.randn(3, 4, 8)}, str(other_ctx))
    assert "not the context table" in carried_teacher.place(run, work, teacher, str(other_ctx))
    assert not os.path.exists(os.path.join(work, "teacher_eval.json"))
    os.makedirs(work)
    with open(os.path.join(work, "teacher_eval.json"), "w") as f:
        f.write('{"seeds": [1000000]}')
    assert "exists, kept" in carried_teacher.place(run, work, teacher, context)
    with open(os.path.join(work, "teacher_eval.json")) as f:
        assert json.load(f) == {"seeds": [1000000]}


def test_a_rebuilt_table_that_differs_by_round_off_only_matches_when_the_run_kept_its_table(tmp_path):
    """Another torch build rounds the rebuilt context table differently: its digest changes, the teacher's row does not."""
    run, teacher, context = _run_dir(tmp_path)
    table = load_file(context)["context"]
    rebuilt = tmp_path / "rebuilt.safetensors"
    save_file({"context": table + 1e-6 * torch.randn_like(table)}, str(rebuilt))
    work = str(tmp_path / "work")
    assert "has no context.safetensors" in carried_teacher.place(run, work, teacher, str(rebuilt))
    shutil.copy(context, os.path.join(run, "context.safetensors"))
    assert carried_teacher.place(run, work, teacher, str(rebuilt)).startswith("TEACHER ROW placed")
    os.remove(os.path.join(work, "teacher_eval.json"))
    far = tmp_path / "far.safetensors"
    save_file({"context": table + 1e-2}, str(far))
    assert "values differ by up to 0.01" in carried_teacher.place(run, work, teacher, str(far))
    save_file({"context": table + 1e-6}, os.path.join(run, "context.safetensors"))  # not the table teacher.json names
    assert "is not the table" in carried_teacher.place(run, work, teacher, str(rebuilt))
    assert not os.path.exists(os.path.join(work, "teacher_eval.json"))
