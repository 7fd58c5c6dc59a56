"""The proof-scale pairs stage: teacher pairs in the pack's dataset format (onestep/pairs) at the teacher row's setting,
on one or several GPUs (rank r makes shards k ≡ r mod N), plus the held-out pairs. `run` is proof_scale.pipeline's Run."""
from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import replace

import torch

from onestep import compile_cache
from onestep.pairs import collect as pair_collect
from onestep.pairs.manifest import Manifest, PairSettings, prompts_hash
from onestep.pairs.shards import file_sha256
from onestep.pairs.validate import validate

from .checkpoint import digest
from .common import EVAL_SEEDS, LATENT_FORMAT, SCHEDULER, Incomplete, read_json, write_json
from .data import SIZE, empty_row, prompt_names
from .evaluator import score_seeds
from .sampler import class_labels, nfe, sample_teacher, sample_teacher_from_noise, seed_noise
from .teacher import load_teacher

log = logging.getLogger("proof_scale")


class _OutOfTime(Exception):
    """A pairs worker's next shard would pass the deadline."""


class ProofScaleTeacher:
    """onestep.pairs.collect's Teacher over proof_scale's sampler: per-seed noise as ComfyUI makes it, the context
    table's rows as conditioning (prompt i → row i, the negative/empty prompt → row 10), teacher latents = samples."""

    def __init__(self, unet: torch.nn.Module, table: torch.Tensor, steps: int, cfg: float, sampler: str = "euler", batch: int = 1000):
        self.unet, self.table, self.steps, self.cfg, self.sampler, self.batch = unet, table, steps, cfg, sampler, batch
        self.graphs: list = []  # the graphed denoiser of the first batch, replayed by the next ones (sampler.graphed_denoiser)

    def noise(self, seed: int) -> torch.Tensor:
        return seed_noise(seed)

    def conditioning(self, prompt_index: int) -> dict[str, torch.Tensor]:
        row = empty_row(self.table) if prompt_index < 0 else prompt_index
        return {"cond": self.table[row][None].float().cpu()}

    def sample(self, noise: torch.Tensor, prompt_indices: list[int], hint_indices: list[int] | None) -> torch.Tensor:
        labels = torch.tensor(prompt_indices, dtype=torch.long)
        return sample_teacher_from_noise(self.unet, self.table, noise, labels, self.steps, self.cfg, self.sampler, self.batch,
                                         graph_cache=self.graphs)


def _pair_devices(run) -> list[torch.device]:
    """The devices the pairs stage collects on, one process each (ranks take shards k ≡ r mod N): every visible GPU
    by default; --pairs-devices N caps that (on the CPU it runs N processes, which tests the multi-rank path)."""
    n = run.args.pairs_devices
    if run.device.type != "cuda":
        return [run.device] * max(1, n or 1)
    n = torch.cuda.device_count() if n is None else max(1, min(n, torch.cuda.device_count()))
    return [torch.device("cuda", r) for r in range(n)] if n > 1 else [run.device]


def _collect_rank(
    rank: int, devices: list[str], folder: str, teacher_path: str, settings: PairSettings, batch: int, deadline: float, compile_mode: str = "",
    compile_folder: str = "",
) -> None:
    """One rank of a multi-device pairs collection (a torch.multiprocessing.spawn worker): its shards on devices[rank],
    shard files only (the parent adopts them into the manifest); stops before a shard that would pass the deadline
    (time.monotonic is system-wide, so the parent's deadline holds here)."""
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s [pairs rank {rank}] %(message)s", datefmt="%H:%M:%S", stream=sys.stdout)
    world = len(devices)
    if devices[rank] == "cpu":
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))  # the ranks share the cores
    else:  # CUDA-graph capture streams are made on the current device: it must be this rank's
        torch.cuda.set_device(torch.device(devices[rank]))
    compile_cache.set_folder(compile_folder or None)  # a spawned process: the parent's setting is not inherited
    unet, table, _, _ = load_teacher(teacher_path, torch.device(devices[rank]), compile_mode)
    manifest = Manifest.load(folder)  # made and reconciled by the parent: no reconcile here (it would remove other ranks' temp files)
    last = [time.monotonic()]

    def progress(done: int, total: int, latent: torch.Tensor) -> None:
        if done % settings.shard_size and done != total:
            return
        now, shard_seconds = time.monotonic(), time.monotonic() - last[0]
        last[0] = now
        if done < total and deadline - now < 1.2 * shard_seconds:
            raise _OutOfTime

    try:
        pair_collect.collect(folder, manifest, ProofScaleTeacher(unet, table, settings.steps, settings.cfg, settings.sampler, batch),
                             rank=rank, world=world, progress=progress, write_manifest=False)
    except _OutOfTime:
        log.info("pairs rank %d: deadline reached; the shards written are kept", rank)
    finally:
        compile_cache.save_all()


def stage_pairs(run) -> dict:
    s, t0 = run.scale, time.monotonic()
    run.require("teacher", "teacher.json")
    ev = run.require("teacher-eval", "teacher_eval.json")
    teacher_path = run.path("teacher.safetensors")
    devices = _pair_devices(run)
    unet, table, _, _ = load_teacher(teacher_path, devices[0], run.args.compile_teacher)
    prompts = prompt_names(empty_row(table), run.require("teacher", "teacher.json").get("prompts"))
    settings = PairSettings(
        teacher=file_sha256(teacher_path), latent_format=LATENT_FORMAT, latent_shape=(1, SIZE, SIZE), sampler=s.pairs_sampler or ev["sampler"],
        scheduler=SCHEDULER, steps=s.pairs_steps or int(ev["steps"]), cfg=float(ev["cfg"]), negative="", prompts_sha256=prompts_hash(prompts),
        seed_start=0, count=s.pairs, batch_size=s.pairs_batch, shard_size=s.pairs_shard, text_encoder=digest({"context": table.cpu()}),
    )
    folder = run.path("pairs")
    info = {"teacher_name": "proof_scale teacher.safetensors", "made_by": "proof_scale.pipeline",
            "noise": "per seed: torch.manual_seed(seed); torch.randn([1, 1, 32, 32]) (ComfyUI prepare_noise)",
            "conditioning": "row i of the teacher's context table for prompt i; row 10 (the empty prompt) is the negative"}
    manifest = pair_collect.open_dataset(folder, settings, prompts, info)
    timing_path = run.path("pairs_timing.json")
    timing = read_json(timing_path) if os.path.isfile(timing_path) else {"items": 0, "seconds": 0.0}
    todo = sum(len(settings.shard_items(k)) for k in manifest.missing())
    log.info("pairs: %d of %d pairs to make (%s, %d steps, CFG %g, batch %d, %d per shard) on %d device(s)", todo, s.pairs, settings.sampler,
             settings.steps, settings.cfg, s.pairs_batch, s.pairs_shard, len(devices))
    start, last = time.monotonic(), [time.monotonic(), 0]
    if len(devices) > 1 and todo:
        del unet
        rank_args = ([str(d) for d in devices], folder, teacher_path, settings, s.pairs_batch, run.deadline, run.args.compile_teacher,
                     run.args.compile_cache)
        torch.multiprocessing.spawn(_collect_rank, args=rank_args, nprocs=len(devices))
        manifest = pair_collect.open_dataset(folder, settings, prompts, info)  # adopts the ranks' shards (checked in full)
        manifest.save(folder)
        made = todo - sum(len(settings.shard_items(k)) for k in manifest.missing())
        timing["items"] += made
        timing["seconds"] += time.monotonic() - start
        write_json(timing_path, timing)
        log.info("pairs: %d pairs made by %d processes in %.0f s", made, len(devices), time.monotonic() - start)
        if manifest.missing():
            raise Incomplete(f"pairs: deadline reached with {len(manifest.shards)}/{settings.num_shards} shards written")
    else:
        def progress(done: int, total: int, latent: torch.Tensor) -> None:
            if done % s.pairs_shard and done != total:
                return  # mid-shard: only whole shards count (and only they may be interrupted)
            now = time.monotonic()
            shard_seconds = now - last[0]
            timing["items"] += done - last[1]
            timing["seconds"] += shard_seconds
            last[0], last[1] = now, done
            write_json(timing_path, timing)
            log.info("pairs: %d/%d this run, %.1f pairs/s, %.0f s", done, total, timing["items"] / max(timing["seconds"], 1e-9), now - start)
            if done < total and run.left() < 1.2 * shard_seconds:  # the next shard would not finish in time
                raise _OutOfTime

        try:
            pair_collect.collect(folder, manifest, ProofScaleTeacher(unet, table, settings.steps, settings.cfg, settings.sampler, s.pairs_batch), progress=progress)
        except _OutOfTime:
            raise Incomplete(f"pairs: deadline reached with {len(manifest.shards)}/{settings.num_shards} shards written") from None
    report = validate(folder)
    if not report.ok:
        raise ValueError("the pairs dataset does not validate:\n" + report.text())
    log.info("pairs: %s", report.text().replace("\n", " | "))
    if s.heldout:  # the seeds after the training pairs': never trained on, they show over-fitting (distill.Selection)
        held = replace(settings, seed_start=s.pairs, count=s.heldout, shard_size=s.heldout)
        manifest = pair_collect.open_dataset(run.path("pairs_heldout"), held, prompts, {**info, "held_out": "never trained on"})
        if manifest.missing():
            unet, table, _, _ = load_teacher(teacher_path, devices[0], run.args.compile_teacher)
            pair_collect.collect(run.path("pairs_heldout"), manifest, ProofScaleTeacher(unet, table, held.steps, held.cfg, held.sampler, s.pairs_batch))
    extra = {"compile_teacher": run.args.compile_teacher} if run.args.compile_teacher else {}
    if (settings.sampler, settings.steps) != (ev["sampler"], int(ev["steps"])):
        per_item = timing["seconds"] * len(devices) / max(timing["items"], 1)  # one device's seconds per sample at this setting
        extra["teacher_at_pairs_setting"] = _teacher_at(run, teacher_path, devices[0], settings, per_item)
    return run.record(run.path("pairs.json"), {
        "folder": folder, "count": s.pairs, "heldout": s.heldout, "shards": settings.num_shards, "settings": settings.to_json(), "devices": len(devices),
        "collect_seconds": timing["seconds"], "pairs_per_second": timing["items"] / max(timing["seconds"], 1e-9), **extra,
    }, t0)


def _teacher_at(run, teacher_path: str, device: torch.device, settings: PairSettings, seconds_per_item: float) -> dict:
    """The teacher scored like its row (row_seeds noise streams) at the pairs' solver and steps, which differ from the
    row's: the students learn these samples, so how far they are from the row's is part of the record."""
    s = run.scale
    if run.left() < 1.2 * seconds_per_item * s.eval_count * s.row_seeds + 10:  # the pairs are kept: the next run scores
        raise Incomplete("pairs: made, but too little time left to score the teacher at the pairs' setting")
    unet, table, _, _ = load_teacher(teacher_path, device)
    labels = class_labels(s.eval_count, empty_row(table))
    sample = lambda seed: sample_teacher(unet, table, labels, settings.steps, settings.cfg, seed, settings.sampler, s.sample_batch)
    row = {**score_seeds(sample, labels, run.reference(), EVAL_SEEDS[: s.row_seeds]), "nfe": nfe(settings.steps, settings.cfg, settings.sampler), "sampler": settings.sampler, "steps": settings.steps}
    log.info("pairs: the teacher at the pairs' setting (%s, %d steps, CFG %g): fd %.4f (row seeds %s)", settings.sampler, settings.steps,
             settings.cfg, row["fd"], EVAL_SEEDS[: s.row_seeds])
    return row
