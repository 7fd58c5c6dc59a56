"""The collector's ComfyUI adapter in-process with the real ComfyUI modules: batched prompt encoding equals
CLIP Text Encode per prompt (long and weighted prompts included)."""
import importlib

import torch

from test_comfy_inprocess import F, pack  # noqa: F401  (fixture: the repo imported as ComfyUI imports it)

PROMPTS = ["a red fox", "(a blue:1.4) bird on a (branch:0.7)", " ".join(["a very long prompt about many things"] * 20), "x"]


def test_batched_encoding_equals_clip_text_encode(pack, tmp_path):  # noqa: F811
    pc = importlib.import_module(f"{pack.__name__}.nodes.pair_collection")
    gm = importlib.import_module(f"{pack.__name__}.nodes.generator_model")
    F.write_generator(str(tmp_path / "g.safetensors"))
    model = gm.load_generator_model(str(tmp_path / "g.safetensors"))
    clip = F.clip_l()
    s = pc.settings_for(model, clip, PROMPTS, "", "euler", "normal", 2, 5.0, 0, 4, 64, 64, 4, 4)
    teacher = pc.ComfyTeacher(model, clip, PROMPTS, "", s)
    teacher.encode([0, 1, 2, 3])
    for j, text in enumerate(PROMPTS):
        want = clip.encode_from_tokens(clip.tokenize(text))
        got = teacher.conditioning(j)["cond"]
        assert got.shape == want.shape, (j, got.shape, want.shape)
        assert torch.allclose(got, want.float(), atol=1e-5, rtol=1e-5), (j, (got - want).abs().max())
    assert teacher.conditioning(2)["cond"].shape[1] == 154  # the long prompt has two chunks
