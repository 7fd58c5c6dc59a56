"""Resumable training: N steps ≡ N/2 steps + checkpoint + a fresh process + N/2 steps (bit-exact on the CPU);
a stop requested by the callback leaves a checkpoint that resumes; NaN losses name the step and term and the last
good checkpoint survives; checkpoints are safetensors + JSON, never pickles."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from test_core_training_fixtures import PairsDataset, config, tiny_elpips, tiny_unet

from training.checkpoint import NonFiniteStateError, save_checkpoint
from training.steps import NonFiniteLossError
from training.trainer import Trainer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_trainer() -> Trainer:
    """GAN from step 2, R1 every 2nd step, mix-and-match, E-LatentLPIPS: every random path in play."""
    return Trainer(tiny_unet(), config(loss={"warmup_steps": 1}, discriminator={"r1_every": 2}, seed=3), tiny_elpips())


def final_state(trainer: Trainer) -> dict[str, torch.Tensor]:
    sd = {f"g.{k}": v for k, v in trainer.generator_state_dict(ema=False, layout="native").items()}
    sd.update({f"ema.{k}": v for k, v in trainer.generator_state_dict(ema=True, layout="native").items()})
    sd.update({f"d.{k}": v.detach().clone().contiguous() for k, v in trainer.discriminator.state_dict().items()})
    return sd


def second_half(checkpoint: str, out: str) -> None:
    """Run in a fresh process: load the checkpoint, finish the run, write the final weights."""
    trainer = make_trainer()
    assert trainer.load(checkpoint) == 2
    trainer.run(PairsDataset(), 4)
    save_file(final_state(trainer), out)


def test_resume_in_a_fresh_process_is_exact(tmp_path):
    full = make_trainer()
    full.run(PairsDataset(), 4)
    want = final_state(full)

    half = make_trainer()
    ckpt = str(tmp_path / "state.safetensors")
    result = half.run(PairsDataset(), 2, checkpoint=ckpt)
    assert result.step == 2 and os.path.exists(ckpt)
    out = str(tmp_path / "final.safetensors")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([REPO, os.path.join(REPO, "tests")])}
    code = f"import test_core_training_resume as t; t.second_half({ckpt!r}, {out!r})"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, check=True, timeout=300)
    got = load_file(out)
    assert set(got) == set(want)
    worst = max((got[k].float() - want[k].float()).abs().max().item() for k in want)
    assert worst <= 1e-6, worst
    assert any(not torch.equal(want[k], final_state(make_trainer())[k]) for k in want)  # training did move them


def test_checkpoint_is_safetensors_with_json(tmp_path):
    trainer = make_trainer()
    ckpt = str(tmp_path / "c.safetensors")
    trainer.run(PairsDataset(), 2, checkpoint=ckpt)
    with open(ckpt, "rb") as f:
        assert f.read(9)[8:9] == b"{"  # safetensors: 8-byte header length, then the JSON header (no pickle)
    with safe_open(ckpt, "pt") as f:
        meta = json.loads(f.metadata()["onestep.trainer_state"])
        keys = set(f.keys())
    assert meta["step"] == 2 and meta["config"]["seed"] == 3
    assert any(k.startswith("/opt_g/state/") for k in keys) and any(k.startswith("/opt_d/") for k in keys)
    assert any(k.startswith("/ema/") for k in keys) and "/rng/torch" in keys


def test_stop_from_callback_leaves_a_resumable_checkpoint(tmp_path):
    ckpt = str(tmp_path / "c.safetensors")
    trainer = make_trainer()
    result = trainer.run(PairsDataset(), 10, on_step=lambda step, logs: step == 3, checkpoint=ckpt)
    assert result.stopped and result.step == 3
    again = make_trainer()
    assert again.load(ckpt) == 3
    for name, p in trainer.unet.named_parameters():
        assert torch.equal(p, dict(again.unet.named_parameters())[name])
    assert again.run(PairsDataset(), 5).step == 5


def test_nan_names_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    ds = PairsDataset()
    batches = [{k: torch.stack([ds[i][k] for i in range(4 * s, 4 * s + 4)]) for k in ds[0]} for s in range(3)]
    batches[2]["latent"][1, 0, 3, 3] = float("nan")
    ckpt = str(tmp_path / "c.safetensors")
    trainer = Trainer(tiny_unet(), config(save_every=1, discriminator={"enabled": False}), tiny_elpips())
    with pytest.raises(NonFiniteLossError, match=r"'regression'.* at step 3"):
        trainer.run(batches, 5, checkpoint=ckpt)
    assert all(torch.isfinite(p).all() for p in trainer.unet.parameters())  # no update from the bad step
    assert Trainer(tiny_unet(), config(save_every=1, discriminator={"enabled": False}), tiny_elpips()).load(ckpt) == 2
    state = trainer.state_dict()
    state["generator"] = {k: v.detach().clone() for k, v in state["generator"].items()}
    next(iter(state["generator"].values())).view(-1)[0] = float("inf")
    with pytest.raises(NonFiniteStateError, match="non-finite"):
        save_checkpoint(ckpt, state)
    with safe_open(ckpt, "pt") as f:
        assert json.loads(f.metadata()["onestep.trainer_state"])["step"] == 2  # the good one is intact
