"""The collector's ComfyUI adapter in-process with the real ComfyUI modules: batched prompt encoding equals
CLIP Text Encode per prompt (long and weighted prompts included)."""
import torch

from test_comfy_inprocess import F

PROMPTS = ["a red fox", "(a blue:1.4) bird on a (branch:0.7)", " ".join(["a very long prompt about many things"] * 20), "x"]


def test_batched_encoding_equals_clip_text_encode(tmp_path):
    from onestep_nodes import pair_collection as pc
    from onestep_nodes import generator_model as gm
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
