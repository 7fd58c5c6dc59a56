"""The core's checks of typed numbers (onestep/ranges.py, the training configs, the pairs settings and the collection's
memory and disk estimates), without ComfyUI: each refusal names the input and its range; valid values pass."""
from __future__ import annotations

import itertools
import math
import shutil

import pytest

from onestep.pairs.collect import _rank_items, check_disk, check_shard_memory, item_bytes, open_dataset
from onestep.pairs.manifest import DatasetError, PairSettings, prompts_hash
from onestep.ranges import check_declared, check_range
from training.config import DiscriminatorConfig, LossConfig, OptimConfig, SidConfig, TrainConfig

NAN, INF = float("nan"), float("inf")
DECLARED = {"required": {"steps": ("INT", {"min": 1, "max": 1000}), "cfg": ("FLOAT", {"min": 0.0, "max": 100.0}), "name": ("STRING", {}),
                         "model": ("MODEL",), "mode": (["a", "b"],)},
            "optional": {"strength": ("FLOAT", {"min": 0.0, "max": 10.0})}}


@pytest.mark.parametrize("values, message", [
    ({"steps": 0}, "steps must be an integer from 1 to 1,000, not 0"),
    ({"steps": 2**63 - 1}, "steps must be an integer from 1 to 1,000, not 9223372036854775807"),
    ({"steps": 2.5}, "steps must be an integer from 1 to 1,000, not 2.5"),
    ({"steps": True}, "steps must be an integer"),
    ({"cfg": NAN}, "cfg must be a finite number from 0 to 100, not nan"),
    ({"cfg": -INF}, "cfg must be a finite number from 0 to 100, not -inf"),
    ({"cfg": 100.5}, "cfg must be a finite number from 0 to 100, not 100.5"),
    ({"strength": -0.01}, "strength must be a finite number from 0 to 10, not -0.01"),
])
def test_a_value_outside_its_declared_range_is_named_with_the_range(values, message):
    with pytest.raises(ValueError) as e:
        check_declared(DECLARED, {"steps": 5, "cfg": 1.0, "name": "x", "model": object(), "mode": "a", **values})
    assert str(e.value).startswith(message), str(e.value)


def test_values_inside_their_ranges_and_inputs_not_numeric_or_not_given_pass():
    check_declared(DECLARED, {"steps": 1, "cfg": 100, "name": float("nan"), "model": None, "mode": 7, "self": object()})
    check_declared(DECLARED, {"steps": 1000, "cfg": 0.0, "strength": 10.0})
    check_range("seed", 2**64 - 1, 0, 2**64 - 1, integer=True)
    check_range("alpha", -1e300)


def settings(**over) -> PairSettings:
    base = dict(teacher="t", latent_format="SD15", latent_shape=(4, 8, 8), sampler="euler", scheduler="normal", steps=2, cfg=3.0,
                negative="", prompts_sha256=prompts_hash(["a"]), seed_start=0, count=4, batch_size=2, shard_size=2)
    return PairSettings(**{**base, **over})


@pytest.mark.parametrize("over, named", [
    ({"seed_start": 2**63}, "seed"), ({"seed_start": 2**63 - 3, "count": 4}, "seed"), ({"seed_start": -1}, "seed"),
    ({"steps": 0}, "steps"), ({"cfg": NAN}, "cfg"), ({"control_strength": INF}, "control_strength"), ({"latent_shape": (4, 0, 8)}, "width"),
])
def test_pair_settings_refuse_what_cannot_be_sampled_or_recorded(over, named):
    with pytest.raises(DatasetError, match=named):
        settings(**over)


def test_the_largest_seed_a_shard_records_is_accepted():
    assert settings(seed_start=2**63 - 4, count=4).seed_start == 2**63 - 4


def test_a_shard_or_a_dataset_that_cannot_fit_is_refused_before_anything_is_written(tmp_path):
    s = settings(latent_shape=(4, 256, 256), count=65536, batch_size=1, shard_size=65536)
    with pytest.raises(DatasetError, match="shard_size 65,536 .* 384.0 GiB"):
        check_shard_memory(s, 64 * 2**30)
    check_shard_memory(settings(), 2**30)
    folder = tmp_path / "not-yet" / "pairs"
    free = shutil.disk_usage(tmp_path).free
    big = settings(count=free // item_bytes(settings()) + 1, shard_size=64)
    with pytest.raises(DatasetError, match="count .* need at least .* GiB on disk"):
        open_dataset(str(folder), big, ["a"])
    assert not (tmp_path / "not-yet").exists()
    check_disk(str(folder), big, done_items=big.count)  # nothing left to collect
    open_dataset(str(folder), settings(), ["a"])
    assert (folder / "manifest.json").is_file()


def test_the_items_of_a_ranks_shards_are_counted_without_listing_them():
    for count, batch, shard, world in itertools.product([1, 5, 64, 65, 1000], [1, 3], [1, 6, 64], [1, 2, 3]):
        s = settings(count=count, batch_size=batch, shard_size=max(batch, math.ceil(shard / batch) * batch))
        for rank in range(world):
            assert _rank_items(s, rank, world) == sum(len(s.shard_items(k)) for k in range(rank, s.num_shards, world))
    assert _rank_items(settings(count=10**8, batch_size=1, shard_size=1), 0, 1) == 10**8  # no list of 10^8 shards


@pytest.mark.parametrize("make, named", [
    (lambda: OptimConfig(lr_g=NAN), "lr_g"), (lambda: OptimConfig(lr_d=-1.0), "lr_d"), (lambda: OptimConfig(betas=(0.9, 1.0)), "betas"),
    (lambda: LossConfig(gan_weight=NAN), "gan_weight"), (lambda: LossConfig(warmup_steps=-1), "warmup_steps"),
    (lambda: DiscriminatorConfig(r1_gamma=NAN), "r1_gamma"), (lambda: DiscriminatorConfig(r1_gamma=-1.0), "r1_gamma"),
    (lambda: SidConfig(kappa4=NAN), "kappa4"), (lambda: SidConfig(alpha=INF), "alpha"),
    (lambda: TrainConfig(seed=-1), "seed"), (lambda: TrainConfig(seed=2**64), "seed"), (lambda: TrainConfig(save_every=-1), "save_every"),
    (lambda: TrainConfig(batch_size=0), "batch_size"),
])
def test_training_configs_refuse_non_finite_and_negative_settings_by_name(make, named):
    with pytest.raises(ValueError, match=f"^{named} must be"):
        make()


def test_valid_extremes_of_the_training_configs_pass():
    TrainConfig(seed=2**64 - 1, save_every=0, log_every=0, optim=OptimConfig(lr_g=0.0, betas=(0.0, 0.999)),
                discriminator=DiscriminatorConfig(r1_gamma=0.0), sid=SidConfig(alpha=-10.0, kappa1=0.0))


def test_a_value_not_among_its_choices_is_named_with_the_choices():
    from onestep.ranges import check_choice

    check_choice("spacing", "linspace", ("linspace", "exponential"))
    with pytest.raises(ValueError, match=r"spacing must be one of \('linspace', 'exponential'\), not 'karras'"):
        check_choice("spacing", "karras", ["linspace", "exponential"])
