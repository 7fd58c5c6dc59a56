"""Importers of released one-step models, on small files in exactly their layouts (no ComfyUI)."""
import os

import pytest
import torch

from diffusers_fixtures import dmd2_state_dict, evil_pickle, instaflow_folder, sid_lsg_pickle, tiny_unet
from onestep.cli import main as cli
from onestep.format import load_generator
from onestep.importers import IMPORTERS
from onestep.importers.common import ImportSourceError
from onestep.importers.restricted_pickle import RestrictedUnpickler, extract_module, find_module
from onestep.unet_keys import diffusers_to_ldm


@pytest.fixture(scope="module")
def unet():
    return tiny_unet()


def test_instaflow_folder(tmp_path, unet):
    src = instaflow_folder(str(tmp_path / "instaflow"), unet)
    dest = tmp_path / "out" / "instaflow.safetensors"
    IMPORTERS["instaflow"](src, str(dest))
    sd, m = load_generator(dest)
    assert (m.method, m.base, m.prediction, m.timestep) == ("instaflow", "sd15", "flow", 1000)
    ref = diffusers_to_ldm(unet.state_dict())
    assert set(sd) == set(ref) and all(torch.equal(sd[k], ref[k]) for k in sd)


def test_dmd2_state_dict(tmp_path, unet):
    src = dmd2_state_dict(str(tmp_path / "pytorch_model.bin"), unet)
    dest = tmp_path / "dmd2.safetensors"
    assert cli(["import", "dmd2", src, str(dest), "--guidance", "1.75"]) == 0
    _, m = load_generator(dest)
    assert (m.method, m.prediction, m.timestep, m.input_convention, m.guidance) == ("dmd2", "eps", 999, "raw_z", 1.75)


def test_sid_lsg_needs_opt_in(tmp_path, unet):
    src = sid_lsg_pickle(str(tmp_path / "sid.pkl"), unet)
    dest = tmp_path / "sid.safetensors"
    with pytest.raises(ImportSourceError, match="allow_pickle"):
        IMPORTERS["sid-lsg"](src, str(dest))
    assert cli(["import", "sid-lsg", src, str(dest)]) == 2
    assert not dest.exists()
    IMPORTERS["sid-lsg"](src, str(dest), allow_pickle=True, guidance=1.5)
    sd, m = load_generator(dest)
    assert (m.method, m.timestep, m.input_convention, m.guidance) == ("sid-lsg", 625, "sigma_z", 1.5)
    ref = diffusers_to_ldm(unet.state_dict())
    assert all(torch.equal(sd[k], ref[k]) for k in ref)


def test_restricted_unpickler_refuses_code(tmp_path, unet):
    if os.path.exists("/tmp/onestep_pwned"):
        os.remove("/tmp/onestep_pwned")
    src = evil_pickle(str(tmp_path / "evil.pkl"), unet)
    dest = tmp_path / "evil.safetensors"
    with pytest.raises(ImportSourceError, match="posix.system|os.system"):
        IMPORTERS["sid-lsg"](src, str(dest), allow_pickle=True)
    assert not os.path.exists("/tmp/onestep_pwned") and not dest.exists()


class _Payload:
    """Unpickled by a plain unpickler, this runs `echo pwned > marker`."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"echo pwned > {self.marker}",))


@pytest.mark.parametrize("allow_pickle", [False, True], ids=["no_opt_in", "opt_in"])
@pytest.mark.parametrize("kind,ext,writer", [("sid-lsg", "pkl", "pickle"), ("dmd2", "pt", "torch"), ("dmd2", "ckpt", "pickle")])
def test_a_malicious_pickle_runs_nothing_with_or_without_opt_in(tmp_path, unet, kind, ext, writer, allow_pickle):
    """The opt-in reads SiD-LSG pickles with the restricted unpickler, other torch files with weights_only: a pickle
    that calls os.system is refused by name either way, and the command never runs."""
    import pickle

    marker = tmp_path / "pwned"
    src, dest = str(tmp_path / f"evil.{ext}"), tmp_path / "evil.safetensors"
    obj = {"ema": unet, "state_dict": unet.state_dict(), "payload": _Payload(marker)}
    if writer == "torch":
        torch.save(obj, src)
    else:
        with open(src, "wb") as f:
            pickle.dump(obj, f)
    with pytest.raises(ImportSourceError) as refused:
        IMPORTERS[kind](src, str(dest), allow_pickle=allow_pickle)
    message = str(refused.value)
    if kind == "sid-lsg" and not allow_pickle:
        assert "allow_pickle" in message, message
    elif kind == "sid-lsg":  # the restricted unpickler names the call it refused
        assert "system" in message, message
    else:  # weights_only names the first code the file refers to (the UNet class in a torch.save), or its reason
        assert "not a plain weights file" in message and ("it names" in message if writer == "torch" else True), message
    assert f"evil.{ext}" in message and "weights_only` set to `False`" not in message and "\x1b" not in message, message
    assert not marker.exists() and not dest.exists()


def test_restricted_unpickler_reads_module_state(tmp_path, unet):
    src = sid_lsg_pickle(str(tmp_path / "sid.pkl"), unet)
    with open(src, "rb") as f:
        obj = RestrictedUnpickler(f).load()
    sd, config = extract_module(find_module(obj, "UNet2DConditionModel"))
    ref = unet.state_dict()
    assert set(sd) == set(ref) and all(torch.equal(sd[k], ref[k]) for k in ref)
    assert config["cross_attention_dim"] == 768


def test_bad_sources_are_named(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImportSourceError, match="unet/config.json is missing"):
        IMPORTERS["instaflow"](str(tmp_path / "empty"), str(tmp_path / "x.safetensors"))
    torch.save({"a": torch.zeros(2)}, tmp_path / "notunet.bin")
    with pytest.raises(ImportSourceError, match="not an SD-family UNet"):
        IMPORTERS["dmd2"](str(tmp_path / "notunet.bin"), str(tmp_path / "x.safetensors"))
    with open(tmp_path / "obj.bin", "wb") as f:
        torch.save({"m": torch.nn.Linear(2, 2)}, f)  # a pickled module: weights_only refuses it
    with pytest.raises(ImportSourceError, match="weights_only"):
        IMPORTERS["dmd2"](str(tmp_path / "obj.bin"), str(tmp_path / "x.safetensors"))
    assert not (tmp_path / "x.safetensors").exists()
