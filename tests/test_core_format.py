"""The generator file format: round trip, validation and atomic writes (no ComfyUI)."""
import json
import os

import pytest
import torch
from safetensors.torch import save_file

from onestep.format import GeneratorFileError, GeneratorMetadata, load_generator, read_metadata, save_generator


def unet_sd(channels=4, context=768):
    return {
        "input_blocks.0.0.weight": torch.randn(8, channels, 3, 3),
        "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": torch.randn(8, context),
        "out.2.weight": torch.randn(channels, 8, 3, 3),
    }


def meta(**kw):
    f = dict(method="diffusion2gan", base="sd15", prediction="eps", timestep=999, input_convention="sigma_z",
             latent_format="sd15", latent_channels=4, guidance=3.0, teacher_hash="ab12", training_steps=20000)
    f.update(kw)
    return GeneratorMetadata(**f)


def test_round_trip(tmp_path):
    p = tmp_path / "g.safetensors"
    sd = unet_sd()
    save_generator(p, sd, meta(notes={"licence": "CC-BY-NC"}))
    sd2, m = load_generator(p)
    assert m == meta(notes={"licence": "CC-BY-NC"})
    assert m.spec().sigma == pytest.approx(14.6146, abs=1e-3)
    assert all(torch.equal(sd[k], sd2[k]) for k in sd)
    assert read_metadata(p).guidance == 3.0


def test_header_is_flat_and_readable(tmp_path):
    p = tmp_path / "g.safetensors"
    save_generator(p, unet_sd(), meta())
    header = json.loads(open(p, "rb").read()[8:8 + int.from_bytes(open(p, "rb").read(8), "little")])["__metadata__"]
    assert header["onestep.format"] == "onestep-generator"
    assert header["onestep.method"] == "diffusion2gan" and header["onestep.timestep"] == "999"


@pytest.mark.parametrize("case, message", [
    ("plain", "no 'onestep.format' metadata"),
    ("foreign", "foreign metadata"),
    ("truncated", "truncated or corrupt"),
    ("channels", "16 latent channels but the UNet takes 4"),
    ("base", "base sdxl"),
    ("version", "format version 9"),
    ("missing", "lacks prediction"),
    ("pickle", "generators are .safetensors files"),
])
def test_bad_files_are_named(tmp_path, case, message):
    p = tmp_path / "bad.safetensors"
    good = meta().to_header()
    if case == "plain":
        save_file(unet_sd(), p)
    elif case == "foreign":
        save_file(unet_sd(), p, metadata={**good, "onestep.format": "something-else"})
    elif case == "truncated":
        save_generator(p, unet_sd(), meta())
        data = open(p, "rb").read()
        open(p, "wb").write(data[: len(data) // 2])
    elif case == "channels":
        save_file(unet_sd(), p, metadata={**good, "onestep.latent_channels": "16"})
    elif case == "base":
        save_file(unet_sd(), p, metadata={**good, "onestep.base": "sdxl", "onestep.latent_format": "sdxl"})
    elif case == "version":
        save_file(unet_sd(), p, metadata={**good, "onestep.format_version": "9"})
    elif case == "missing":
        save_file(unet_sd(), p, metadata={k: v for k, v in good.items() if k != "onestep.prediction"})
    elif case == "pickle":
        p = tmp_path / "bad.ckpt"
        torch.save(unet_sd(), p)
    with pytest.raises(GeneratorFileError, match=message):
        load_generator(p)


def test_failed_save_leaves_nothing(tmp_path):
    p = tmp_path / "g.safetensors"
    with pytest.raises(GeneratorFileError):
        save_generator(p, unet_sd(channels=3), meta())
    assert os.listdir(tmp_path) == []

    save_generator(p, unet_sd(), meta())
    before = open(p, "rb").read()
    with pytest.raises(Exception):
        save_generator(p, {**unet_sd(), "x": "not a tensor"}, meta())
    assert open(p, "rb").read() == before and os.listdir(tmp_path) == ["g.safetensors"]


def test_invalid_metadata_values():
    with pytest.raises(GeneratorFileError, match="unknown method"):
        meta(method="magic")
    with pytest.raises(GeneratorFileError, match="timestep"):
        meta(timestep=1500)


def test_atomic_writes_keep_the_normal_permissions(tmp_path):
    """Files written atomically are readable as a plain open() would make them (0666 less the umask), not private."""
    import os

    from onestep.atomic import atomic_write

    mask = os.umask(0o027)
    try:
        import importlib

        import onestep.atomic as atomic
        importlib.reload(atomic)  # the umask is read at import
        atomic.atomic_write(str(tmp_path / "a.bin"), lambda tmp: open(tmp, "wb").write(b"x"))
        assert os.stat(tmp_path / "a.bin").st_mode & 0o777 == 0o640
    finally:
        os.umask(mask)
        importlib.reload(atomic)
    atomic_write(str(tmp_path / "b.bin"), lambda tmp: open(tmp, "wb").write(b"y"))
    assert os.stat(tmp_path / "b.bin").st_mode & 0o777 == 0o666 & ~mask
    import torch
    from safetensors.torch import save_file

    atomic_write(str(tmp_path / "c.safetensors"), lambda tmp: save_file({"a": torch.zeros(2)}, tmp))  # safetensors writes a private file
    assert os.stat(tmp_path / "c.safetensors").st_mode & 0o777 == 0o666 & ~mask
