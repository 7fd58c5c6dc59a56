"""Make a finished proof-scale run the pack's embedded default model set (issue 6), or replace its student.

  python -m tools.ship_proof_scale WORK CONTEXT ENCODER [--dest default_models/proof_scale] [--row diffusion2gan]
  python -m tools.ship_proof_scale --student-weights A.safetensors [B ...] --score SCORE.json --row NAME --steps N
                                   --source TEXT [--plan PLAN.json] [--method M] [--teacher-row TEACHER_EVAL.json] [--started-from TEXT]
                                   [--dest default_models/proof_scale]

WORK is proof_scale.pipeline's work folder after its report; CONTEXT the context table the teacher trained on;
ENCODER the text-encoder file that table was encoded with. Before anything is written the chain is checked: the
table is the teacher's (teacher.json's context_sha256), the encoder is the table's (its encoder_sha256), the
teacher and student are generator files of the fmnist32 space with the encoder's text width, and both rows
were scored. Written atomically into DEST: the teacher and the student as fp16 generator files (their metadata
kept, the scored weights' dtype noted), the encoder, and PROVENANCE.json (file names → role, sha256; the scored
rows; the commands). tools/build_default_models.py installs a DEST that holds a PROVENANCE.json into ComfyUI's
models/onestep, which the README's main command (scripts/serve.sh) runs.

The second form replaces only the student of a shipped set with weights that came back from the GPU without a
finished row (a stage stopped by the device budget) and were scored by benchmarks.score_generator: SCORE.json must
name those files in its command, and the weights must be the shipped student's architecture (the same UNet keys and
shapes); the teacher and the encoder stay, PROVENANCE.json gets the new row, its files' sha256 and the score's
command. --method names the method of the stage that made the weights (e.g. sid-lsg for a SiD-LSG stage started from a
Diffusion2GAN student: the file must not claim a method its last stage did not use; default: keep). --teacher-row
replaces the teacher row with a pipeline's teacher_eval.json row — needed when the evaluator (classifier) was retrained
for SCORE, since an FD ratio is only meaningful with both rows from one evaluator; default: keep.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
from dataclasses import replace

import torch
from safetensors import safe_open
from safetensors.torch import load_file

from onestep import unet_keys
from onestep.atomic import atomic_write, file_sha256
from onestep.format import METHODS, load_generator, save_generator
from proof_scale.checkpoint import digest

log = logging.getLogger("onestep")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_DEST = os.path.join(REPO, "default_models", "proof_scale")
PROVENANCE = "PROVENANCE.json"
FILES = {  # role → file name in DEST and in models/onestep
    "teacher": "fmnist-teacher.safetensors",
    "student": "fmnist-student.safetensors",
    "text_encoder": "fmnist-text-encoder.safetensors",
}
LATENT_FORMAT = "fmnist32"


class ShipError(ValueError):
    """The run cannot be shipped; the message says what does not fit."""


def _json(path: str) -> dict:
    if not os.path.isfile(path):
        raise ShipError(f"{path} is missing: finish the pipeline first (python -m proof_scale.parallel ... or --stage ...)")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _encoder_width(path: str) -> int:
    with safe_open(path, "pt") as f:
        meta = f.metadata() or {}
    if meta.get("onestep.format") != "onestep-text-encoder":
        raise ShipError(f"{os.path.basename(path)} is not an onestep text-encoder file")
    try:
        return int(json.loads(meta["onestep.text_config"])["hidden_size"])
    except (KeyError, ValueError, TypeError):
        raise ShipError(f"{os.path.basename(path)}: metadata onestep.text_config is missing or has no hidden_size") from None


def check_run(work: str, context: str, encoder: str, row: str) -> dict:
    """Everything PROVENANCE.json records, after checking the chain encoder → table → teacher → student."""
    teacher_rec = _json(os.path.join(work, "teacher.json"))
    ev = _json(os.path.join(work, "teacher_eval.json"))
    student_rec = _json(os.path.join(work, "distill", row, "result.json"))
    with safe_open(context, "pt") as f:
        table, table_meta = f.get_tensor("context"), f.metadata() or {}
    if digest({"context": table}) != teacher_rec.get("context_sha256"):
        raise ShipError(f"{os.path.basename(context)} is not the context table the teacher trained on (teacher.json context_sha256)")
    enc_sha = file_sha256(encoder)
    if table_meta.get("encoder_sha256") != enc_sha:
        raise ShipError(f"{os.path.basename(encoder)} is not the encoder the context table was made with (its encoder_sha256)")
    files = {"teacher": os.path.join(work, "generators", "teacher.safetensors"), "student": os.path.join(work, "generators", f"{row}.safetensors")}
    width = _encoder_width(encoder)
    for role, path in files.items():
        _, meta = load_generator(path)
        if meta.latent_format != LATENT_FORMAT:
            raise ShipError(f"{role} {os.path.basename(path)} makes {meta.latent_format!r} latents, not {LATENT_FORMAT!r}")
        if (meta.method == "teacher") != (role == "teacher"):
            raise ShipError(f"{os.path.basename(path)} has method {meta.method!r}: wrong file for the {role}")
        dim = (meta.unet_config or {}).get("context_dim")
        if dim is None or int(dim) != width:
            raise ShipError(f"{role} takes text width {dim}, the encoder makes {width}")
    if os.path.basename(student_rec.get("generator", "")) != os.path.basename(files["student"]):
        raise ShipError(f"row {row}'s result was scored on {student_rec.get('generator')}, not {files['student']}")
    return {"files": files, "encoder": encoder, "rows": {"teacher": {**ev["row"], "steps": ev["steps"], "cfg": ev["cfg"], "sampler": ev["sampler"]},
                                                         row: student_rec["row"]},
            "commands": sorted({teacher_rec.get("command", ""), ev.get("command", ""), student_rec.get("command", "")} - {""}),
            "device": student_rec.get("device"), "teacher_train": {k: teacher_rec.get(k) for k in ("steps_done", "seconds", "parameters")}}


def ship(work: str, context: str, encoder: str, dest: str = DEFAULT_DEST, row: str = "diffusion2gan") -> dict:
    """Check the run, then write the fp16 set and PROVENANCE.json into dest (PROVENANCE last); the provenance."""
    info = check_run(work, context, encoder, row)
    os.makedirs(dest, exist_ok=True)
    for role in ("teacher", "student"):
        sd, meta = load_generator(info["files"][role])
        half, dtypes = _fp16(sd)
        meta = replace(meta, notes={**meta.notes, "shipped": f"fp16 copy of the scored {dtypes} weights of {os.path.basename(info['files'][role])}"})
        save_generator(os.path.join(dest, FILES[role]), half, meta)
    atomic_write(os.path.join(dest, FILES["text_encoder"]), lambda tmp: shutil.copyfile(encoder, tmp))
    provenance = {
        "files": {FILES[r]: {"role": r, "sha256": file_sha256(os.path.join(dest, FILES[r]))} for r in FILES},
        "rows": info["rows"], "device": info["device"], "teacher_train": info["teacher_train"], "commands": info["commands"],
        "note": "rows were scored on the run's own weights; the shipped UNets are their fp16 copies",
    }
    _write_provenance(dest, provenance)
    log.info("shipped %s → %s", work, dest)
    return provenance


def _fp16(sd: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], str]:
    """The floating tensors in fp16 (the shipped files), and their dtypes before, e.g. "float32"."""
    dtypes = sorted({str(v.dtype).removeprefix("torch.") for v in sd.values() if v.is_floating_point()})
    return {k: v.half() if v.is_floating_point() else v for k, v in sd.items()}, "/".join(dtypes)


def _write_provenance(dest: str, provenance: dict) -> None:
    text = json.dumps(provenance, indent=2) + "\n"

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)

    atomic_write(os.path.join(dest, PROVENANCE), write)


def ship_student(weights: list[str], score: str, row: str, steps: int, source: str, dest: str = DEFAULT_DEST, plan: str | None = None,
                 method: str | None = None, teacher_row: str | None = None, started_from: str | None = None) -> dict:
    """Replace the shipped set's student with scored native (diffusers-named) weights; the new provenance.
    started_from: what the weights' training started from (default: the shipped student, whose source is kept)."""
    files = shipped_set(dest)
    if files is None:
        raise ShipError(f"{dest} holds no shipped set whose student could be replaced: ship a finished run first")
    if method is not None and (method not in METHODS or method == "teacher"):
        raise ShipError(f"{method!r} is not a one-step student's method; known: {', '.join(m for m in METHODS if m != 'teacher')}")
    teacher_eval = _json(teacher_row) if teacher_row else {}
    teacher = teacher_eval.get("row")
    if teacher_row and not (isinstance(teacher, dict) and isinstance(teacher.get("fd"), float)):
        raise ShipError(f"{os.path.basename(teacher_row)} holds no scored teacher row (a pipeline's teacher_eval.json has one)")
    rec = _json(score)
    names = [os.path.basename(w) for w in weights]
    if not all(n in rec.get("command", "") for n in names) or not isinstance(rec.get("fd"), float):
        raise ShipError(f"{os.path.basename(score)} is not a score of {', '.join(names)} (benchmarks.score_generator's JSON names them in its command)")
    native = {}
    for w in weights:
        native.update(load_file(w))
    try:
        ldm = unet_keys.diffusers_to_ldm(native)
    except ValueError as e:  # a key no diffusers UNet has
        raise ShipError(f"{', '.join(names)} are not weights of the shipped student's UNet ({e})") from None
    old, meta = load_generator(files["student"])
    if set(ldm) != set(old) or any(ldm[k].shape != old[k].shape for k in ldm):
        raise ShipError(f"{', '.join(names)} are not weights of the shipped student's UNet (other keys or shapes)")
    half, dtypes = _fp16(ldm)
    notes = {"proof_scale_row": row, "started_from": started_from or meta.source, "shipped": f"fp16 copy of the scored {dtypes} weights {', '.join(names)}",
             "score": {k: rec[k] for k in ("precision_mode", "seeds") if k in rec}, **({"plan": _json(plan)} if plan else {})}
    meta = replace(meta, training_steps=steps, source=source, notes=notes, method=method or meta.method)
    save_generator(os.path.join(dest, FILES["student"]), half, meta)
    with open(os.path.join(dest, PROVENANCE), encoding="utf-8") as f:
        prov = json.load(f)
    student_name = FILES["student"]
    prov["files"][student_name]["sha256"] = file_sha256(os.path.join(dest, student_name))
    prov["rows"] = {"teacher": teacher or prov["rows"]["teacher"], row: {k: v for k, v in rec.items() if k != "command"}}
    prov["commands"] = [*prov.get("commands", []), *([teacher_eval["command"]] if "command" in teacher_eval else []), rec["command"]]
    prov["note"] = (f"{prov.get('note', '')}; the student was replaced by {', '.join(names)} ({source}), scored as the row {row} "
                    f"({rec.get('precision_mode', 'as recorded')}) by the last command").lstrip("; ")
    _write_provenance(dest, prov)
    log.info("shipped the student %s → %s", ", ".join(names), dest)
    return prov


def shipped_set(dest: str = DEFAULT_DEST) -> dict[str, str] | None:
    """role → path of a shipped set whose files match its PROVENANCE.json; None when nothing is shipped there."""
    path = os.path.join(dest, PROVENANCE)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        prov = json.load(f)
    out = {}
    for name, entry in prov["files"].items():
        p = os.path.join(dest, name)
        if not os.path.isfile(p) or file_sha256(p) != entry["sha256"]:
            raise ShipError(f"{p} is missing or differs from {PROVENANCE} (sha256): restore it from git")
        out[entry["role"]] = p
    return out


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    ap = argparse.ArgumentParser(prog="python -m tools.ship_proof_scale", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("work", nargs="?")
    ap.add_argument("context", nargs="?")
    ap.add_argument("encoder", nargs="?")
    ap.add_argument("--dest", default=DEFAULT_DEST)
    ap.add_argument("--row", default="diffusion2gan")
    ap.add_argument("--student-weights", nargs="+", help="replace only the student: its native weights (one or several files)")
    ap.add_argument("--score", help="with --student-weights: benchmarks.score_generator's JSON of those weights")
    ap.add_argument("--steps", type=int, help="with --student-weights: the student's training steps")
    ap.add_argument("--source", help="with --student-weights: how the student was made (the generator file's source)")
    ap.add_argument("--plan", help="with --student-weights: the stage's plan.json, kept in the file's notes")
    ap.add_argument("--method", help=f"with --student-weights: the method of the stage that made them ({', '.join(METHODS)}; default: keep)")
    ap.add_argument("--teacher-row", help="with --student-weights: a teacher_eval.json scored by SCORE's evaluator (default: keep the teacher row)")
    ap.add_argument("--started-from", help="with --student-weights: what their training started from (default: the shipped student)")
    a = ap.parse_args(argv)
    if a.student_weights is None and None in (a.work, a.context, a.encoder):
        ap.error("WORK CONTEXT ENCODER, or --student-weights with --score, --steps and --source")
    if a.student_weights is not None and None in (a.score, a.steps, a.source):
        ap.error("--student-weights needs --score, --steps and --source")
    try:
        if a.student_weights is not None:
            prov = ship_student(a.student_weights, a.score, a.row, a.steps, a.source, a.dest, a.plan, a.method, a.teacher_row, a.started_from)
        else:
            prov = ship(a.work, a.context, a.encoder, a.dest, a.row)
    except (ShipError, OSError) as e:
        log.error("error: %s", e)
        return 2
    print(json.dumps(prov["rows"], indent=2))
    return 0


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    sys.exit(main())
