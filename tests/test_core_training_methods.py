"""The method engine takes a new method as one class and a config entry: a toy prompts-only method with its own extra
network (defined here, in the shape of SiD's fake-score + generator phases) trains through TrainingSession on the CPU,
checkpoints, resumes bit-exactly, previews and exports; checkpoints name their method and older ones still load."""
from __future__ import annotations

import dataclasses
import json
import os

import pytest
import torch
from safetensors import safe_open
from test_core_training_fixtures import CTX_DIM, PairsDataset, config, tiny_elpips, tiny_unet

from onestep.format import load_generator, read_metadata
from training.config import TrainConfig
from training.engine import Engine
from training.methods import METHODS, PROMPTS, ExtraNetwork, Method, Phase, register
from training.session import TrainingSession
from training.trainer import Trainer
from training.unet_interface import IncompatibleDataError


class ToyCritic(Method):
    """Phase 1 fits a small critic ψ to the generator's (detached) output; phase 2 moves G through the frozen ψ."""

    name = "toy-critic"
    file_method = "other"
    data = PROMPTS
    shape = (4, 16, 16)

    def build(self, engine) -> list[ExtraNetwork]:
        g = torch.Generator().manual_seed(self.config.seed + 11)
        self.critic = torch.nn.Sequential(torch.nn.Conv2d(4, 8, 3, padding=1), torch.nn.SiLU(), torch.nn.Conv2d(8, 4, 3, padding=1))
        with torch.no_grad():
            for p in self.critic.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
        return [ExtraNetwork("critic", "c", self.critic, self.config.optim.lr_d)]

    def draw_noise(self, engine, n: int, generator: torch.Generator) -> torch.Tensor:
        return torch.randn((n, *self.shape), generator=generator)

    def phases(self, engine, step: int) -> list[Phase]:
        return [Phase("critic", lambda mb, backward: self._critic(engine, mb, backward)),
                Phase("generator", lambda mb, backward: self._generator(engine, mb, backward))]

    def _critic(self, engine, mb, backward) -> dict:
        mb.outputs["z"] = z = self.draw_noise(engine, len(mb.context), mb.rng).to(engine.device)
        with torch.no_grad():
            x = engine.generator(z, mb.context)
        loss = (self.critic(x) - 0.5 * x).pow(2).mean()
        backward(loss)
        return {"fit": loss, "total": loss}

    def _generator(self, engine, mb, backward) -> dict:
        x = engine.generator(mb.outputs["z"], mb.context)
        through_critic, size = self.critic(x).pow(2).mean(), x.pow(2).mean()
        backward(through_critic + 0.1 * size)
        return {"through_critic": through_critic, "size": size, "total": through_critic + 0.1 * size}


class Prompts(torch.utils.data.Dataset):
    """Items with only the text conditioning."""

    def __init__(self, n: int = 8):
        g = torch.Generator().manual_seed(5)
        self.contexts = torch.randn(n, 7, CTX_DIM, generator=g)

    def __len__(self) -> int:
        return len(self.contexts)

    def __getitem__(self, i: int) -> dict:
        return {"context": self.contexts[i], "prompt_index": torch.tensor(i)}


@pytest.fixture
def toy():
    register(ToyCritic)
    yield dataclasses.replace(config(optim={"lr_g": 1e-3, "lr_d": 1e-2, "lr_warmup": 0}), method="toy-critic", batch_size=4)
    METHODS.pop(ToyCritic.name)


def _weights(session: TrainingSession) -> dict[str, torch.Tensor]:
    e = session.trainer
    out = {f"g.{k}": v.clone() for k, v in e.generator_state_dict(ema=False, layout="native").items()}  # on the CPU these alias the weights
    out.update({f"ema.{k}": v.clone() for k, v in e.generator_state_dict(ema=True, layout="native").items()})
    out.update({f"critic.{k}": v.detach().clone() for k, v in e.method.critic.state_dict().items()})
    return out


def test_a_new_method_trains_checkpoints_resumes_and_exports(toy, tmp_path):
    straight = TrainingSession(tiny_unet(), toy, Prompts(), str(tmp_path / "straight"))
    untrained = _weights(straight)
    result = straight.run(4)
    assert result.step == 4 and not result.stopped
    assert {"fit", "c_total", "grad_norm_c", "through_critic", "size", "g_total", "grad_norm_g"} <= set(result.logs)
    want = _weights(straight)
    assert any(not torch.equal(want[k], untrained[k]) for k in want if k.startswith("g."))  # G moved
    assert any(not torch.equal(want[k], untrained[k]) for k in want if k.startswith("critic."))  # and so did ψ

    run_dir = str(tmp_path / "halves")
    half = TrainingSession(tiny_unet(), toy, Prompts(), run_dir)
    assert half.run(4, on_step=lambda step, logs: step == 2).stopped  # a stop leaves the checkpoint
    with safe_open(os.path.join(run_dir, "checkpoint.safetensors"), "pt") as f:
        state = json.loads(f.metadata()["onestep.trainer_state"])
        keys = set(f.keys())
    assert state["method"] == "toy-critic" and state["step"] == 2
    assert any(k.startswith("/critic/") for k in keys) and any(k.startswith("/opt_c/state/") for k in keys)
    resumed = TrainingSession(tiny_unet(), toy, Prompts(), run_dir)
    assert resumed.step == 2 and [s for s, _ in resumed.history["c_total"]] == [1, 2]
    resumed.run(4)
    got = _weights(resumed)
    assert set(got) == set(want) and all(torch.equal(got[k], want[k]) for k in want)  # bit-exact on the CPU

    student, teacher = resumed.previews(2)
    assert student.shape == (2, 4, 16, 16) and teacher is None and torch.isfinite(student).all()
    path = str(tmp_path / "toy.safetensors")
    resumed.export(path, "custom", "sd15", teacher_hash="ab" * 8, source="test")
    meta = read_metadata(path)
    assert (meta.method, meta.teacher_hash, meta.training_steps, meta.guidance) == ("other", "ab" * 8, 4, None)
    assert meta.notes["training_method"] == "toy-critic" and meta.notes["training_config"]["method"] == "toy-critic"
    sd, _ = load_generator(path)
    assert all(torch.equal(sd[k], v) for k, v in resumed.trainer.generator_state_dict().items())
    with pytest.raises(ValueError, match="teacher's fingerprint"):  # no generator file without provenance
        resumed.export(str(tmp_path / "anonymous.safetensors"), "custom", "sd15")

    d2g = Trainer(tiny_unet(), config(), tiny_elpips())
    with pytest.raises(ValueError, match="written by the 'toy-critic' method"):
        d2g.load(os.path.join(run_dir, "checkpoint.safetensors"))


def test_methods_get_only_data_they_can_use(toy, tmp_path):
    with pytest.raises(IncompatibleDataError, match="lacks 'noise'"):  # a pairs method given prompts only
        TrainingSession(tiny_unet(), config(), Prompts(), None, tiny_elpips())
    with pytest.raises(ValueError, match="unknown training method 'nope'.*diffusion2gan"):
        Engine(tiny_unet(), TrainConfig(method="nope"))
    with pytest.raises(ValueError, match="already registered"):
        register(type("Other", (ToyCritic,), {}))


@pytest.mark.parametrize("method", ["diffusion2gan", "regression"])
def test_checkpoints_written_before_methods_had_names_still_load(method, tmp_path):
    # the layout before the engine: no "method" key, and a regression run's empty discriminator entries
    kw = {"discriminator": {"enabled": False}} if method == "regression" else {}
    first = Trainer(tiny_unet(), dataclasses.replace(config(**kw), method=method), tiny_elpips())
    first.run(PairsDataset(), 2)
    state = first.state_dict()
    assert state.pop("method") == method
    if method == "regression":
        state.update(discriminator={}, opt_d={})
    again = Trainer(tiny_unet(), dataclasses.replace(config(**kw), method=method), tiny_elpips())
    again.load_state_dict(state)
    assert again.step == 2 and all(torch.equal(a, b) for a, b in zip(again.trainable_parameters(), first.trainable_parameters()))
    toy_engine = Engine(tiny_unet(), TrainConfig(), method=ToyCritic(TrainConfig()))
    with pytest.raises(ValueError, match="predates training methods"):
        toy_engine.load_state_dict(state)
