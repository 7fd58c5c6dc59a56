"""The proof-scale benchmark's rectified-flow rows (issue 17: InstaFlow, Liu et al., ICLR 2024), in the flow
convention of onestep/flow.py (σ the noise fraction, model time 1000·σ, velocity v = x − z). `run` is
proof_scale.pipeline's Run. Stages (run by name; `all` leaves them out):

  teacher-steps       the teacher at 1, 2 and 4 Euler steps (its row's CFG) on the scoring seeds: the few-step baseline
  distill-reflow_2rf  (distill.py) the teacher's UNet trained as a velocity model on the teacher's pairs, scored at 1, 2, 4
                      Euler steps x ← x + v/k from z (rows.FLOW_ROWS)
  pairs-2rf           pairs of the 2-RF's own Euler ODE (Scale.flow_pairs_steps steps, CFG 1) for the same seeds as the
                      teacher pairs, in the pack's dataset format, resumable as the pairs stage
  distill-instaflow   (distill.py) one step x0 = z + v(z, 1000) from reflow_2rf's selected weights, fitted to pairs-2rf
"""
from __future__ import annotations

import logging
import os
import time

import torch
from safetensors.torch import load_file

from onestep import flow
from onestep import format as gen_format
from onestep.euler import sample_euler
from onestep.pairs import collect as pair_collect
from onestep.pairs.manifest import PairSettings, prompts_hash
from onestep.pairs.shards import file_sha256
from onestep.pairs.validate import validate
from training.diffusers_unet import DiffusersUNet
from training.export import native_weights

from .checkpoint import digest
from .common import EVAL_SEEDS, LATENT_FORMAT, Incomplete, read_json
from .data import SIZE, empty_row, prompt_names
from .evaluator import score_seeds
from .rows import row_dir_name
from .sampler import class_labels, initial_noise, nfe, sample_teacher
from .stage_pairs import ProofScaleTeacher
from .teacher import build_unet, load_teacher

log = logging.getLogger("proof_scale")
FEW_STEPS = (1, 2, 4)  # the teacher's few-step baseline, the step counts the 2-RF is scored at
FLOW_SOURCE_ROW = "reflow_2rf"  # the row whose generator file pairs-2rf samples
FLOW_SCHEDULER = "simple"  # ComfyUI's scheduler that gives a flow MODEL flow.flow_sigmas(k) (k dividing 1000)


class _TableVelocity(torch.nn.Module):
    """v(x, τ | rows of the context table) of a diffusers velocity UNet."""

    def __init__(self, unet: torch.nn.Module, table: torch.Tensor):
        super().__init__()
        self.unet, self.table = unet, table

    def forward(self, x: torch.Tensor, tau: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        return self.unet(x, tau, encoder_hidden_states=self.table[rows].to(x.dtype)).sample


@torch.no_grad()
def sample_flow_from_noise(unet: torch.nn.Module, table: torch.Tensor, z: torch.Tensor, labels: torch.Tensor, steps: int, cfg: float = 1.0,
                           batch: int = 500, bf16: bool = True) -> torch.Tensor:
    """Latents [N, 1, 32, 32] (CPU) by `steps` Euler steps of the flow from noise z (onestep.flow: x ← x + v/k), with CFG
    on velocities against the empty prompt when cfg ≠ 1. On CUDA the UNet runs under bf16 autocast (the state stays float32)."""
    device = next(unet.parameters()).device
    denoiser = flow.FlowDenoiser(_TableVelocity(unet, table.to(device)))
    sigmas = flow.flow_sigmas(steps).to(device)
    out = []
    for i in range(0, len(labels), batch):
        rows = labels[i:i + batch].to(device)
        cond = {"rows": rows, "cfg": cfg, "uncond": {"rows": torch.full_like(rows, empty_row(table))}}
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16 and device.type == "cuda"):
            x = sample_euler(denoiser, z[i:i + batch].to(device).float(), sigmas, cond)
        out.append(x.float().cpu())
    return torch.cat(out)


def sample_flow(unet: torch.nn.Module, table: torch.Tensor, labels: torch.Tensor, steps: int, cfg: float, seed: int, batch: int) -> torch.Tensor:
    """`sample_flow_from_noise` from the scoring/validation noise stream initial_noise(N, seed)."""
    return sample_flow_from_noise(unet, table, initial_noise(len(labels), seed), labels, steps, cfg, batch)


def load_flow_unet(path: str, net, device: torch.device) -> torch.nn.Module:
    """The diffusers UNet of a flow generator file (a 2-RF's), in eval mode."""
    sd, meta = gen_format.load_generator(path)
    if meta.prediction != "flow":
        raise ValueError(f"{os.path.basename(path)} predicts {meta.prediction!r}, not a flow velocity")
    adapter = DiffusersUNet(build_unet(net), 1.0, 0.0)
    adapter.load_state_dict(native_weights(adapter, sd))
    return adapter.unet.to(device).eval()


class FlowTeacher(ProofScaleTeacher):
    """The pairs collector's teacher over a flow's Euler ODE (the 2-RF's), per-seed noise and prompts as the teacher pairs."""

    def sample(self, noise: torch.Tensor, prompt_indices: list[int], hint_indices: list[int] | None) -> torch.Tensor:
        labels = torch.tensor(prompt_indices, dtype=torch.long)
        return sample_flow_from_noise(self.unet, self.table, noise, labels, self.steps, self.cfg, self.batch)


def stage_teacher_steps(run) -> dict:
    """The teacher at FEW_STEPS Euler steps and its row's CFG, scored like the teacher row: the baseline reflow must beat."""
    s, t0 = run.scale, time.monotonic()
    ev = run.require("teacher-eval", "teacher_eval.json")
    unet, table, _, _ = load_teacher(run.path("teacher.safetensors"), run.device, run.args.compile_teacher)
    labels = class_labels(s.eval_count, empty_row(table))
    rows = {}
    for k in FEW_STEPS:
        start = time.monotonic()
        m = score_seeds(lambda seed: sample_teacher(unet, table, labels, k, ev["cfg"], seed, "euler", s.sample_batch), labels, run.reference(),
                        EVAL_SEEDS[: s.row_seeds])
        rows[f"teacher_{k}"] = {**m, "nfe": nfe(k, ev["cfg"]), "sample_seconds": time.monotonic() - start}
        log.info("teacher-steps: %d euler steps, CFG %g: fd %.4f", k, ev["cfg"], m["fd"])
    return run.record(run.path("teacher_steps.json"), {"rows": rows, "cfg": ev["cfg"], "steps": list(FEW_STEPS), "count": s.eval_count}, t0)


def stage_pairs_2rf(run) -> dict:
    """Pairs of the 2-RF's Euler ODE at CFG 1, seeds 0..N−1 as the teacher pairs (N: their count, or the run's --pairs
    when the 2-RF was carried in without them, so a call that only distils it need not make the teacher's); stops before
    a shard that would pass the deadline (exit 3, resumable)."""
    s, t0 = run.scale, time.monotonic()
    count = int(read_json(run.path("pairs.json"))["count"]) if os.path.isfile(run.path("pairs.json")) else s.pairs
    rf = run.require(f"distill-{FLOW_SOURCE_ROW}", os.path.join("distill", row_dir_name(FLOW_SOURCE_ROW), "result.json"))
    _, table, net, _ = load_teacher(run.path("teacher.safetensors"))
    source = rf.get("generator")
    if source and os.path.isfile(source):
        unet = load_flow_unet(source, net, run.device)
    else:  # a 2-RF carried from an earlier session (proof_scale.init_row): its selected weights, the file's source
        source = run.path("distill", row_dir_name(FLOW_SOURCE_ROW), "best.safetensors")
        unet = build_unet(net)
        unet.load_state_dict({k: v.float() for k, v in load_file(source).items()})
        unet = unet.to(run.device).eval()
    teacher = read_json(run.path("teacher.json"))
    prompts = prompt_names(empty_row(table), teacher.get("prompts"))
    settings = PairSettings(
        teacher=file_sha256(source), latent_format=LATENT_FORMAT, latent_shape=(1, SIZE, SIZE), sampler="euler",
        scheduler=FLOW_SCHEDULER, steps=s.flow_pairs_steps, cfg=1.0, negative="", prompts_sha256=prompts_hash(prompts), seed_start=0,
        count=count, batch_size=s.pairs_batch, shard_size=s.pairs_shard, text_encoder=digest({"context": table.cpu()}),
    )
    folder = run.path("pairs_2rf")
    info = {"teacher_name": f"proof_scale {FLOW_SOURCE_ROW} generator", "made_by": "proof_scale.pipeline pairs-2rf",
            "sampler": "onestep.flow Euler x ← x + v/k from the per-seed noise, CFG 1",
            "conditioning": "row i of the teacher's context table for prompt i; row 10 (the empty prompt) is the negative"}
    manifest = pair_collect.open_dataset(folder, settings, prompts, info)
    last = [time.monotonic()]

    def progress(done: int, total: int, latent: torch.Tensor) -> None:
        if done % s.pairs_shard and done != total:
            return
        now, shard_seconds = time.monotonic(), time.monotonic() - last[0]
        last[0] = now
        log.info("pairs-2rf: %d/%d this run, %.0f s", done, total, now - t0)
        if done < total and run.left() < 1.2 * shard_seconds:
            raise Incomplete(f"pairs-2rf: deadline reached with {done}/{total} pairs of this run written")

    log.info("pairs-2rf: %d pairs of %s at %d Euler steps, CFG 1 (%d shards to make)", settings.count, FLOW_SOURCE_ROW, settings.steps, len(manifest.missing()))
    pair_collect.collect(folder, manifest, FlowTeacher(unet, table, settings.steps, settings.cfg, "euler", s.pairs_batch), progress=progress)
    report = validate(folder)
    if not report.ok:
        raise ValueError("the 2-RF pairs dataset does not validate:\n" + report.text())
    return run.record(run.path("pairs_2rf.json"), {"folder": folder, "count": settings.count, "steps": settings.steps, "source": source,
                                                   "settings": settings.to_json()}, t0)
