"""One table of latent spaces (onestep/latent_spaces.py, issue 15): names as files and ComfyUI write them, the bases and
the E-LatentLPIPS encoders read it, and the training CLI refuses data in a space it does not know by name."""
from __future__ import annotations

import argparse

import pytest

from onestep.bases import BASES
from onestep.latent_lpips.encoders import ENCODERS
from onestep.latent_spaces import LATENT_SPACES, latent_space


def test_a_space_is_found_by_its_file_name_and_by_comfyuis_name():
    for space in LATENT_SPACES.values():
        assert latent_space(space.name) is latent_space(space.comfy_format) is space
    assert latent_space("SDXL").scale == 0.13025 and latent_space("sd15").scale == 0.18215
    with pytest.raises(ValueError, match="unknown latent space 'SD_X4'.*sd15/SD15"):
        latent_space("SD_X4")


def test_bases_and_encoders_read_the_table():
    assert {b.latent_format for b in BASES.values()} <= set(LATENT_SPACES)
    assert set(ENCODERS) == {"sd15", "sd21", "sdxl", "sd3", "flux"}
    for space in LATENT_SPACES.values():
        for name in space.encoders or ():
            assert (ENCODERS[name].channels, ENCODERS[name].scale, ENCODERS[name].shift) == (space.channels, space.scale, space.shift)


def test_cli_choices_and_unknown_space(monkeypatch):
    from training import cli

    p = argparse.ArgumentParser()
    cli.add_train_arguments(p)
    choices = next(a.choices for a in p._actions if a.dest == "latent_format")
    assert choices == [s.comfy_format for s in LATENT_SPACES.values()]
    monkeypatch.setattr(cli, "_init_distributed", lambda: "cpu")
    monkeypatch.setattr(cli, "_training_data", lambda a, config, device: (None, "SD_X4", None, "x"))
    args = p.parse_args(["--teacher", "t", "--out", "o.safetensors", "--steps", "1"])
    with pytest.raises(SystemExit, match="latent format: unknown latent space 'SD_X4'"):
        cli.train(args)
