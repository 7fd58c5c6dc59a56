"""The headless CLI: flags fill the typed config, and `train` goes from a pairs dataset folder and a diffusers UNet
folder to a generator file, resuming from its checkpoint — or, for SiD-LSG, from a prompt file and a diffusers
pipeline folder (its CLIP encodes the prompts), also under torchrun (2 gloo ranks = 1 process accumulating 2)."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file
from test_core_training_fixtures import CTX_DIM, tiny_pipeline, tiny_unet

from onestep.format import load_generator, read_metadata, save_generator
from onestep.pairs import PairSettings
from onestep.pairs.collect import collect, open_dataset
from onestep.pairs.manifest import prompts_hash
from training import cli
from training.config import DEFAULT_SPEC, LossConfig, OptimConfig, SidConfig, TrainConfig, low_memory

PROMPTS = ["a cat", "a dog", "a bird"]


class Teacher:
    """latent = tanh(0.5·noise + prompt index): a deterministic stand-in for the teacher's ODE sampler."""

    def noise(self, seed):
        return torch.randn([1, 4, 16, 16], generator=torch.Generator().manual_seed(seed))

    def conditioning(self, j):
        return {"cond": torch.full((1, 77, CTX_DIM), float(j) / 3)}

    def sample(self, noise, prompt_indices, hint_indices):
        return torch.tanh(0.5 * noise + torch.tensor([float(j) for j in prompt_indices]).view(-1, 1, 1, 1))


def _pairs(folder: str) -> str:
    s = PairSettings(teacher="t" * 64, latent_format="SD15", latent_shape=(4, 16, 16), sampler="euler", scheduler="normal", steps=3,
                     cfg=3.0, negative="", prompts_sha256=prompts_hash(PROMPTS), seed_start=0, count=8, batch_size=2, shard_size=4)
    collect(folder, open_dataset(folder, s, PROMPTS), Teacher())
    return folder


def _parse(argv):
    p = argparse.ArgumentParser()
    cli.add_train_arguments(p)
    return p.parse_args(["--pairs", "p", "--teacher", "t", "--out", "o", "--steps", "5", *argv])


def test_flags_fill_the_config():
    # the defaults are the trainer's, with the node's lr schedule: warm-up, then cosine over the run's --steps
    # (and a warm-up of a tenth of a run shorter than 5,000 steps: 0 for these 5)
    # D's Adam β from the method (Diffusion2GAN: β2 0.99, measured in proof-scale runs 10–12); methods without it keep G's
    assert cli.config_from_args(_parse([])) == TrainConfig(optim=OptimConfig(lr_warmup=0, lr_decay="cosine", lr_decay_steps=5, betas_d=(0.9, 0.99)))
    assert cli.config_from_args(_parse(["--method", "regression"])).optim.betas_d is None
    c = cli.config_from_args(_parse(["--lr-warmup", "7", "--lr-decay", "constant", "--lr-floor", "0.5", "--gan-balance", "fixed",
                                     "--data-on-device", "never"]))
    assert (c.optim.lr_warmup, c.optim.lr_decay, c.optim.lr_floor, c.loss.gan_balance, c.data_on_device) == (7, "constant", 0.5, "fixed", "never")
    c = cli.config_from_args(_parse(["--lora-rank", "8", "--optimizer", "adafactor", "--regression", "mse", "--no-z-conditioning",
                                     "--single-scale", "--no-mix-and-match", "--r1-gamma", "0", "--gan-weight", "0.5", "--bf16",
                                     "--timestep", "399", "--input-convention", "raw_z", "--d-t-range", "10", "300", "--d-dtype", "bfloat16",
                                     "--d-backbone", "lora", "--d-lora-rank", "16", "--d-readout", "decoder", "--d-mbstd-group", "4",
                                     "--d-real-images", "real.safetensors"]))
    assert c.generator.lora_rank == 8 and c.optim.optimizer == "adafactor" and c.loss.regression == "mse" and c.loss.gan_weight == 0.5
    d = c.discriminator
    assert (d.z_conditioning, d.multiscale, d.mix_and_match, d.r1_gamma, d.d_t_min, d.d_t_max) == (False, False, False, 0.0, 10, 300)
    assert (d.storage_dtype, d.backbone, d.lora_rank, d.readout, d.mbstd_group, d.real_images) == ("bfloat16", "lora", 16, "decoder", 4, "real.safetensors")
    assert c.bf16 and c.generator.spec == DEFAULT_SPEC.__class__("eps", 399, "raw_z")
    c = cli.config_from_args(_parse(["--gan-loss", "relativistic", "--warmup-steps", "10", "--d-lead", "4", "--lr-d-schedule", "constant"]))
    assert (c.loss.gan_loss, c.loss.d_lead_steps, c.optim.lr_d_schedule) == ("relativistic", 4, "constant")
    c = cli.config_from_args(_parse(["--warmup-steps", "10", "--d-lead", "10", "--hold-generator", "--gan-scale-max", "1"]))
    assert (c.loss.hold_generator, c.loss.gan_scale_max) == (True, 1.0) and not cli.config_from_args(_parse([])).loss.hold_generator
    assert TrainConfig.from_dict(c.to_dict()) == c
    c = cli.config_from_args(_parse(["--gan-ramp", "50", "--betas-d", "0", "0.99", "--eps-d", "1e-5"]))
    assert (c.loss.gan_ramp_steps, c.optim.betas_d, c.optim.betas, c.optim.eps_d) == (50, (0.0, 0.99), OptimConfig().betas, 1e-5)
    assert TrainConfig.from_dict(c.to_dict()) == c
    assert cli.config_from_args(_parse(["--low-memory"])) == low_memory(cli.config_from_args(_parse([])))
    assert cli.config_from_args(_parse(["--low-memory"])).discriminator.storage_dtype == "bfloat16"


def test_train_end_to_end_and_resume(tmp_path, caplog):
    pairs = _pairs(str(tmp_path / "pairs"))
    teacher = str(tmp_path / "teacher")
    tiny_unet().unet.save_pretrained(teacher)
    out, ckpt = str(tmp_path / "g.safetensors"), str(tmp_path / "state.safetensors")
    args = ["train", "--pairs", pairs, "--teacher", teacher, "--out", out, "--checkpoint", ckpt, "--regression", "mse",
            "--batch-size", "4", "--warmup-steps", "1", "--num-workers", "0", "--lr-g", "1e-4"]
    assert cli.main([*args, "--steps", "2"]) == 0
    assert read_metadata(out).training_steps == 2
    caplog.clear()
    with caplog.at_level("INFO", logger="onestep"):
        assert cli.main([*args, "--steps", "3"]) == 0
    assert "at step 2" in caplog.text and "resuming" in caplog.text  # continued from the checkpoint's 2 steps
    meta = read_metadata(out)
    assert (meta.method, meta.base, meta.latent_format, meta.guidance, meta.training_steps) == ("diffusion2gan", "custom", "sd15", 3.0, 3)  # width-32 text: no standard base
    assert meta.teacher_hash == "t" * 16  # the pairs' teacher fingerprint, written by the one export the node also uses


def test_stats_file_reports_the_measured_speed(tmp_path):
    pairs = _pairs(str(tmp_path / "pairs"))
    teacher = str(tmp_path / "teacher")
    tiny_unet().unet.save_pretrained(teacher)
    stats = tmp_path / "stats.json"
    assert cli.main(["train", "--pairs", pairs, "--teacher", teacher, "--out", str(tmp_path / "g.safetensors"), "--regression", "mse",
                     "--batch-size", "2", "--warmup-steps", "0", "--num-workers", "0", "--steps", "5", "--stats", str(stats)]) == 0
    s = json.loads(stats.read_text())
    # 5 steps, the first 3 not timed (allocation, autotuning): 2 intervals, whose median gives images/s at batch 2
    assert (s["timed_steps"], s["global_batch"], s["world_size"], s["steps"], s["device"]) == (2, 2, 1, 5, "cpu")
    assert s["ms_per_step"] > 0 and abs(s["images_per_s"] - 2 / s["ms_per_step"] * 1000) < 0.01 * s["images_per_s"] + 0.01
    assert s["config"]["batch_size"] == 2 and s["config"]["optim"]["optimizer"] == "adamw"


def test_sid_lsg_flags_take_the_methods_defaults():
    c = cli.config_from_args(_parse(["--method", "sid-lsg"]))
    assert (c.method, c.optim.betas, c.optim.lr_g, c.optim.lr_d, c.optim.grad_clip) == ("sid-lsg", (0.0, 0.999), 1e-6, 1e-6, 0.0)  # the official Adam
    assert c.sid == SidConfig() and c.generator.spec == DEFAULT_SPEC  # ε at t_init 625 on sqrt(1−ᾱ)·z
    assert c.loss.regression == "mse" and cli.config_from_args(_parse([])).loss.regression == LossConfig().regression != "mse"
    assert cli.config_from_args(_parse(["--method", "sid-lsg", "--regression", "latentlpips"])).loss.regression == "latentlpips"
    c = cli.config_from_args(_parse(["--method", "sid-lsg", "--betas", "0.5", "0.99", "--lr-g", "2e-5", "--kappa1", "1", "--kappa2", "2",
                                     "--kappa4", "3", "--alpha", "1.2", "--sid-t-range", "30", "900", "--prompt-dropout", "0.2",
                                     "--latent-size", "32", "48", "--fake-lora-rank", "8", "--fake-dtype", "bfloat16", "--bf16",
                                     "--sid-reduction", "mean", "--grad-clip", "2", "--fake-steps", "3",
                                     "--kappa4-t-min", "250", "--sid-live-anchor", "0.5", "--sid-live-anchor-items", "4",
                                     "--sid-live-anchor-steps", "10", "--sid-live-anchor-sampler", "dpmpp_2m",
                                     "--sid-live-anchor-spacing", "exponential", "--sid-live-anchor-cfg", "1.25", "--sid-live-gan", "0.3",
                                     "--sid-live-gan-lr", "1e-4", "--sid-live-gan-start", "200", "--sid-live-gan-hold"]))
    assert (c.optim.betas, c.optim.lr_g, c.optim.lr_d, c.optim.grad_clip) == ((0.5, 0.99), 2e-5, 1e-6, 2.0)
    assert c.sid == SidConfig(kappa1=1.0, kappa2=2.0, kappa4=3.0, alpha=1.2, t_min=30, t_max=900, prompt_dropout=0.2, latent_height=32,
                              latent_width=48, fake_lora_rank=8, fake_dtype="bfloat16", reduction="mean", fake_steps=3,
                              kappa4_t_min=250, live_anchor_weight=0.5, live_anchor_items=4, live_anchor_steps=10,
                              live_anchor_sampler="dpmpp_2m", live_anchor_spacing="exponential", live_anchor_cfg=1.25, live_gan_weight=0.3,
                              live_gan_lr=1e-4, live_gan_start=200, live_gan_hold=True)
    with pytest.raises(ValueError, match="one recall anchor at a time"):
        cli.config_from_args(_parse(["--method", "sid-lsg", "--sid-anchor", "0.25", "--sid-live-anchor", "1"]))


def _sid_args(tmp_path, out: str, steps: int, *extra: str) -> list[str]:
    prompts = tmp_path / "prompts.tsv"
    prompts.write_text("id\tPrompt\n1\ta red fox\n2\ta blue bird\n3\tsneaker\n")
    return ["train", "--method", "sid-lsg", "--prompts", str(prompts), "--prompt-column", "Prompt", "--teacher", str(tmp_path / "pipe"),
            "--out", out, "--batch-size", "4", "--latent-size", "16", "16", "--lr-g", "1e-3", "--lr-d", "1e-3", "--steps", str(steps),
            "--num-workers", "0", *extra]


def test_sid_lsg_trains_from_a_prompt_file_end_to_end_and_resumes(tmp_path, caplog):
    tiny_pipeline(str(tmp_path / "pipe"))
    out, ckpt = str(tmp_path / "sid.safetensors"), str(tmp_path / "state.safetensors")
    assert cli.main(_sid_args(tmp_path, out, 2, "--checkpoint", ckpt)) == 0
    caplog.clear()
    with caplog.at_level("INFO", logger="onestep"):
        assert cli.main(_sid_args(tmp_path, out, 3, "--checkpoint", ckpt)) == 0
    assert "at step 2" in caplog.text and "resuming" in caplog.text
    meta = read_metadata(out)
    assert (meta.method, meta.prediction, meta.timestep, meta.input_convention, meta.guidance, meta.training_steps) == ("sid-lsg", "eps", 625, "sigma_z", 1.5, 3)
    assert meta.notes["sid_lsg"]["kappa4"] == 1.5 and meta.source == "training.cli:prompts.tsv" and len(meta.teacher_hash) == 16
    with pytest.raises(SystemExit, match="prompts only: give --prompts"):
        cli.main(["train", "--method", "sid-lsg", "--teacher", str(tmp_path / "pipe"), "--out", out, "--steps", "1"])
    with pytest.raises(SystemExit, match="teacher pairs: give --pairs"):
        cli.main(["train", "--method", "diffusion2gan", "--teacher", str(tmp_path / "pipe"), "--out", out, "--steps", "1"])


def test_sid_lsg_starts_from_a_generator_file_and_refuses_another_timestep(tmp_path):
    """SiD-LSG from a one-step student (the Diffusion2GAN → SiD-LSG recipe): G and its EMA start from the file's weights;
    a file made for another single call is refused by name before training."""
    tiny_pipeline(str(tmp_path / "pipe"))
    first = str(tmp_path / "first.safetensors")
    assert cli.main(_sid_args(tmp_path, first, 1)) == 0
    sd, meta = load_generator(first)
    g = torch.Generator().manual_seed(0)
    start = str(tmp_path / "student.safetensors")  # a student far from the teacher, at SiD's call (ε, t=625, σ·z)
    save_generator(start, {k: v + 0.05 * torch.randn(v.shape, generator=g) for k, v in sd.items()}, meta)
    out = str(tmp_path / "from_student.safetensors")  # lr 0: G stays what it started from
    assert cli.main(_sid_args(tmp_path, out, 1, "--init-from", start, "--lr-g", "0")) == 0
    began, trained = load_file(start), load_file(out)
    assert all(torch.allclose(trained[k], began[k], atol=1e-6) for k in began)  # from the teacher they would differ by ~0.05
    meta = read_metadata(out)
    assert meta.notes["init_from"] == "student.safetensors" and meta.source == "training.cli:prompts.tsv, G from student.safetensors"
    with pytest.raises(SystemExit, match=r"student.safetensors is a generator for ε at t=625 \(σ·z input\); this run trains ε at t=999 "
                       r"\(σ·z input\): give --timestep 625"):
        cli.main(_sid_args(tmp_path, str(tmp_path / "x.safetensors"), 1, "--init-from", start, "--timestep", "999"))
    with pytest.raises(SystemExit, match="raw z input"):
        cli.main(_sid_args(tmp_path, str(tmp_path / "x.safetensors"), 1, "--init-from", start, "--input-convention", "raw_z"))
    assert not os.path.exists(tmp_path / "x.safetensors")


def test_sid_lsg_under_torchrun_equals_accumulation(tmp_path):
    tiny_pipeline(str(tmp_path / "pipe"))
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH", "")])), "OMP_NUM_THREADS": "1",
           "CUDA_VISIBLE_DEVICES": ""}
    runs = {}
    for name, launcher, accumulation in (("one", [sys.executable], "2"),
                                         ("two", [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"], "1")):
        out = str(tmp_path / f"{name}.safetensors")
        args = _sid_args(tmp_path, out, 2, "--grad-accumulation", accumulation, "--ema-decay", "0")
        subprocess.run([*launcher, "-m", "training.cli", *args], cwd=repo, env=env, check=True, timeout=600)
        runs[name] = load_file(out)
    teacher = tiny_unet().export_state_dict(dict(tiny_unet().state_dict()))
    moved = sum(float((runs["one"][k] - teacher[k]).square().sum()) for k in teacher) ** 0.5
    diff = sum(float((runs["one"][k] - runs["two"][k]).square().sum()) for k in teacher) ** 0.5
    assert moved > 0 and diff < 0.01 * moved, (diff, moved)  # float summation order only
