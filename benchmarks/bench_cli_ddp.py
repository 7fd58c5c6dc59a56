"""GPU benchmark: the headless trainer itself (`python -m training.cli train`) on one GPU and under torchrun on N
GPUs (issue 5): throughput scaling, and whether N GPUs give the weights that gradient accumulation gives on one.

It builds its inputs in --work: an SD1.5-architecture diffusers UNet2DConditionModel folder (random weights), random
full-width E-LatentLPIPS weights and a synthetic teacher-pairs dataset (64×64 latents, 77×768 contexts). Then three
runs of the same CLI command, each writing a generator file and a --stats JSON:
  1gpu        one process, global batch = per-GPU batch                    (the per-GPU baseline)
  1gpu-accum  one process, global batch = N × per-GPU batch, N accumulation micro-batches
  Ngpu        torchrun --nproc_per_node N, global batch = N × per-GPU batch
scaling = images/s of Ngpu ÷ images/s of 1gpu; equivalence = ‖W_Ngpu − W_accum‖ / ‖W_accum − W_teacher‖ over the
generators' weights (0 = identical; bf16 autocast and all-reduce order make it small, not 0). --repeat-accum runs
1gpu-accum a second time: the same measure between two identical runs is the GPU's own run-to-run floor
(non-deterministic kernels), against which the N-GPU difference is read.

Usage (from the repo root; diffusers importable):
    python -m benchmarks.bench_cli_ddp --work /dev/shm/cli --gpus 2 [--steps 40] [--per-gpu-batch 2] [--repeat-accum] [--out f.json] [-- extra CLI flags]
    python -m benchmarks.bench_cli_ddp --work /tmp/cli --tiny --gpus 2      # CPU check: tiny UNet, gloo
Default CLI flags: --low-memory --bf16 --warmup-steps 0 (full fine-tune, GAN from step 0), as docs/benchmarks.md's rows.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch
from safetensors import safe_open

from onestep.latent_lpips import LatentLPIPS, get_encoder
from onestep.latent_lpips import weights as lpips_weights
from onestep.pairs import PairSettings
from onestep.pairs.collect import collect, open_dataset
from onestep.pairs.manifest import prompts_hash

SD15 = dict(block_out_channels=(320, 640, 1280, 1280), layers_per_block=2, cross_attention_dim=768, attention_head_dim=8, sample_size=64)
TINY = dict(block_out_channels=(32, 64), down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), layers_per_block=1, cross_attention_dim=768, attention_head_dim=8, sample_size=8)
PROMPTS = [f"prompt {i}" for i in range(16)]


class SyntheticTeacher:
    """A fixed stand-in for the teacher's sampler (the speed does not depend on what the pairs show)."""

    def __init__(self, size: int):
        self.size = size

    def noise(self, seed):
        return torch.randn([1, 4, self.size, self.size], generator=torch.Generator().manual_seed(seed))

    def conditioning(self, j):
        return {"cond": torch.randn([1, 77, 768], generator=torch.Generator().manual_seed(1000 + j))}

    def sample(self, noise, prompt_indices, hint_indices):
        return 4.0 * torch.tanh(0.5 * noise + torch.tensor([j / 8 for j in prompt_indices]).view(-1, 1, 1, 1))


def build_inputs(work: str, tiny: bool, items: int) -> dict[str, str]:
    """Teacher folder, E-LatentLPIPS weights and pairs dataset under `work` (reused when present)."""
    from diffusers import UNet2DConditionModel

    os.makedirs(work, exist_ok=True)
    paths = {"teacher": os.path.join(work, "teacher"), "lpips": os.path.join(work, "elatentlpips.safetensors"), "pairs": os.path.join(work, "pairs")}
    if not os.path.exists(os.path.join(paths["teacher"], "config.json")):
        torch.manual_seed(0)
        UNet2DConditionModel(**(TINY if tiny else SD15)).save_pretrained(paths["teacher"])
    if not os.path.exists(paths["lpips"]):
        torch.manual_seed(0)
        lpips_weights.save(paths["lpips"], LatentLPIPS(in_channels=4, width=1 / 8 if tiny else 1.0), get_encoder("sd15"), heads="random",
                           source="benchmarks.bench_cli_ddp (random weights)")
    size = 16 if tiny else 64
    s = PairSettings(teacher="b" * 64, latent_format="SD15", latent_shape=(4, size, size), sampler="euler", scheduler="normal", steps=1,
                     cfg=1.0, negative="", prompts_sha256=prompts_hash(PROMPTS), seed_start=0, count=items, batch_size=16, shard_size=64)
    collect(paths["pairs"], open_dataset(paths["pairs"], s, PROMPTS), SyntheticTeacher(size))
    return paths


def run_cli(name: str, work: str, paths: dict, world: int, batch: int, accumulation: int, steps: int, extra: list[str], tiny: bool) -> dict:
    """One CLI run; its --stats JSON plus the wall time and the generator file's path."""
    out, stats = os.path.join(work, f"{name}.safetensors"), os.path.join(work, f"{name}.stats.json")
    args = ["train", "--pairs", paths["pairs"], "--teacher", paths["teacher"], "--latent-lpips", paths["lpips"], "--out", out,
            "--steps", str(steps), "--batch-size", str(batch), "--grad-accumulation", str(accumulation), "--stats", stats,
            "--num-workers", "2", "--log-every", "10", *extra]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(world)] if world > 1 else [sys.executable]
    cmd = [*launcher, "-m", "training.cli", *args]
    env = dict(os.environ)
    if tiny:
        env["CUDA_VISIBLE_DEVICES"] = ""
    print(f"[bench] {name}: {' '.join(cmd)}", flush=True)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env)
    with open(stats) as f:
        result = json.load(f)
    return {"run": name, "command": " ".join(cmd), "wall_s": round(time.perf_counter() - t0, 1), "generator": out, **{k: v for k, v in result.items() if k != "config"},
            "grad_accumulation": accumulation, "config": result["config"]}


def _weights(path: str) -> dict[str, torch.Tensor]:
    with safe_open(path, "pt") as f:
        return {k: f.get_tensor(k).float() for k in f.keys()}  # noqa: SIM118


def teacher_weights(folder: str) -> dict[str, torch.Tensor]:
    """The teacher's weights in the generator file's layout (where the runs started)."""
    from diffusers import UNet2DConditionModel

    from onestep.latent_spaces import latent_space
    from training.diffusers_unet import DiffusersUNet
    unet = DiffusersUNet(UNet2DConditionModel.from_pretrained(folder), latent_scale=latent_space("SD15").scale)
    return {k: v.float() for k, v in unet.export_state_dict(dict(unet.state_dict())).items()}


def equivalence(a: str, b: str, teacher: dict[str, torch.Tensor]) -> dict:
    """‖b − a‖ relative to ‖a − teacher‖ (how far a moved), and the largest element difference."""
    wa, wb = _weights(a), _weights(b)
    diff = sum(float((wa[k] - wb[k]).square().sum()) for k in wa) ** 0.5
    moved = sum(float((wa[k] - teacher[k]).square().sum()) for k in wa if k in teacher) ** 0.5
    return {"l2_diff": diff, "max_abs_diff": max(float((wa[k] - wb[k]).abs().max()) for k in wa), "l2_moved": moved,
            "relative": diff / moved if moved else float("nan")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", required=True, help="folder for the inputs and the runs' files (a RAM disk on the device)")
    ap.add_argument("--gpus", type=int, default=2)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--per-gpu-batch", type=int, default=2)
    ap.add_argument("--items", type=int, default=512, help="pairs in the synthetic dataset")
    ap.add_argument("--tiny", action="store_true", help="CPU check: tiny UNet, 16×16 latents, gloo")
    ap.add_argument("--repeat-accum", action="store_true", help="run 1gpu-accum twice: the run-to-run floor of the equivalence measure")
    ap.add_argument("--rounds", type=int, default=1, help="run 1gpu and Ngpu this many times, alternating; scaling from the medians")
    ap.add_argument("--skip-equivalence", action="store_true", help="no 1gpu-accum runs (scaling only)")
    ap.add_argument("--omp-threads", type=int, default=0, help="OMP_NUM_THREADS for every run (torchrun sets 1 when unset)")
    ap.add_argument("--out", default="")
    ap.add_argument("extra", nargs="*", help="CLI flags after --: default --low-memory --bf16 --warmup-steps 0")
    a = ap.parse_args()
    extra = a.extra or ["--low-memory", "--bf16", "--warmup-steps", "0"]
    if a.tiny:
        extra = [x for x in extra if x != "--bf16"]
    t_start = time.perf_counter()
    paths = build_inputs(a.work, a.tiny, a.items)
    print(f"[bench] inputs ready in {time.perf_counter() - t_start:.0f} s", flush=True)
    n, b = a.gpus, a.per_gpu_batch
    if a.omp_threads:
        os.environ["OMP_NUM_THREADS"] = str(a.omp_threads)
    def run(name: str, world: int, batch: int, accumulation: int) -> dict:
        return run_cli(name, a.work, paths, world, batch, accumulation, a.steps, extra, a.tiny)

    runs, singles, multis = [], [], []
    for r in range(a.rounds):  # alternating, so that a slow spell of a shared host does not land on one side only
        tag = f"#{r + 1}" if a.rounds > 1 else ""
        singles.append(run(f"1gpu{tag}", 1, b, 1))
        if r == 0 and not a.skip_equivalence:
            runs.append(run("1gpu-accum", 1, n * b, n))
        multis.append(run(f"{n}gpu{tag}", n, n * b, 1))
    if a.repeat_accum and not a.skip_equivalence:
        runs.append(run("1gpu-accum-again", 1, n * b, n))
    runs = [*singles, *multis, *runs]
    named = {r["run"]: r for r in runs}
    eq = floor = None
    if not a.skip_equivalence:
        teacher = teacher_weights(paths["teacher"])
        eq = equivalence(named["1gpu-accum"]["generator"], multis[0]["generator"], teacher)
        if "1gpu-accum-again" in named:
            floor = equivalence(named["1gpu-accum"]["generator"], named["1gpu-accum-again"]["generator"], teacher)
    one = singles[0]
    scaling = statistics.median(r["images_per_s"] for r in multis) / statistics.median(r["images_per_s"] for r in singles)
    info = {"command": " ".join(["python -m benchmarks.bench_cli_ddp", *sys.argv[1:]]), "runs": runs, "gpus": n,
            "throughput_scaling": round(scaling, 3), "efficiency": round(scaling / n, 3), "equivalence_ngpu_vs_accumulation": eq,
            "floor_accumulation_vs_itself": floor, "omp_threads": os.environ.get("OMP_NUM_THREADS", ""), "total_s": round(time.perf_counter() - t_start, 1)}
    print(f"\ndevice: {one['device']}, torch {one['torch']}; CLI flags: {' '.join(extra)}; {a.steps} steps, median after the first 3")
    print("| run | processes | global batch (accumulation) | ms/step | images/s | peak alloc GiB (rank 0) | wall s |")
    print("|---|---|---|---|---|---|---|")
    for r in runs:
        print(f"| {r['run']} | {r['world_size']} | {r['global_batch']} ({r['grad_accumulation']}) | {r['ms_per_step']:.1f} | {r['images_per_s']:.2f} | "
              f"{r['peak_alloc_gib_rank0']:.2f} | {r['wall_s']:.0f} |")
    print(f"\nthroughput scaling {n} GPUs vs 1 (median images/s of {a.rounds} run(s) each): {scaling:.2f}× (efficiency {scaling / n:.0%})")
    if eq:
        print(f"{n} GPUs vs {n} accumulation steps on one: ‖ΔW‖ = {eq['l2_diff']:.3g} = {eq['relative']:.2%} of how far "
              f"training moved the weights ({eq['l2_moved']:.3g}), max |Δw| {eq['max_abs_diff']:.3g}")
    if floor:
        print(f"floor: the same accumulation run twice differs by ‖ΔW‖ = {floor['l2_diff']:.3g} = {floor['relative']:.2%}, "
              f"max |Δw| {floor['max_abs_diff']:.3g}")
    print(f"total {info['total_s']:.0f} s", flush=True)
    if a.out:
        with open(a.out, "w") as f:
            json.dump(info, f, indent=1)


if __name__ == "__main__":
    main()
