"""Kill-anywhere jobs for training and generator export (kill_child.py kills them; test_kill_training.py checks).

- train-cli: `python -m training.cli train` (its main(), in the forked child) on a tiny UNet on the CPU, GAN from step 2,
  R1 every 2nd step, a checkpoint (weights, D, both optimisers' state, EMA, RNG) after each of 4 steps, then the
  generator file: 5 writes. The resume is the same command line again.
- train-session: the node's TrainingSession with a LoRA generator: after each of 3 steps the loss history and the
  checkpoint, at the end the history, the generator and the LoRA: 9 writes. The resume is a new session on the folder.
- export: TrainingSession.export of a finished run over an older export (generator + LoRA) of the same run: most kill
  points land part-way through writing a file; the file under the final name must be the old export or the new
  one, whole.
"""
from __future__ import annotations

import os
import shutil

from safetensors.torch import load_file

from onestep.format import load_generator, read_metadata
from reliability.kill_child import Scenario

PAIRS, TEACHER = "pairs", "teacher"


SMALL_UNET = {  # smaller than the trainer tests' TINY: a kill point costs about one run, and 20+ of them run in CI
    "block_out_channels": (16, 32), "down_block_types": ("CrossAttnDownBlock2D", "DownBlock2D"), "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D"),
    "layers_per_block": 1, "cross_attention_dim": 8, "attention_head_dim": 4, "norm_num_groups": 8, "sample_size": 8, "in_channels": 4, "out_channels": 4,
}


def small_unet():
    """The teacher UNet of these jobs behind the trainer's interface (deterministic)."""
    import torch
    from diffusers import UNet2DConditionModel

    from training.diffusers_unet import DiffusersUNet

    torch.manual_seed(0)
    return DiffusersUNet(UNet2DConditionModel(**SMALL_UNET), latent_scale=0.18215)


def _fixtures(folder: str) -> tuple[str, str]:
    """A teacher-pairs dataset of 8 pairs (4×8×8 latents, kill_child's stand-in teacher) and the UNet as a diffusers folder."""
    from onestep.pairs import PairSettings
    from onestep.pairs.collect import collect, open_dataset
    from onestep.pairs.manifest import prompts_hash
    from reliability.kill_child import PROMPTS, Teacher

    import diffusers.models.unets.unet_2d_condition  # noqa: F401 (imported once here, not in every forked child)

    import training.cli  # noqa: F401
    import training.session  # noqa: F401

    pairs, teacher = os.path.join(folder, PAIRS), os.path.join(folder, TEACHER)
    if not os.path.isdir(teacher):
        s = PairSettings(teacher="t" * 64, latent_format="SD15", latent_shape=(4, 8, 8), sampler="euler", scheduler="normal", steps=2, cfg=3.0,
                         negative="", prompts_sha256=prompts_hash(PROMPTS), seed_start=0, count=8, batch_size=2, shard_size=4)
        collect(pairs, open_dataset(pairs, s, PROMPTS), Teacher())
        small_unet().unet.save_pretrained(teacher)
    return pairs, teacher


def _check(folder: str) -> None:
    """Every file under a final name of a training folder is whole: it loads with the pack's own loader."""
    import json

    from training.checkpoint import load_checkpoint

    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        if name.startswith(".tmp-"):
            continue
        if name in ("state.safetensors", "checkpoint.safetensors"):
            load_checkpoint(path)
        elif name in ("g.safetensors", "generator.safetensors"):
            load_generator(path)
        elif name == "lora.safetensors":
            load_file(path)
        elif name.endswith(".json"):
            with open(path, encoding="utf-8") as f:
                json.load(f)
        else:
            raise AssertionError(f"unexpected file {name}")


def _steps(checkpoint: str) -> int:
    from training.checkpoint import load_checkpoint

    return int(load_checkpoint(checkpoint)["step"])


class TrainCLI(Scenario):
    def build(self, fixtures: str) -> None:
        self.pairs, self.teacher = _fixtures(fixtures)

    def job(self, folder: str) -> None:
        from training import cli

        code = cli.main(["train", "--pairs", self.pairs, "--teacher", self.teacher, "--out", os.path.join(folder, "g.safetensors"),
                         "--checkpoint", os.path.join(folder, "state.safetensors"), "--regression", "mse", "--batch-size", "4",
                         "--warmup-steps", "1", "--r1-every", "2", "--num-workers", "0", "--lr-g", "1e-3", "--lr-d", "1e-3",
                         "--save-every", "1", "--log-every", "0", "--steps", "4", "--seed", "3"])
        if code:
            raise SystemExit(code)

    def check_final(self, folder: str) -> None:
        _check(folder)

    def previous(self, folder: str, after: int) -> str:
        """After `after` checkpoints: the last of them, and no generator yet."""
        step = _steps(os.path.join(folder, "state.safetensors"))
        return "" if step == after and not os.path.exists(os.path.join(folder, "g.safetensors")) else f"checkpoint at step {step}"


def _session(pairs: str, run_dir: str):
    from test_core_training_fixtures import config

    from training.config import GeneratorConfig
    from training.session import TrainingSession

    cfg = config(generator=GeneratorConfig(lora_rank=4), loss={"regression": "mse", "warmup_steps": 1}, discriminator={"r1_every": 2},
                 save_every=1, seed=5)
    return TrainingSession(small_unet(), cfg, pairs, run_dir)


class TrainSession(Scenario):
    steps = 3

    def build(self, fixtures: str) -> None:
        self.pairs, _ = _fixtures(fixtures)

    def job(self, folder: str) -> None:
        session = _session(self.pairs, folder)
        session.run(self.steps)
        session.export(os.path.join(folder, "generator.safetensors"), "custom", "sd15", os.path.join(folder, "lora.safetensors"))

    def check_final(self, folder: str) -> None:
        _check(folder)


class Export(Scenario):
    """The export of a 4-step run over the export of its first 2 steps."""

    def build(self, fixtures: str) -> None:
        self.pairs, _ = _fixtures(fixtures)
        self.run_dir, self.old = os.path.join(fixtures, "run"), os.path.join(fixtures, "old-export")
        if not os.path.isdir(self.old):
            session = _session(self.pairs, self.run_dir)
            session.run(2)
            self._export(session, self.old)
            session.run(4)

    @staticmethod
    def _export(session, folder: str) -> None:
        session.export(os.path.join(folder, "generator.safetensors"), "custom", "sd15", os.path.join(folder, "lora.safetensors"))

    def prepare(self, folder: str) -> None:
        shutil.copytree(self.old, folder)

    def previous(self, folder: str, after: int) -> str:
        """The older export, whole (the new one failed)."""
        steps = read_metadata(os.path.join(folder, "generator.safetensors")).training_steps
        return "" if steps == 2 else f"the generator under the final name is of {steps} steps"

    def job(self, folder: str) -> None:
        if not os.path.isdir(folder):
            self.prepare(folder)
        session = _session(self.pairs, self.run_dir)  # resumes the finished run: no step, no write there
        assert session.step == 4
        self._export(session, folder)

    def check_final(self, folder: str) -> None:
        assert read_metadata(os.path.join(folder, "generator.safetensors")).training_steps in (2, 4)
        load_generator(os.path.join(folder, "generator.safetensors"))
        assert load_file(os.path.join(folder, "lora.safetensors"))


SCENARIOS = {"train-cli": TrainCLI(), "train-session": TrainSession(), "export": Export()}
