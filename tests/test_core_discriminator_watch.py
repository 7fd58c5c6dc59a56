"""The trainer's alarm for a discriminator that stopped learning (training/discriminator_watch.py): replayed on every
proof-scale GAN record, and wired through a training session to the log and the node's text."""
from __future__ import annotations

import glob
import json
import logging
import math
import os

import pytest
from test_core_training_fixtures import PairsDataset, config, tiny_elpips, tiny_unet

from training.discriminator_watch import DiscriminatorWatch
from training.session import TrainingSession

RESULTS = os.path.join(os.path.dirname(__file__), "..", "benchmarks", "results")


def record(name: str) -> str:
    (path,) = glob.glob(os.path.join(RESULTS, "proof_scale_h200_" + name, "history.json"))
    return path


def replay(path: str, watch: DiscriminatorWatch) -> list[tuple[int, str]]:
    """Feed a run's history.json to the watch step by step, as the session does; the (step, warning) pairs it gave."""
    with open(path, encoding="utf-8") as f:
        history = json.load(f)
    per_step: dict[int, dict] = {}
    for key, points in history.items():
        for step, value in points:
            per_step.setdefault(step, {})[key] = value
    notes = [(step, watch(step, per_step[step])) for step in sorted(per_step)]
    return [(step, note) for step, note in notes if note]


def test_the_notice_names_the_cause_and_the_setting_to_change():
    (step, note), = replay(record("run21/hi_lr/distill/gan_continued_lr1e-4"), DiscriminatorWatch(5e-4))  # D at lr 5e-4
    assert f"stopped learning by step {step}" in note and "mean |score gap| 9.9e-04" in note and "lr_d, now 0.0005" in note


# Every proof-scale GAN record: the Ds the run notes call flat (run 10: fooled within 25 steps; run 11: R1 + β1 = 0;
# run 19: the pre-engine settings, β2 0.999; runs 21, 22, 24: a high lr_d, a large GAN share) and the live ones (run 12
# on: β2 0.99; run 24's decoder D at gan_weight 0.5; run 25's Ds with the minibatch std or on t ≤ 10), with the steps each flat one is reported dead ("stopped") and
# learning again ("again") at — a 100-step window after the change. Run 10's standard D and run 19's seed-1 D came back for a few dozen steps and were fooled
# again; run 22's D at gan_weight 0.5 was flat for ~200 steps and then stayed alive to its end.
FLAT = {"run10/distill/gan_relativistic": [(466, "stopped")],
        "run10/distill/gan_standard": [(327, "stopped"), (1180, "again"), (1299, "stopped"), (2624, "again"), (2759, "stopped")],
        "run11/distill/gan_full_d": [(117, "stopped")], "run11/distill/gan_lora_d": [(1589, "stopped")],
        "run19/engine_seed0/distill/*": [(300, "stopped")], "run19/engine_seed1/distill/*": [(300, "stopped"), (354, "again")],
        "run21/hi_lr/distill/gan_continued_lr1e-4": [(399, "stopped")],
        "run22/gan_share/distill/gan_weight_0.5": [(708, "stopped"), (784, "again")],
        "run22/gan_share/distill/gan_weight_1.0": [(424, "stopped")], "run22/gan_share/distill/gan_weight_2.0": [(424, "stopped")],
        "run24/d_readout/distill/decoder_gan_weight_1.0": [(503, "stopped")],
        "run24/d_readout/distill/encoder_gan_weight_1.0_d_eps_1e-5": [(432, "stopped")]}
LIVE = ["run12/distill/gan_a_beta2_099", "run12/distill/gan_b_fixed_lambda", "run12/distill/gan_c_d_beta1_0",
        "run13/distill/gan_a_160k_heun", "run13/distill/gan_w1_aw", "run14/distill/gan_a_lr3e-5", "run14/distill/gan_a_lr6e-5",
        "run15/distill/gan_continued", "run24/d_readout/distill/decoder_gan_weight_0.5",
        "run25/mbstd_t10/distill/mb4_t100", "run25/mbstd_t10/distill/t10", "run25/mbstd_t10/distill/mb4_t10"]


def kind(note: str) -> str:
    return "stopped" if "stopped learning" in note else "again" if "learns again" in note else note


@pytest.mark.parametrize("name", sorted(FLAT))
def test_every_flat_discriminator_on_record_is_reported(name):
    assert [(step, kind(note)) for step, note in replay(record(name), DiscriminatorWatch(1e-4))] == FLAT[name]


@pytest.mark.parametrize("name", LIVE)
def test_no_live_discriminator_on_record_is_reported(name):
    assert replay(record(name), DiscriminatorWatch(1e-4)) == []


def test_the_discriminator_that_overpowered_run_43s_generator_is_reported_and_no_other_on_record():
    # run 43 row A: D's losses fell from ~0.5 to ~1e-4 from step ~1,085 while its val FD went from 10.7 (step 1,000) to 64.6
    (step, note), = replay(record("run43/distill/instaflow_gan_fixed01"), DiscriminatorWatch(1.5e-4))
    assert step == 1120 and "overpowered the generator by step 1120" in note and "lr_d, now 0.00015" in note
    assert "in balance around step 1070" in note  # the window, and as much again, before the report
    # every other GAN record (standard and relativistic losses, Diffusion2GAN and InstaFlow): none overpowered
    others = [p for p in glob.glob(os.path.join(RESULTS, "proof_scale_h200_*", "**", "history.json"), recursive=True)
              if "instaflow_gan_fixed01" not in p]
    checked = 0
    for path in others:
        with open(path, encoding="utf-8") as f:
            logged = json.load(f)
        if "d_real" not in logged and "d_pair" not in logged:
            continue
        checked += 1
        assert not [n for _, n in replay(path, DiscriminatorWatch(1e-4)) if "overpowered" in n], path
    assert checked >= 40


def test_overpowering_is_reported_once_and_its_end_noted():
    watch = DiscriminatorWatch(1e-4)
    balanced, winning = {"d_gap": 0.5, "grad_norm_d": 1.0, "d_real": 0.5, "d_fake": 0.6}, {"d_gap": 20.0, "grad_norm_d": 0.01, "d_real": 1e-4, "d_fake": 2e-4}
    assert all(watch(s, balanced) is None for s in range(1, 31))
    notes = [(s, watch(s, winning)) for s in range(31, 80)]
    assert [(s, "overpowered" in n) for s, n in notes if n] == [(s, True) for s, n in notes if n] and len([n for _, n in notes if n]) == 1
    first = next(s for s, n in notes if n)
    assert first < 31 + 25  # before the whole window is the winner's: its mean falls under the floor sooner
    back = [(s, watch(s, balanced)) for s in range(80, 130)]
    assert [("back in balance" in n) for _, n in back if n] == [True]
    relativistic = DiscriminatorWatch(1e-4)
    assert all(relativistic(s, {"d_gap": 0.3, "grad_norm_d": 1.0, "d_pair": 0.4}) is None for s in range(1, 30))
    assert any(relativistic(s, {"d_gap": 20.0, "grad_norm_d": 0.01, "d_pair": 1e-4}) for s in range(30, 60))


def test_reported_once_a_full_window_after_d_died_and_not_for_steps_without_d():
    watch = DiscriminatorWatch(1e-4, window=3)
    assert watch(0, {"regression": 0.1}) is None  # regression-only steps (before D starts) are not counted
    assert all(watch(s, {"d_gap": 0.05, "grad_norm_d": 1.0}) is None for s in range(1, 21))  # alive: its start
    assert watch(21, {"d_gap": 0.0, "grad_norm_d": 1e-3}) is None and watch(22, {"d_gap": 0.0, "grad_norm_d": 1e-3}) is None
    assert watch(23, {"d_gap": 0.0, "grad_norm_d": 1e-3}) is not None
    assert watch(24, {"d_gap": 0.0, "grad_norm_d": 1e-3}) is None  # once while it stays flat
    assert watch(25, {"d_gap": 2e-3, "grad_norm_d": 1.0}) is None  # not yet back: the window's gap is under REVIVE_GAP
    assert watch(26, {"d_gap": 0.05, "grad_norm_d": 1e-3}) is None  # a gap alone is not enough: its gradient is still down
    assert "learns again by step 27" in watch(27, {"d_gap": 0.05, "grad_norm_d": 1.0})
    assert all(watch(s, {"d_gap": 0.0, "grad_norm_d": 1e-3}) is None for s in (28, 29))
    assert "stopped learning by step 30" in watch(30, {"d_gap": 0.0, "grad_norm_d": 1e-3})  # and dead again
    live = DiscriminatorWatch(1e-4, window=3)
    assert all(live(s, {"d_gap": g, "grad_norm_d": 1.0}) is None for s, g in enumerate([0.02, -0.01, 0.03, 0.0, 0.0]))


def test_a_discriminator_slow_to_start_is_not_reported():
    # a fresh head's gap is tiny at a large batch, and a small lr_d keeps it there a while; its gradient has not collapsed
    watch = DiscriminatorWatch(1e-5)
    assert all(watch(s, {"d_gap": 2e-4, "grad_norm_d": 0.04 + 0.01 * (s % 3)}) is None for s in range(1, 500))
    assert watch(500, {"d_gap": 2e-4, "grad_norm_d": 0.04}) is None


def test_a_session_logs_the_notice_and_keeps_it_for_the_node(tmp_path, caplog):
    session = TrainingSession(tiny_unet(), config(), PairsDataset(), str(tmp_path / "run"), tiny_elpips())
    # thresholds no D can pass: the wiring, not the thresholds, is under test here
    session.trainer.method.watch = DiscriminatorWatch(1e-3, window=2, gap_floor=math.inf, grad_drop=math.inf)
    with caplog.at_level(logging.WARNING, logger="onestep"):
        session.run(3)
    assert len(session.warnings) == 1 and "stopped learning by step 2" in session.warnings[0]
    assert any("stopped learning" in r.getMessage() for r in caplog.records)
    regression = TrainingSession(tiny_unet(), config(discriminator={"enabled": False}), PairsDataset(), None, tiny_elpips())
    regression.run(2)
    assert regression.warnings == []
