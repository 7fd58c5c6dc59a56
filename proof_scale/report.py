"""The proof-scale report: every row's record into WORK/proof_scale.json and a markdown table with the
targets, each row's FD range over its scoring seeds, training samples and GPU seconds. `run` is proof_scale.pipeline's Run."""
from __future__ import annotations

import logging
import math
import os
import sys
import time

import torch

from .common import EVAL_SEEDS, METRICS, VAL_SEED, read_json, write_json
from .rows import DISTILL_ROWS, FLOW_ROWS, ROWS, SID_ROWS, row_dir_name

log = logging.getLogger("proof_scale")


def result_path(row: str) -> str:
    """A distillation row's result record, relative to the work folder."""
    return os.path.join("distill", row_dir_name(row), "result.json")


def stage_report(run) -> dict:
    t0 = time.monotonic()
    records = {
        "classifier": run.require("classifier", "classifier.json"), "teacher": run.require("teacher", "teacher.json"),
        "teacher-eval": run.require("teacher-eval", "teacher_eval.json"), "pairs": run.require("pairs", "pairs.json"),
        "latent-lpips": run.require("latent-lpips", "latent_lpips.json"),
    }
    rows = {"teacher": records["teacher-eval"]["row"]}
    variants = sorted(r for r in (run.args.variants or []) if r not in DISTILL_ROWS and r not in SID_ROWS)
    sid_rows = [r for r in SID_ROWS if os.path.isfile(run.path(result_path(r)))]  # the prompts-only rows that have run
    for r in (*DISTILL_ROWS, *sid_rows, *variants):
        records[f"distill-{r}"] = rec = run.require(f"distill-{r}", result_path(r))
        rows[r] = {**rec["row"], "plan": rec["plan"]}
    for name, row in rows.items():
        bad = [k for k in METRICS if not isinstance(row.get(k), (int, float)) or not math.isfinite(row[k])]
        if bad:
            raise ValueError(f"row {name} has missing or non-finite {bad}")
    plans = {r: records[f"distill-{r}"]["plan"] for r in DISTILL_ROWS}
    shared = ("steps", "batch", "lr", "ema_decay", "lr_warmup", "lr_decay", "timestep", "seed")
    mismatch = sorted({k for k in shared for p in plans.values() if p[k] != plans["diffusion2gan"][k]})
    meta = {
        "device": records["distill-diffusion2gan"]["device"], "torch": torch.__version__, "plan": plans["diffusion2gan"],
        "same_settings_all_rows": not mismatch,
        "pairs": records["pairs"]["count"], "heldout_pairs": records["pairs"].get("heldout", 0), "pairs_per_second": records["pairs"]["pairs_per_second"],
        "teacher_sampling": {k: records["teacher-eval"][k] for k in ("steps", "cfg", "sampler", "scheduler")},
        "teacher_train": {k: records["teacher"].get(k) for k in ("steps_done", "seconds", "final_loss", "parameters", "context", "imported_from")},
        "teacher_sweep": records["teacher-eval"]["sweep"], "sweep_seed": VAL_SEED,
        "classifier_test_accuracy": records["classifier"]["test_accuracy"],
        "latent_lpips": {"heads": records["latent-lpips"]["info"].get("heads"), "width": records["latent-lpips"]["trunk"]["width"],
                         "augment": records["latent-lpips"]["trunk"].get("augment", "")},
        "eval_count": records["teacher-eval"]["count"], "eval_seeds": list(EVAL_SEEDS), "tiny": bool(run.args.tiny),
        "commands": {k: v["command"] for k, v in records.items()} | {"report": run.command},
        "stage_seconds": {k: v.get("stage_seconds") for k, v in records.items()},
    }
    if mismatch:
        log.warning("report: the distillation rows differ in %s — the ablation is not like for like", mismatch)
    keep = (*METRICS, "fd_seeds", "fd_spread", "training_samples", "train_seconds", "selected_step", "steps")
    out = {name: {k: row[k] for k in keep if k in row} for name, row in rows.items() if name in ROWS}
    out.update({name: {**{k: rows[name][k] for k in keep if k in rows[name]}, "plan": rows[name]["plan"]} for name in sid_rows})
    out["variants"] = {name: {**{k: rows[name][k] for k in keep if k in rows[name]}, "plan": rows[name]["plan"]} for name in variants}
    out["meta"] = meta
    flow = flow_rows(run, keep)
    if flow:  # the rectified-flow rows (issue 17), once any has finished
        out["flow"] = flow
    write_json(run.results, out)
    text = markdown(out)
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
    log.info("report: wrote %s", run.results)
    return {"results": run.results, "stage_seconds": time.monotonic() - t0}


def flow_rows(run, keep: tuple[str, ...]) -> dict:
    """The teacher at few Euler steps, the 2-RF at each step count it was scored at and InstaFlow, where finished."""
    rows = {}
    if os.path.isfile(run.path("teacher_steps.json")):
        rows.update(read_json(run.path("teacher_steps.json"))["rows"])
    for name in FLOW_ROWS:
        if not os.path.isfile(run.path(result_path(name))):
            continue
        r = read_json(run.path(result_path(name)))["row"]
        shared = {k: r[k] for k in keep if k in r and k not in METRICS and k not in ("fd_seeds", "fd_spread")}
        for k, m in (r.get("by_steps") or {"1": r}).items():
            rows[f"{name}_{k}" if "by_steps" in r and name == "reflow_2rf" else name] = {**{x: m[x] for x in keep if x in m}, **shared}
    return rows


def _flow_markdown(result: dict) -> list[str]:
    t, rows = result["teacher"], result["flow"]
    lines = ["", "Rectified flow (issue 17): the teacher at few Euler steps, the 2-rectified flow (reflow) at 1, 2, 4 Euler steps, InstaFlow (one step).",
             "", "| row | FD (range over seeds) | FD / teacher | precision | recall | class acc | NFE | training samples | GPU s (training) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        samples = f"{r['training_samples'] / 1e6:.2f} M" if "training_samples" in r else "—"
        gpu = f"{r['train_seconds']:.0f}" if "train_seconds" in r else "—"
        lines.append(f"| {name} | {_fd(r)} | {r['fd'] / t['fd'] if t['fd'] > 0 else float('nan'):.2f} | {r['precision']:.3f} | "
                     f"{r['recall']:.3f} | {r['class_acc']:.4f} | {r['nfe']} | {samples} | {gpu} |")
    ok = lambda b: "**met**" if b else "**missed**"
    targets = []
    if "reflow_2rf_4" in rows:
        ratio = rows["reflow_2rf_4"]["fd"] / t["fd"]
        targets.append(f"2-RF at 4 Euler steps FD ≤ 1.5 × teacher: {ratio:.2f}× → {ok(ratio <= 1.5)}")
    if "instaflow" in rows:
        ratio = rows["instaflow"]["fd"] / t["fd"]
        targets.append(f"InstaFlow one step FD ≤ 1.30 × teacher: {ratio:.2f}× → {ok(ratio <= 1.30)}")
    return lines + (["", "Targets: " + "; ".join(targets) + "."] if targets else [])


def _fd(r: dict) -> str:
    seeds = r.get("fd_seeds") or [r["fd"]]
    return f"{r['fd']:.2f} ({min(seeds):.2f}–{max(seeds):.2f})" if len(seeds) > 1 else f"{r['fd']:.2f}"


def markdown(result: dict) -> str:
    """The results table (FD: mean over the scoring seeds, their range in brackets), the targets and the commands."""
    t = result["teacher"]
    lines = ["| row | FD (range over seeds) | FD / teacher | precision | recall | class acc | NFE | training samples | GPU s (training) |",
             "|---|---|---|---|---|---|---|---|---|"]
    named = [(n, result[n]) for n in (*ROWS, *SID_ROWS) if n in result] + list(result.get("variants", {}).items())
    for name, r in named:
        samples = f"{r['training_samples'] / 1e6:.2f} M" if "training_samples" in r else "—"
        gpu = f"{r['train_seconds']:.0f}" if "train_seconds" in r else "—"
        lines.append(f"| {name} | {_fd(r)} | {r['fd'] / t['fd'] if t['fd'] > 0 else float('nan'):.2f} | {r['precision']:.3f} | "
                     f"{r['recall']:.3f} | {r['class_acc']:.4f} | {r['nfe']} | {samples} | {gpu} |")
    d = result["diffusion2gan"]
    ratio = d["fd"] / t["fd"] if t["fd"] > 0 else float("inf")
    acc_gap = (d["class_acc"] - t["class_acc"]) * 100
    rec = d["recall"] / t["recall"] if t["recall"] > 0 else 0.0
    order = [result[r]["fd"] for r in ("regression_mse", "regression_latentlpips", "regression_elatentlpips", "diffusion2gan")]
    ok = lambda b: "**met**" if b else "**missed**"
    m = result["meta"]
    p = m["plan"]
    if "flow" in result:
        lines += _flow_markdown(result)
    lines += [
        "",
        (f"Targets: diffusion2gan FD ≤ 1.10 × teacher: {ratio:.2f}× → {ok(ratio <= 1.10)}; class accuracy within 2 points: "
         f"{acc_gap:+.2f} points → {ok(abs(acc_gap) <= 2.0)}; recall ≥ 0.8 × teacher: {rec:.2f}× → {ok(rec >= 0.8)}; "
         f"order mse > latentlpips > elatentlpips > diffusion2gan in FD: {' > '.join(f'{v:.2f}' for v in order)} → "
         f"{ok(all(a > b for a, b in zip(order, order[1:])))}."),
        *(["", _sid_targets(result["sid_lsg"], t, ok)] if "sid_lsg" in result else []),
        "",
        (f"Device: {m['device']}. Teacher: {m['teacher_sampling']['steps']} euler steps, CFG {m['teacher_sampling']['cfg']:g} (FD range over "
         f"{len(t.get('fd_seeds', [0]))} scoring seeds: {t.get('fd_spread', 0):.2f}). Students: up to {p['steps']} steps at batch {p['batch']}, "
         f"lr {p['lr']:g} (warm-up {p['lr_warmup']}, {p['lr_decay']}), EMA {p['ema_decay']}, ε at t={p['timestep']}; the EMA weights with the "
         f"best validation FD (noise seed {m['sweep_seed']}) are scored; {m['pairs']} teacher pairs (+{m['heldout_pairs']} held out); "
         f"{m['eval_count']} samples per scoring seed {m['eval_seeds']}."),
        "",
        "Commands:",
        *[f"    {c}" for c in dict.fromkeys(m["commands"].values())],  # each distinct command once, in stage order
    ]
    return "\n".join(lines)


def _sid_targets(r: dict, t: dict, ok) -> str:
    """SiD-LSG's targets (issue 16): FD ≤ 1.00 × the teacher's (the paper's student beats its teacher), class accuracy
    within 2 points."""
    ratio = r["fd"] / t["fd"] if t["fd"] > 0 else float("inf")
    gap = (r["class_acc"] - t["class_acc"]) * 100
    p = r.get("plan", {})
    return (f"SiD-LSG (prompts only, κ1 {p.get('kappa1', float('nan')):g}, κ2=κ3 {p.get('kappa2', float('nan')):g}, κ4 {p.get('kappa4', float('nan')):g}): "
            f"FD ≤ 1.00 × teacher: {ratio:.2f}× → {ok(ratio <= 1.0)}; class accuracy within 2 points: {gap:+.2f} points → {ok(abs(gap) <= 2.0)}.")
