"""The proof-scale teacher's stages: train (or import) the teacher, and its sweep of sampling steps × CFG on validation
noise, the best setting then scored on the scoring seeds (the `teacher` row). `run` is proof_scale.pipeline's Run."""
from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import asdict, replace

import torch

from onestep import format as gen_format
from onestep.pairs.shards import file_sha256

from .checkpoint import digest
from .cli import context_prompts, read_context
from .common import EVAL_SEEDS, LATENT_FORMAT, SCHEDULER, TINY_CONTEXT, VAL_SEED, Incomplete, read_json, sync, write_json
from .data import empty_row, load_split, num_classes, prompt_names
from .evaluator import per_seed_results, score, score_seeds
from .sampler import class_labels, nfe, sample_teacher
from .teacher import TeacherNetConfig, build_unet, ldm_state_dict, ldm_unet_config, load_teacher, parameter_count, random_context_table, save_teacher, train_teacher
from .teacher_import import import_teacher

log = logging.getLogger("proof_scale")


def stage_teacher(run) -> dict:
    s, t0 = run.scale, time.monotonic()
    # the data set's class count, not Fashion-MNIST's ten; an imported teacher needs no training images (the test labels tell)
    split, limit = ("test", s.test_limit) if run.args.teacher_import else ("train", s.train_limit)
    classes = num_classes(load_split(split, limit, run.data)[1])
    prompts = None
    if run.args.tiny:
        table, source = random_context_table(*TINY_CONTEXT, classes=classes), f"random:{TINY_CONTEXT[0]}:{TINY_CONTEXT[1]} (--tiny)"
    elif run.args.context:
        table, source, prompts = read_context(run.args.context), run.args.context, context_prompts(run.args.context)
    else:
        raise ValueError(f"the teacher stage needs --context FILE (.safetensors with 'context' [{classes + 1}, L, D]: one prompt per class, then the empty prompt)")
    if table.shape[0] != classes + 1:
        raise ValueError(f"the context table has {table.shape[0]} rows, the data set has {classes} classes: it needs one row per class, then the empty prompt")
    prompts = prompt_names(classes, prompts)
    out = run.path("teacher.safetensors")
    if os.path.isfile(out):
        unet, _, net, info = load_teacher(out)
    elif run.args.teacher_import:  # a teacher trained before (e.g. the shipped one): the rows distill exactly it
        unet, net, meta = import_teacher(run.args.teacher_import)
        if net.context_dim != table.shape[2]:
            raise ValueError(f"{run.args.teacher_import} takes text of width {net.context_dim}, the context table has {table.shape[2]}")
        info = {"imported_from": os.path.basename(run.args.teacher_import), "imported_sha256": file_sha256(run.args.teacher_import),
                "steps_done": meta.training_steps, "teacher_train": meta.notes.get("teacher_train"), "seconds": 0.0,
                "device": str(run.device), "context": source, "context_sha256": digest({"context": table}), "prompts": prompts}
        save_teacher(out, unet, net, table, info)
        log.info("teacher: imported %s (%d training steps) → %s", run.args.teacher_import, meta.training_steps, out)
    else:
        net = replace(s.teacher_net, context_dim=int(table.shape[2]))
        cap = s.teacher_train.max_seconds if s.teacher_train.max_seconds > 0 else math.inf
        cap = min(cap, max(1.0, run.left() - 30.0))  # leave time to save
        cfg = replace(s.teacher_train, max_seconds=0.0 if math.isinf(cap) else cap)
        x, y = load_split("train", s.train_limit, run.data)
        log.info("teacher: %s, %.2f M parameters, context %s from %s; up to %d steps at batch %d, max %s s",
                 net, parameter_count(build_unet(net)) / 1e6, tuple(table.shape), source, cfg.steps, cfg.batch, f"{cfg.max_seconds:.0f}" if cfg.max_seconds else "∞")
        start = time.monotonic()
        unet, losses = train_teacher(x, y, table, cfg, net, run.device)
        sync(run.device)
        seconds = time.monotonic() - start
        tail = losses[-min(len(losses), 200):]
        info = {"train": asdict(cfg), "steps_done": len(losses), "final_loss": sum(tail) / len(tail), "seconds": seconds,
                "device": str(run.device), "context": source, "context_sha256": digest({"context": table}), "prompts": prompts}
        save_teacher(out, unet, net, table, info)
        log.info("teacher: %d steps in %.0f s, final loss %.4f → %s", len(losses), seconds, info["final_loss"], out)
    comfy_file = export_teacher_generator(run, unet.cpu(), net, info)
    return run.record(run.path("teacher.json"), {"net": asdict(net), "parameters": parameter_count(build_unet(net)), **info,
                                                 "generator_file": comfy_file}, t0)


def export_teacher_generator(run, unet: torch.nn.Module, net: TeacherNetConfig, info: dict) -> str | None:
    """The teacher also as a generator-format file (method "teacher": core's plain multi-step ε sampling), the form
    ComfyUI's proof-scale model set loads; None where this checkout's generator format has no teacher method."""
    if "teacher" not in gen_format.METHODS:
        log.info("teacher: the generator format here has no 'teacher' method; not writing a ComfyUI teacher file")
        return None
    path = run.path("generators", "teacher.safetensors")
    meta = gen_format.GeneratorMetadata(
        method="teacher", base="custom", prediction="eps", timestep=999, input_convention="sigma_z", latent_format=LATENT_FORMAT,
        latent_channels=1, training_steps=int(info.get("steps_done", 0)), source="proof_scale.pipeline teacher",
        unet_config=ldm_unet_config(net), notes={"teacher_train": info.get("train", {}), "context": info.get("context")},
    )
    gen_format.save_generator(path, ldm_state_dict(unet), meta)
    return path


def _scored_before(run, best: dict, count: int) -> list[dict]:
    """Per-seed results of an earlier teacher_eval.json at the same setting and sample count (kept, not sampled again)."""
    path = run.path("teacher_eval.json")
    old = read_json(path) if os.path.isfile(path) else {}
    if (old.get("steps"), old.get("cfg"), old.get("count")) != (best["steps"], best["cfg"], count):
        return []
    return per_seed_results(old["row"])


def stage_teacher_eval(run) -> dict:
    s, t0 = run.scale, time.monotonic()
    run.require("teacher", "teacher.json")
    ref = run.reference()
    unet, table, _, _ = load_teacher(run.path("teacher.safetensors"), run.device, run.args.compile_teacher)
    partial_path = run.path("teacher_eval.partial.json")
    earlier = read_json(run.path("teacher_eval.json")) if os.path.isfile(run.path("teacher_eval.json")) else {}
    partial = read_json(partial_path) if os.path.isfile(partial_path) else {"rows": list(earlier.get("sweep", []))}
    rows = partial["rows"]
    labels = class_labels(s.sweep_count, empty_row(table))

    def predicted(count: int, steps: int, cfg: float) -> float:
        """Seconds to sample `count` at this setting, from the sweep points measured so far (0 before the first)."""
        work = sum(r["count"] * nfe(r["steps"], r["cfg"]) for r in rows)
        return sum(r["sample_seconds"] for r in rows) / work * count * nfe(steps, cfg) if work else 0.0

    for steps in s.sweep_steps:
        for cfg in s.sweep_cfg:
            if any(r["steps"] == steps and r["cfg"] == cfg and r["count"] == s.sweep_count for r in rows):
                continue
            if run.left() < 1.2 * predicted(s.sweep_count, steps, cfg) or run.left() <= 0:
                raise Incomplete(f"teacher-eval: deadline reached after {len(rows)} sweep points (kept in {partial_path})")
            start = time.monotonic()
            x = sample_teacher(unet, table, labels, steps, cfg, VAL_SEED, "euler", s.sample_batch)  # never the scoring noise
            rows.append({"steps": steps, "cfg": cfg, "count": s.sweep_count, "sample_seconds": time.monotonic() - start, **score(x, labels, ref)})
            write_json(partial_path, partial)
            r = rows[-1]
            log.info("teacher-eval: steps %d cfg %g: fd %.4f precision %.3f recall %.3f class_acc %.4f (%.1f s)",
                     steps, cfg, r["fd"], r["precision"], r["recall"], r["class_acc"], r["sample_seconds"])
    sweep = [r for r in rows if r["steps"] in s.sweep_steps and r["cfg"] in s.sweep_cfg and r["count"] == s.sweep_count]
    best = min(sweep, key=lambda r: r["fd"])
    log.info("teacher-eval: best of the sweep: %d steps, CFG %g (fd %.4f on %d samples); scoring %d samples", best["steps"], best["cfg"], best["fd"], s.sweep_count, s.eval_count)
    seeds = EVAL_SEEDS[: s.teacher_seeds]
    per = _scored_before(run, best, s.eval_count)
    labels = class_labels(s.eval_count, empty_row(table))
    sample = lambda seed: sample_teacher(unet, table, labels, best["steps"], best["cfg"], seed, "euler", s.sample_batch)
    # seed by seed, as many as this call has time for (a 10 k-sample seed measured before predicts the next one better
    # than the sweep, whose first point paid the compile): the record keeps the seeds done, a later call adds the rest
    for seed in [x for x in seeds if x not in {p["seed"] for p in per}]:
        need = max((p["seconds"] for p in per), default=0.0) or predicted(s.eval_count, best["steps"], best["cfg"])
        if run.left() < 1.2 * need + 10:
            break
        per += score_seeds(sample, labels, ref, (seed,))["per_seed"]
    if not per:
        raise Incomplete(f"teacher-eval: sweep done, but too little time left for {s.eval_count} samples of the best setting")
    scored = tuple(x for x in seeds if x in {p["seed"] for p in per})
    row = {**score_seeds(sample, labels, ref, scored, per), "nfe": nfe(best["steps"], best["cfg"])}
    if len(scored) < len(seeds):
        log.info("teacher-eval: scored %d of %d seeds; the next call adds the rest (the stages after it run now)", len(scored), len(seeds))
    log.info("teacher-eval: row teacher %s", json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}))
    return run.record(run.path("teacher_eval.json"), {
        "row": row, "steps": best["steps"], "cfg": best["cfg"], "sampler": "euler", "scheduler": SCHEDULER, "count": s.eval_count,
        "batch": s.sample_batch, "seeds": list(scored), "sweep_seed": VAL_SEED, "sweep": sweep,
    }, t0)
