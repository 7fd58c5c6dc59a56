"""A resume refuses, by file and place, optimiser state that does not fit the trainer's parameters (issue 21): Adafactor's
factored moments (row_var with the parameter's last dimension 1, col_var with its second-to-last 1, a vector's full
variance) and AdamW's moments, wrongly shaped, missing, or present where the parameter has no such moment. Before this
check a wrong Adafactor moment loaded and broadcast silently or failed mid-step with a raw RuntimeError/KeyError."""
from __future__ import annotations

import copy

import pytest
import torch

OPTIMIZERS = {"adafactor": {"optimizer": "adafactor", "optimizer_d": "adafactor", "foreach": False}, "adamw": {}}


def _trainer(optim: dict):
    from test_core_training_fixtures import config

    from reliability.kill_training import small_unet
    from training.trainer import Trainer

    return Trainer(small_unet(), config(optim=optim, loss={"regression": "mse", "warmup_steps": 0}, discriminator={"r1_every": 2}))


@pytest.fixture(scope="module", params=sorted(OPTIMIZERS))
def checkpoint(request, tmp_path_factory):
    """(optimiser name, a 1-step checkpoint with G's and D's moments, its loaded state)."""
    from reliability.kill_training import _fixtures
    from training.checkpoint import load_checkpoint
    from training.core import PairDataset

    folder = tmp_path_factory.mktemp(request.param)
    pairs, _ = _fixtures(str(folder))
    path = str(folder / "good.safetensors")
    _trainer(OPTIMIZERS[request.param]).run(PairDataset(pairs), 1, checkpoint=path)
    return request.param, path, load_checkpoint(path)


def _first(state: dict, moment: str, dims: int) -> int:
    """The index of G's first parameter whose moment `moment` has `dims` dimensions."""
    return next(i for i, m in sorted(state["opt_g"]["state"].items()) if moment in m and m[moment].dim() == dims)


def _mutations(optimizer: str, state: dict):
    """(case, what the refusal must name, a function that damages a copy of the state's G moments {index: moments})."""
    if optimizer == "adafactor":
        conv, vec = _first(state, "row_var", 4), _first(state, "variance", 1)
        return [
            ("row_var of the parameter's full shape", f"/opt_g/state/{conv}/row_var",
             lambda s: s[conv].update(row_var=torch.zeros(s[conv]["row_var"].shape[:-1] + s[conv]["col_var"].shape[-1:]))),
            ("col_var transposed", f"/opt_g/state/{conv}/col_var", lambda s: s[conv].update(col_var=s[conv]["row_var"].clone())),
            ("col_var missing", f"/opt_g/state/{conv} lacks col_var", lambda s: s[conv].pop("col_var")),
            ("variance too long", f"/opt_g/state/{vec}/variance", lambda s: s[vec].update(variance=torch.zeros(s[vec]["variance"].numel() + 1))),
            ("a vector with a row_var", f"/opt_g/state/{vec}/row_var", lambda s: s[vec].update(row_var=torch.zeros(1, 1))),
        ]
    conv = _first(state, "exp_avg", 4)
    return [
        ("exp_avg_sq flattened", f"/opt_g/state/{conv}/exp_avg_sq", lambda s: s[conv].update(exp_avg_sq=s[conv]["exp_avg_sq"].flatten())),
        ("exp_avg missing", f"/opt_g/state/{conv} lacks exp_avg", lambda s: s[conv].pop("exp_avg")),
        ("a row_var in AdamW's state", f"/opt_g/state/{conv}/row_var", lambda s: s[conv].update(row_var=torch.zeros(1))),
    ]


def test_the_good_checkpoint_resumes(checkpoint):
    optimizer, path, _ = checkpoint
    assert _trainer(OPTIMIZERS[optimizer]).load(path) == 1


def test_optimiser_state_that_does_not_fit_is_refused_by_place(checkpoint, tmp_path):
    from training.checkpoint import CheckpointError, save_checkpoint

    optimizer, _, state = checkpoint
    for case, place, damage in _mutations(optimizer, state):
        bad = copy.deepcopy(state)
        damage(bad["opt_g"]["state"])
        path = str(tmp_path / "bad.safetensors")
        save_checkpoint(path, bad)
        with pytest.raises(CheckpointError) as refused:
            _trainer(OPTIMIZERS[optimizer]).load(path)
        assert str(refused.value).startswith("bad.safetensors: ") and place in str(refused.value), (case, str(refused.value))
