"""Mutated generator files through the loader the nodes use (issue 21): shapes and dtypes that safetensors and the
host-independent checks cannot judge end, in ComfyUI's own model building, in the pack's GeneratorFileError naming the
file — never a raw torch error (the node shows the message in the UI)."""
from __future__ import annotations

import random

import pytest
from reliability.test_fuzz_generator_files import TINY_NET, mutate

from tools.proof_scale_encoder import write_unet


@pytest.mark.parametrize("kind", ["shape", "dtype", "nonfinite"])
def test_mutated_weights_end_in_the_packs_error(tmp_path, kind):
    from onestep_nodes import generator_model as gm
    from onestep import format as fmt
    good = str(tmp_path / "good.safetensors")
    write_unet(good, "student", TINY_NET, seed=1)
    gm.load_generator_model(good)  # the seed file builds a MODEL
    rng = random.Random(7)
    for i in range(12):
        name = f"mut-{kind}-{i}.safetensors"
        mutate(kind, good, str(tmp_path / name), rng)
        with pytest.raises(fmt.GeneratorFileError, match=name.replace(".", r"\.")):
            gm.load_generator_model(str(tmp_path / name))
