"""More averages of G beside the main EMA (TrainConfig.ema_extra): each is exactly the EMA a run with that decay
keeps (averaging never changes training), they resume exactly from a checkpoint, an average a checkpoint lacks starts
from the main one, and asking for an average the run does not keep names the ones it does."""
from __future__ import annotations

import pytest
import torch
from test_core_training_fixtures import PairsDataset, config, resumed_halfway, tiny_elpips, tiny_unet

from training.config import TrainConfig
from training.trainer import Trainer


def make(ema_decay: float = 0.9, ema_extra: tuple[float, ...] = (0.2, 0.3)) -> Trainer:
    # decays under the EMA's warm-up ramp (1+n)/(10+n) of a 4-step run, so that each average differs from the others
    return Trainer(tiny_unet(), config(seed=5, ema_decay=ema_decay, ema_extra=ema_extra), tiny_elpips())


def native(trainer: Trainer, ema) -> dict[str, torch.Tensor]:
    return trainer.generator_state_dict(ema=ema, layout="native")


def test_each_extra_average_is_the_ema_a_run_with_that_decay_keeps():
    both = make()
    both.run(PairsDataset(), 4)
    for decay in (0.2, 0.3):
        alone = make(ema_decay=decay, ema_extra=())
        alone.run(PairsDataset(), 4)
        want, got = native(alone, True), native(both, decay)
        assert all(torch.equal(got[k], want[k]) for k in want), decay
    main, short, live, by_number = (native(both, e) for e in (True, 0.2, False, 0.9))
    assert all(torch.equal(by_number[k], v) for k, v in main.items())  # the main average by its decay
    assert any(not torch.equal(main[k], short[k]) for k in main) and any(not torch.equal(short[k], live[k]) for k in main)
    with pytest.raises(ValueError, match=r"no EMA with decay 0.7 \(it keeps \[0.9, 0.2, 0.3\]\)"):
        both.generator_state_dict(ema=0.7)


def test_extra_averages_resume_exactly_and_a_new_one_starts_from_the_main(tmp_path):
    straight = make()
    straight.run(PairsDataset(), 4)
    _, resumed = resumed_halfway(make, tmp_path)
    for decay in (True, 0.2, 0.3):
        want, got = native(straight, decay), native(resumed, decay)
        assert all(torch.equal(got[k], want[k]) for k in want), decay
    # a run that kept no extra average, resumed with one: it starts at the main EMA of the checkpoint
    plain = make(ema_extra=())
    ckpt = str(tmp_path / "plain.safetensors")
    plain.run(PairsDataset(), 2, checkpoint=ckpt)
    added = make(ema_extra=(0.2,))
    assert added.load(ckpt) == 2
    assert all(torch.equal(native(added, 0.2)[k], v) for k, v in native(added, True).items())
    assert added.extra_emas[0.2].updates == plain.ema.updates == 2


@pytest.mark.parametrize("extra", [(0.9,), (0.5, 0.5), (1.0,), (0.0,)])
def test_extra_decays_are_distinct_and_inside_zero_one(extra):
    with pytest.raises(ValueError, match="ema_extra needs distinct decays in"):
        TrainConfig(ema_decay=0.9, ema_extra=extra)


def test_extra_decays_survive_the_config_round_trip():
    c = TrainConfig(ema_extra=(0.99, 0.9995))
    assert TrainConfig.from_dict(c.to_dict()) == c and TrainConfig.from_dict(c.to_dict()).ema_extra == (0.99, 0.9995)


def test_without_the_ramp_the_decay_holds_from_the_first_update():
    from torch import nn

    from training.ema import EMA

    net = nn.Linear(3, 2)
    start = net.weight.detach().clone()
    ramped, plain = EMA(net, 0.99), EMA(net, 0.99, ramp=False)
    with torch.no_grad():
        net.weight.add_(1.0)
    ramped.update(net)
    plain.update(net)
    assert torch.allclose(plain.shadow["weight"], start + 0.01, atol=1e-6)  # β = 0.99
    assert torch.allclose(ramped.shadow["weight"], start + (1 - 2 / 11), atol=1e-6)  # β = min(0.99, 2/11)
