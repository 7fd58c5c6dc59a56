"""A finished row carried from one device session to the next: device machines start bare and what comes back is at most
8 files of 16 MiB, so a row's selected weights come back as two halves (benchmarks/device/proof_scale_run.sh, KEEP=tag)
and its records in records.tgz. `pack` turns them (or a shipped generator file) into a folder a later run carries;
`place` puts that folder into a work folder as the finished row, so `...@init_from=ROW` rows and the stages that read a
row (pairs-2rf reads reflow_2rf) run on from it.

  python -m proof_scale.init_row pack OUT --row ROW (--weights A.safetensors [B ...] (--result RESULT.json | --selection
                                       SELECTION.json --plan PLAN.json) | --generator FILE)
  python -m proof_scale.init_row place INIT_DIR WORK
  python -m proof_scale.init_row split OUT --tag TAG --weights best_TAG_a.safetensors best_TAG_b.safetensors
                                       (the halves re-split under the repository's 10 MiB a file, to commit them)

A row the device budget stopped before its last step (a long data-free SiD-LSG row spread over sessions) has no
result.json: --selection and --plan (its selection.json and plan.json from records.tgz) stand for it, the selected step
being the selection's best point and its training samples that step × the plan's batch.

The folder: best.safetensors (the diffusers state dict a row keeps, fp16), result.json (what init_from reads: the row's
selected step and training samples), plan.json and row.txt (the row's name in the work folder: its distill/ folder).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys

from safetensors.torch import load_file, save_file

from . import carried_state
from .common import write_json
from .rows import row_dir_name

DEFAULT_ROW = "diffusion2gan"  # the folder `init_from=diffusion2gan` rows read (runs 15-17's SiD rows)
FILES = ("best.safetensors", "result.json", "plan.json")


def _fp16(sd: dict) -> dict:
    return {k: v.half().contiguous() for k, v in sd.items()}


def unfinished_result(selection: str, plan: str) -> dict:
    """What result.json would say of a row stopped before its last step: its best selection point so far."""
    with open(selection, encoding="utf-8") as f:
        best = json.load(f).get("best")
    with open(plan, encoding="utf-8") as f:
        settings = json.load(f)
    if not best or "step" not in best:
        raise ValueError(f"{selection} has no best point: the row was not selected on yet")
    if "batch" not in settings:
        raise ValueError(f"{plan} names no batch: not a row's plan.json")
    return {"row": {"selected_step": best["step"], "training_samples": best["step"] * settings["batch"], "val_fd": best.get("fd"),
                    "finished": False}, "plan": settings}


def finished_result(path: str) -> dict:
    """A finished row's result.json."""
    with open(path, encoding="utf-8") as f:
        record = json.load(f)
    if "selected_step" not in record.get("row", {}):
        raise ValueError(f"{path} is not a finished row's result.json (no row.selected_step)")
    return record


def pack_weights(out: str, row: str, weights: list[str], record: dict, source: str) -> None:
    """A row's selected weights (the halves KEEP brings back, or one file) with its result record (finished_result or
    unfinished_result), `source` naming where that record came from."""
    sd = {}
    for path in weights:
        part = load_file(path)
        if set(part) & set(sd):
            raise ValueError(f"{path} repeats tensors of another half: give each half once")
        sd.update(part)
    os.makedirs(out, exist_ok=True)
    save_file(_fp16(sd), os.path.join(out, "best.safetensors"))
    write_json(os.path.join(out, "result.json"), {**record, "carried_from": {"weights": weights, "result": source}})
    write_json(os.path.join(out, "plan.json"), record.get("plan", {"row": row}))
    _write_row(out, row)


def pack_generator(out: str, row: str, path: str) -> None:
    """A one-step generator file of a proof-scale architecture (e.g. the shipped student)."""
    from onestep.format import read_metadata

    from .teacher_import import import_unet

    meta = read_metadata(path)
    unet, _, _ = import_unet(path)
    os.makedirs(out, exist_ok=True)
    save_file(_fp16(unet.state_dict()), os.path.join(out, "best.safetensors"))
    # the start's step is the file's; its samples are unknown to the file, so 0: the row then counts only its own
    write_json(os.path.join(out, "result.json"), {"row": {"selected_step": meta.training_steps, "training_samples": 0, "file": path,
                                                          "method": meta.method}})
    write_json(os.path.join(out, "plan.json"), {"row": "init", "from_file": path, "source": meta.source})
    _write_row(out, row)


def _write_row(out: str, row: str) -> None:
    with open(os.path.join(out, "row.txt"), "w", encoding="utf-8") as f:
        f.write(row + "\n")


def place(init_dir: str, work: str) -> str | None:
    """Put INIT_DIR's row into WORK as finished (nothing when that row has its weights there already); returns the row
    placed, or None. Its result.json loses the name of the earlier session's generator file, which did not travel:
    readers (pairs-2rf) then take the row's best.safetensors."""
    if os.path.isfile(os.path.join(init_dir, carried_state.G_FILE)):
        return _place_state(init_dir, work)
    if not os.path.isfile(os.path.join(init_dir, "best.safetensors")):
        return None
    row = DEFAULT_ROW
    if os.path.isfile(os.path.join(init_dir, "row.txt")):
        with open(os.path.join(init_dir, "row.txt"), encoding="utf-8") as f:
            row = f.read().strip() or DEFAULT_ROW
    folder = os.path.join(work, "distill", row_dir_name(row))
    if os.path.isfile(os.path.join(folder, "best.safetensors")):
        return None
    os.makedirs(folder, exist_ok=True)
    for name in FILES:
        if os.path.isfile(os.path.join(init_dir, name)):
            shutil.copyfile(os.path.join(init_dir, name), os.path.join(folder, name))
    result = os.path.join(folder, "result.json")
    with open(result, encoding="utf-8") as f:
        record = json.load(f)
    if record.get("generator"):  # the earlier session's file did not travel: readers take best.safetensors
        write_json(result, {**record, "generator": None})
    return row


def _place_state(init_dir: str, work: str) -> str | None:
    """A carried training state (proof_scale.carried_state: G and the method's networks as int8 deltas from the
    teacher, dequantized when a row starts from it, once the work folder has its teacher): its files and a result.json
    that says where it stopped."""
    _, meta = carried_state.read(os.path.join(init_dir, carried_state.G_FILE))
    row = meta["row"]
    folder = os.path.join(work, "distill", row_dir_name(row))
    if os.path.isfile(os.path.join(folder, carried_state.G_FILE)):
        return None
    os.makedirs(folder, exist_ok=True)
    for name in os.listdir(init_dir):
        if name == carried_state.G_FILE or name.endswith(carried_state.NET_SUFFIX):
            shutil.copyfile(os.path.join(init_dir, name), os.path.join(folder, name))
    write_json(os.path.join(folder, "plan.json"), meta["plan"])
    write_json(os.path.join(folder, "result.json"), {
        "row": {"selected_step": meta["step"], "training_samples": meta["training_samples"], "finished": False},
        "plan": meta["plan"], "carried_from": {"state": init_dir}})
    return row


GIT_FILE_LIMIT = 10 * 2**20  # a tracked file stays under 10 MiB (the repository's rule), so kept weights are split


def split_for_git(out: str, tag: str, weights: list[str]) -> list[str]:
    """A row's weights (KEEP's two halves, each up to ~11 MB) re-split into as many parts as keep each under the
    repository's 10 MiB per tracked file: OUT/best_TAG_a.safetensors, _b, _c ... (what --init-weights takes back)."""
    w = {k: v for path in weights for k, v in load_file(path).items()}
    total = sum(v.numel() * v.element_size() for v in w.values())
    n = max(1, -(-total // (GIT_FILE_LIMIT * 9 // 10)))  # a tenth of room for the header and an uneven cut
    keys = sorted(w)
    os.makedirs(out, exist_ok=True)
    paths = []
    for i in range(n):
        part = keys[i * len(keys) // n:(i + 1) * len(keys) // n]
        paths.append(os.path.join(out, f"best_{tag}_{chr(ord('a') + i)}.safetensors"))
        save_file({k: w[k].contiguous() for k in part}, paths[-1])
        if os.path.getsize(paths[-1]) >= GIT_FILE_LIMIT:
            raise ValueError(f"{paths[-1]} is over 10 MiB: one tensor group too large to split by names")
    return paths


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m proof_scale.init_row", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    pk = sub.add_parser("pack", help="a row's returned weights (or a generator file) → a folder to carry")
    pk.add_argument("out")
    pk.add_argument("--row", default=DEFAULT_ROW, help=f"the row it becomes in the work folder (default {DEFAULT_ROW})")
    src = pk.add_mutually_exclusive_group(required=True)
    src.add_argument("--weights", nargs="+", help="the row's selected weights (best_TAG_a/b.safetensors)")
    src.add_argument("--generator", help="a one-step generator file of a proof-scale architecture")
    pk.add_argument("--result", help="with --weights: the row's result.json (from records.tgz)")
    pk.add_argument("--selection", help="with --weights, for a row stopped before its last step: its selection.json")
    pk.add_argument("--plan", help="with --selection: the row's plan.json")
    sp = sub.add_parser("split", help="KEEP's halves → parts under 10 MiB each, to commit (e.g. into RUN_DIR/kept/)")
    sp.add_argument("out")
    sp.add_argument("--tag", required=True, help="the row's tag (KEEP's: best_TAG_a/b.safetensors)")
    sp.add_argument("--weights", nargs="+", required=True)
    pl = sub.add_parser("place", help="put a carried folder into a work folder as a finished row")
    pl.add_argument("init_dir")
    pl.add_argument("work")
    a = p.parse_args(argv)
    if a.command == "split":
        for path in split_for_git(a.out, a.tag, a.weights):
            print(f"{path} ({os.path.getsize(path)} bytes)")
        return 0
    if a.command == "place":
        row = place(a.init_dir, a.work)
        print(f"INIT placed: row {row}" if row else "init: nothing to place")
        return 0
    if a.weights:
        if bool(a.result) == bool(a.selection and a.plan):
            p.error("--weights needs --result (a finished row's result.json) or --selection and --plan (a row stopped before its end)")
        if a.result:
            pack_weights(a.out, a.row, a.weights, finished_result(a.result), a.result)
        else:
            pack_weights(a.out, a.row, a.weights, unfinished_result(a.selection, a.plan), f"{a.selection} (a row stopped before its end)")
    else:
        pack_generator(a.out, a.row, a.generator)
    print(f"init: row {a.row} packed into {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
