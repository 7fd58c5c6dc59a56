"""The proof-scale distillation stage: one row (rows.py) trained through the pack's TrainingSession on the teacher's
pairs — or, for a prompts row (SiD-LSG), on the class prompts alone — with model selection on validation noise, then
exported as a generator file and scored.

Model selection: every `select_every` steps the EMA student makes `val_count` one-step samples from the validation
noise stream (common.VAL_SEED, never a scoring or pair seed) and its FD is measured; the best weights are kept in
`best.safetensors` (resumable), and the export is of those. The same points record the student's latent MSE to the
teacher on held-out pairs (seeds after the training pairs') and on as many training pairs: a gap between the two
is over-fitting. The row is scored on the scale's row_seeds scoring noise streams (common.EVAL_SEEDS).
A flow row (rows.FLOW_ROWS, proof_scale/flow.py) trains on the pairs folder its plan names, selects on
`select_steps`-step Euler samples of the flow and is scored at each of its `score_steps` (the last is its row).
"""
from __future__ import annotations

import logging
import os
import time

import torch
from safetensors.torch import load_file, save_file

from onestep import format as gen_format
from onestep.atomic import atomic_write, file_sha256
from onestep.latent_lpips import ELatentLPIPS
from onestep.latent_lpips import weights as lpips_weights
from onestep.latent_lpips.datasets import save_labelled
from onestep.pairs import PairDataset
from onestep.parameterization import OneStepGenerator
from onestep.precision import keep_output_float32
from onestep.unet_keys import diffusers_to_ldm
from training.device_data import DevicePairs
from training.diffusers_unet import DiffusersUNet
from training.prompts import PromptDataset
from training.session import TrainingSession

from . import carried_state, rows
from .common import EVAL_SEEDS, LATENT_FORMAT, VAL_SEED, Incomplete, peak_memory, read_json, sync, write_json
from .data import empty_row, load_split
from .evaluator import score, score_seeds
from .flow import sample_flow
from .sampler import class_labels, initial_noise, nfe
from .teacher import build_unet, ldm_unet_config, load_teacher

log = logging.getLogger("proof_scale")


def one_step(student: torch.nn.Module, spec) -> OneStepGenerator:
    """The one-step generator of a diffusers student, its last layer in float32 (onestep/precision.py)."""
    keep_output_float32(student.conv_out)
    return OneStepGenerator(DiffusersUNet(student, 1.0, 0.0), spec).eval()


@torch.no_grad()
def sample_one_step(generator: OneStepGenerator, table: torch.Tensor, labels: torch.Tensor, seed: int, batch: int,
                    bf16: bool = True) -> torch.Tensor:
    """One-step latents [N, 1, 32, 32] (CPU) from the noise stream initial_noise(N, seed); on CUDA under bf16 autocast
    (as the pipeline scores) unless bf16=False."""
    device = next(generator.parameters()).device
    z = initial_noise(len(labels), seed)
    table = table.to(device)
    out = []
    for i in range(0, len(labels), batch):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16 and device.type == "cuda"):
            x = generator(z[i:i + batch].to(device), table[labels[i:i + batch].to(device)])
        out.append(x.float().cpu())
    return torch.cat(out)


class Selection:
    """Validation FD and held-out/train MSE of the EMA student every few steps; keeps the best weights on disk."""

    def __init__(self, run_dir: str, net, spec, table: torch.Tensor, reference, device: torch.device, val_count: int, batch: int,
                 heldout: PairDataset | None, train: PairDataset | None, flow_steps: int = 0, flow_cfg: float = 1.0):
        self.path, self.best_path = os.path.join(run_dir, "selection.json"), os.path.join(run_dir, "best.safetensors")
        self.state = read_json(self.path) if os.path.isfile(self.path) else {"points": [], "best": None}
        self.student = build_unet(net).to(device)
        self.generator = one_step(self.student, spec)
        self.table, self.reference, self.batch = table, reference, batch
        self.flow_steps, self.flow_cfg = flow_steps, flow_cfg  # a flow row: selected on k-step Euler samples (0: one step)
        self.labels = class_labels(val_count, empty_row(table))
        n = min(val_count, len(heldout)) if heldout is not None else 0
        self.heldout = DevicePairs(heldout, device).batch(list(range(n))) if n else None
        self.train = DevicePairs(train, device).batch(list(range(n))) if n else None

    def forget_after(self, step: int) -> None:
        """Drop points past `step` (a resume from an earlier checkpoint recomputes them)."""
        self.state["points"] = [p for p in self.state["points"] if p["step"] <= step]
        if self.state["best"] and self.state["best"]["step"] > step:
            best = min(self.state["points"], key=lambda p: p["fd"], default=None)
            self.state["best"] = best

    @torch.no_grad()
    def _mse(self, pairs: dict) -> float:
        out = []
        for i in range(0, len(pairs["noise"]), self.batch):
            with torch.autocast(pairs["noise"].device.type, dtype=torch.bfloat16, enabled=pairs["noise"].is_cuda):
                x = self.generator(pairs["noise"][i:i + self.batch], pairs["context"][i:i + self.batch])
            out.append((x.float() - pairs["latent"][i:i + self.batch]).pow(2).mean(dim=(1, 2, 3)))
        return torch.cat(out).mean().item()

    def evaluate(self, step: int, weights: dict[str, torch.Tensor], ema: float | None = None) -> dict:
        """Score `weights` (the adapter's native EMA state dict; `ema`: their average's decay when the row keeps more
        than one, TrainConfig.ema_extra) at `step`; saves them when they are the best so far."""
        self.student.load_state_dict({k[len("unet."):]: v for k, v in weights.items()})
        self.student.eval()
        if self.flow_steps:
            x = sample_flow(self.student, self.table, self.labels, self.flow_steps, self.flow_cfg, VAL_SEED, self.batch)
        else:
            x = sample_one_step(self.generator, self.table, self.labels, VAL_SEED, self.batch)
        point = {"step": step, **({"ema": ema} if ema is not None else {}), **score(x, self.labels, self.reference)}
        if self.heldout is not None:
            point["heldout_mse"], point["train_mse"] = self._mse(self.heldout), self._mse(self.train)
        self.state["points"].append(point)
        if self.state["best"] is None or point["fd"] < self.state["best"]["fd"]:
            self.state["best"] = point
            sd = {k: v.detach().float().cpu().contiguous() for k, v in self.student.state_dict().items()}
            atomic_write(self.best_path, lambda tmp: save_file(sd, tmp, metadata={"step": str(step)}))
        write_json(self.path, self.state)
        return point

    def best_weights(self) -> tuple[int, dict[str, torch.Tensor]] | None:
        """(step, diffusers state dict) of the best point, or None before the first."""
        if self.state["best"] is None or not os.path.isfile(self.best_path):
            return None
        return self.state["best"]["step"], load_file(self.best_path)


def _start_from(run, plan: dict, session) -> dict | None:
    """A row with `init_from` starts G from that finished row's selected weights (before its first step only; a
    resumed run has them in its checkpoint already). Returns what it started from, for the record."""
    base = plan.get("init_from")
    if not base:
        return None
    folder = run.path("distill", rows.row_dir_name(base))
    result = os.path.join(folder, "result.json")
    if not os.path.isfile(result):
        raise FileNotFoundError(f"row {plan['row']} starts from row {base}, which has not finished ({result} is missing): run distill-{base} first")
    info = read_json(result)
    start = {"row": base, "step": info["row"]["selected_step"], "training_samples": info["row"]["training_samples"]}
    if session.step == 0:
        best = os.path.join(folder, "best.safetensors")
        if os.path.isfile(os.path.join(folder, carried_state.G_FILE)):  # a carried state: G and ψ as deltas from the teacher
            teacher = carried_state.teacher_weights(run.path("teacher.safetensors"))
            g, _ = carried_state.read(os.path.join(folder, carried_state.G_FILE))
            session.trainer.start_generator_from({f"unet.{k}": v for k, v in carried_state.dequantize(g, teacher).items()})
            for name, weights in carried_state.carried_networks(folder, teacher).items():
                session.trainer.start_network_from(name, weights)
                log.info("distill-%s: %s starts from row %s's carried state", plan["row"], name, base)
        elif not os.path.isfile(best):
            raise FileNotFoundError(f"row {base} kept no selected weights ({best}; rows keep them when select_every > 0)")
        else:
            session.trainer.start_generator_from({f"unet.{k}": v for k, v in load_file(best).items()})
        log.info("distill-%s: G starts from row %s at its step %d (%d samples)", plan["row"], base, start["step"], start["training_samples"])
    return start


def class_prompts(table: torch.Tensor, batch: int) -> PromptDataset:
    """A prompts row's data: the context table's class rows cycled to the fewest whole rounds that fill a batch (each
    class equally often), its empty row for CFG; the noise is drawn per step by the method."""
    classes = empty_row(table)
    labels = torch.arange(-(-batch // classes) * classes) % classes
    return PromptDataset(table[labels].float().cpu(), {"context": table[classes].float().cpu()}, prompt_index=labels)


def real_images_file(run, limit: int | None = None) -> str:
    """The training split (its first `limit` items when given) as a real-images file of the work folder (class label =
    prompt index), written once: what D calls real in a row with d_real=images. The test split stays the scoring
    reference only."""
    limits = [n for n in (run.scale.train_limit, limit) if n is not None]
    n = min(limits) if limits else None
    path = run.path("real_images.safetensors" if n is None else f"real_images_{n}.safetensors")
    if not os.path.isfile(path):
        latents, labels = load_split("train", n, run.data)
        if n is not None and len(labels) < n:
            raise ValueError(f"d_real_limit={n}: the data folder's training split has {len(labels)} images only")
        save_labelled(path, latents, labels)
        log.info("real images for D: %d training images of %d classes → %s", len(labels), int(labels.max()) + 1, path)
    return path


def set_tf32(plan: dict, device: torch.device) -> None:
    """On a GPU, TF32 in matmuls and convolutions as the row's precision (rows.PRECISIONS) asks: off for fp32, else on
    (the pipeline's setting) — set for every row, so a later row in the same process does not inherit an fp32 row's."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = plan.get("precision") != "fp32"


def stage_distill(run, row: str) -> dict:
    """Train (or resume) one row, select, export and score it; `run` is proof_scale.pipeline's Run."""
    s, t0 = run.scale, time.monotonic()
    prompts_row = rows.is_prompts_row(row)  # SiD-LSG: the class prompts and random noise, κ from the teacher row's CFG
    teacher_cfg = float(run.require("teacher-eval", "teacher_eval.json")["cfg"]) if prompts_row else None
    run_dir = run.path("distill", rows.row_dir_name(row))
    plan = rows.plan(row, run.row_defaults(), teacher_cfg)
    # the pairs folder: the teacher's (also an anchored SiD row's), or a flow row's (rows.FLOW_ROWS)
    data = rows.data_folder(row, plan)
    if data:
        run.require(data.replace("_", "-"), f"{data}.json")
    plan_path = os.path.join(run_dir, "plan.json")
    if os.path.isfile(plan_path):
        old = read_json(plan_path)
        diff = [f"{k}: {old.get(k)!r} → {v!r}" for k, v in plan.items() if old.get(k) != v]
        if diff:
            raise ValueError(f"row {row} was started with other settings ({'; '.join(diff)}); use the same options, or delete {run_dir} to restart it")
    else:
        os.makedirs(run_dir, exist_ok=True)
        write_json(plan_path, plan)
    unet, table, net, _ = load_teacher(run.path("teacher.safetensors"))  # a fresh copy of the teacher: the trainer changes it in place
    elpips, lpips_info = None, None
    if plan.get("regression", "mse") != "mse":
        run.require("latent-lpips", "latent_lpips.json")
        lp, enc, lpips_info = lpips_weights.load(run.path("latent_lpips.safetensors"))
        elpips = ELatentLPIPS(lp, enc)
    reals = real_images_file(run, plan.get("d_real_limit")) if plan.get("d_real") == "images" else ""
    speed = run.speed  # this call's speed settings (pipeline --speed): not part of the row's plan
    config = rows.train_config(rows.with_speed(plan, speed), run.device.type == "cuda", s.save_every, reals)
    set_tf32(plan, run.device)
    if speed:
        log.info("distill-%s: this call's speed settings: %s", row, ", ".join(f"{k}={v}" for k, v in speed.items()))
    dataset = run.path(data) if data else class_prompts(table, plan["batch"])
    session = TrainingSession(DiffusersUNet(unet, latent_scale=1.0, latent_shift=0.0), config, dataset, run_dir, elpips, run.device, resume=True)
    heldout = PairDataset(run.path("pairs_heldout")) if data == "pairs" and os.path.isdir(run.path("pairs_heldout")) else None
    flow_steps = plan["select_steps"] if rows.is_flow_row(row) and plan["select_steps"] > 1 else 0
    selection = Selection(run_dir, net, config.generator.spec, table, run.reference(), run.device, s.val_count, s.sample_batch, heldout,
                          session.dataset if data else None, flow_steps, plan.get("sample_cfg", 1.0))
    selection.forget_after(session.step)
    started_from = _start_from(run, plan, session)
    timing_path = os.path.join(run_dir, "timing.json")
    timing = read_json(timing_path) if os.path.isfile(timing_path) else {"train_seconds": 0.0, "steps": 0}
    steps, stopped_at = plan["steps"], None
    averages = [plan["ema_decay"], *plan["ema_select"]] if plan.get("ema_select") else [None]
    if session.step < steps:
        what = (f"SiD-LSG κ1 {plan['kappa1']:g} κ2=κ3 {plan['kappa2']:g} κ4 {plan['kappa4']:g} α {plan['alpha']:g}"
                    + (f" + {plan.get('regression', 'mse')} anchor {plan['anchor']:g}" if data else "") if prompts_row
                else plan["regression"] + (" + GAN" if plan["gan"] else ""))
        log.info("distill-%s: %s, %d steps at batch %d, lr %g, from step %d on %d %s (%s)", row, what, steps, plan["batch"], plan["lr"], session.step,
                 len(session.dataset), "pairs" if data else "class prompts", run.device)
        first, start, paused = session.step, time.monotonic(), [0.0]

        def on_step(step: int, logs: dict) -> bool:
            if s.select_every and (step % s.select_every == 0 or step == steps):
                t = time.monotonic()
                for decay in averages:  # the main EMA (None), or each decay the row keeps (plan ema_select)
                    p = selection.evaluate(step, session.trainer.generator_state_dict(ema=True if decay is None else decay, layout="native"), decay)
                    log.info("distill-%s: step %d val fd %.3f%s%s", row, step, p["fd"], f" (EMA {decay:g})" if decay is not None else "",
                             f", held-out mse {p['heldout_mse']:.5f} / train mse {p['train_mse']:.5f}" if "heldout_mse" in p else "")
                paused[0] += time.monotonic() - t
            if step % s.log_every == 0 or step == steps:
                el = time.monotonic() - start
                per = (el - paused[0]) / max(1, step - first)
                terms = ", ".join(f"{k} {v:.4g}" for k, v in sorted(logs.items()) if not k.startswith("grad_norm"))
                log.info("distill-%s: step %d/%d %s | %.1f ms/step, %.0f s, ETA %.0f s", row, step, steps, terms, 1000 * per, el, per * (steps - step))
            return step < steps and time.monotonic() > run.deadline

        result = session.run(steps, on_step)
        sync(run.device)
        timing = {"train_seconds": timing["train_seconds"] + time.monotonic() - start - paused[0], "steps": result.step,
                  **peak_memory(run.device, timing)}
        write_json(timing_path, timing)
        if "peak_reserved_gib" in timing:
            log.info("distill-%s: peak GPU memory %.1f GiB allocated, %.1f GiB reserved", row, timing["peak_allocated_gib"],
                     timing["peak_reserved_gib"])
        if result.stopped:
            if not run.args.finish_at_deadline:
                raise Incomplete(f"distill-{row}: deadline reached at step {result.step}/{steps} (checkpoint in {run_dir})")
            stopped_at = result.step
            log.info("distill-%s: deadline reached at step %d/%d: scored as it stands (--finish-at-deadline)", row, result.step, steps)
    chosen = selection.best_weights()
    if chosen is None:  # no selection points (select_every 0): the final EMA
        chosen = session.step, {k[len("unet."):]: v for k, v in session.trainer.generator_state_dict(ema=True, layout="native").items()}
    chosen_step, weights = chosen
    # the average it was chosen among several (plan ema_select); none for a row that keeps one
    picked = {"selected_ema": selection.state["best"]["ema"]} if "ema" in (selection.state["best"] or {}) else {}
    gen_path = run.path("generators", f"{rows.row_dir_name(row)}.safetensors")
    trained_on = f"{session.dataset.settings.count} teacher pairs" if data else f"{len(session.dataset)} class prompts, no pairs"
    session.export(gen_path, "custom", LATENT_FORMAT, unet_config=ldm_unet_config(net), weights=diffusers_to_ldm(weights), training_steps=chosen_step,
                   teacher_hash=file_sha256(run.path("teacher.safetensors"))[:16] if prompts_row else None,
                   source=f"proof_scale row {row}: {config.method} on {trained_on}",
                   notes={"proof_scale_row": row, "plan": plan, "latent_lpips": lpips_info or {}, "selected_step": chosen_step,
                          **picked,
                          "selected_by": f"FD on {s.val_count} samples of noise seed {VAL_SEED}"})
    session = unet = None  # the trainer and its copy of the teacher are freed before scoring
    student = build_unet(net)
    student.load_state_dict(weights)
    file_sd, _ = gen_format.load_generator(gen_path)
    mine = diffusers_to_ldm(student.state_dict())
    if set(file_sd) != set(mine) or any(not torch.equal(file_sd[k], mine[k].float()) for k in mine):
        raise ValueError(f"{gen_path} does not hold the weights being scored")
    generator = one_step(student.to(run.device), config.generator.spec)
    labels = class_labels(s.eval_count, empty_row(table))
    sample_one_step(generator, table, labels[: s.sample_batch], EVAL_SEEDS[0], s.sample_batch)  # warm-up
    by_steps = {}
    for k in plan.get("score_steps", [1]):  # a flow row: x ← x + v/k from the same noise; others: the one-step generator
        cfg = plan.get("sample_cfg", 1.0)
        sample = ((lambda seed: sample_one_step(generator, table, labels, seed, s.sample_batch)) if k == 1 and cfg == 1.0 else
                  (lambda seed, k=k: sample_flow(student, table, labels, k, cfg, seed, s.sample_batch)))
        metrics = score_seeds(sample, labels, run.reference(), EVAL_SEEDS[: s.row_seeds])
        by_steps[k] = {**metrics, "nfe": nfe(k, cfg)}
    row_metrics = {**by_steps[k], "training_samples": chosen_step * plan["batch"], "train_seconds": timing["train_seconds"],
                   "selected_step": chosen_step, "steps": plan["steps"], **picked}
    if stopped_at is not None:  # ended by the deadline before plan["steps"]
        row_metrics["stopped_at"] = stopped_at
    if "score_steps" in plan:
        row_metrics["by_steps"] = {str(n): m for n, m in by_steps.items()}
    if started_from:  # the samples of the row it started from count too
        row_metrics["started_from"] = started_from
        row_metrics["training_samples"] += started_from["training_samples"]
    log.info("distill-%s: row %s", row, {k: round(v, 4) if isinstance(v, float) else v for k, v in row_metrics.items()})
    return run.record(os.path.join(run_dir, "result.json"), {"row": row_metrics, "plan": plan, "generator": gen_path,
                                                             "selection": selection.state["points"], "count": s.eval_count}, t0)
