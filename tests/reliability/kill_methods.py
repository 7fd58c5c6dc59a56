"""Kill-anywhere jobs for the training methods beyond Diffusion2GAN (kill_child.py kills them, test_kill_methods.py
checks): each writes a checkpoint after every step and its generator file at the end, and must resume bit for bit.

- train-regression: `python -m training.cli train --method regression` (MSE) on kill_training's pairs: 4 checkpoints,
  the generator.
- train-reflow: `… --method reflow --text-dropout 0.5` (the dataset's negative prompt as the dropped text): 4 checkpoints,
  the 2-rectified-flow file.
- train-instaflow: `… --method instaflow --init-from <a 2-RF file>`: 4 checkpoints, the instaflow file.
- train-sid-lsg: the node's TrainingSession on a prompts-only dataset (SiD-LSG trains G and the fake score ψ against the
  frozen teacher φ): the loss history and the checkpoint (G, ψ, both optimisers, EMA, RNG) after each of 3 steps, then the
  history and the generator file.
"""
from __future__ import annotations

import os

from reliability.kill_child import Scenario
from reliability.kill_training import _check, _fixtures, small_unet

CLI_FLAGS = ["--batch-size", "4", "--num-workers", "0", "--lr-g", "1e-3", "--lr-d", "1e-3", "--save-every", "1", "--log-every", "0",
             "--steps", "4", "--seed", "3"]


class TrainMethodCLI(Scenario):
    """`python -m training.cli train --method <method> EXTRA…` with a checkpoint after each step, then the generator."""

    def __init__(self, method: str, *extra: str):
        self.method, self.extra = method, list(extra)

    def build(self, fixtures: str) -> None:
        self.pairs, self.teacher = _fixtures(fixtures)

    def job(self, folder: str) -> None:
        from training import cli

        code = cli.main(["train", "--method", self.method, "--pairs", self.pairs, "--teacher", self.teacher, "--out", os.path.join(folder, "g.safetensors"),
                         "--checkpoint", os.path.join(folder, "state.safetensors"), *CLI_FLAGS, *self.extra])
        if code:
            raise SystemExit(code)

    def check_final(self, folder: str) -> None:
        _check(folder)


class TrainInstaFlowCLI(TrainMethodCLI):
    """InstaFlow from a 2-rectified flow (written once into the fixtures by an uninterrupted reflow run)."""

    def __init__(self):
        super().__init__("instaflow", "--regression", "mse")

    def build(self, fixtures: str) -> None:
        from training import cli

        super().build(fixtures)
        flow = os.path.join(fixtures, "2rf.safetensors")
        if not os.path.exists(flow):
            assert cli.main(["train", "--method", "reflow", "--pairs", self.pairs, "--teacher", self.teacher, "--out", flow, "--batch-size", "4",
                             "--num-workers", "0", "--lr-g", "1e-3", "--steps", "2", "--seed", "1"]) == 0
        self.extra = ["--regression", "mse", "--init-from", flow]


def _prompts():
    """8 prompts' conditioning (7 tokens of the small UNet's width 8) and the empty prompt's, seeded."""
    import torch

    from training.prompts import PromptDataset

    g = torch.Generator().manual_seed(5)
    return PromptDataset(torch.randn(8, 7, 8, generator=g), {"context": torch.randn(7, 8, generator=g)})


class TrainSidLSG(Scenario):
    steps = 3

    def job(self, folder: str) -> None:
        from training.config import OptimConfig, SidConfig, TrainConfig
        from training.methods.sid_lsg import SidLSG
        from training.session import TrainingSession

        d = SidLSG.optim_defaults
        config = TrainConfig(method="sid-lsg", optim=OptimConfig(lr_g=1e-3, lr_d=1e-3, lr_warmup=0, betas=d["betas"], grad_clip=d["grad_clip"]),
                             sid=SidConfig(latent_height=8, latent_width=8), batch_size=2, save_every=1, seed=3)
        session = TrainingSession(small_unet(), config, _prompts(), folder)
        session.run(self.steps)
        session.export(os.path.join(folder, "generator.safetensors"), "custom", "sd15", teacher_hash="cd" * 8, source="kill test")

    def check_final(self, folder: str) -> None:
        _check(folder)


SCENARIOS = {
    "train-regression": TrainMethodCLI("regression", "--regression", "mse"),
    "train-reflow": TrainMethodCLI("reflow", "--text-dropout", "0.5"),
    "train-instaflow": TrainInstaFlowCLI(),
    "train-sid-lsg": TrainSidLSG(),
}
