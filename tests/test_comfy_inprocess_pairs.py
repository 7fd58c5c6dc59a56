"""The collector's ComfyUI adapter in-process with the real ComfyUI modules: batched prompt encoding equals
CLIP Text Encode per prompt (long and weighted prompts included); the teacher's UNet calls routed through the
CUDA-graph wrapper (fast_teacher) give core's latents, for SD1.5- and SDXL-architecture teachers, and its eligibility
checks (the SDXL refiner's label vector and other per-call extras keep core's path)."""
import pytest
import torch

from test_comfy_inprocess import F

import comfy.sample  # noqa: E402  (after test_comfy_inprocess set the host to the CPU)

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


def _tiny_teacher(tmp_path, prompts=PROMPTS[:2], steps=3):
    from onestep_nodes import pair_collection as pc
    from onestep_nodes import generator_model as gm
    F.write_generator(str(tmp_path / "g.safetensors"))
    model, clip = gm.load_generator_model(str(tmp_path / "g.safetensors")), F.clip_l()
    s = pc.settings_for(model, clip, prompts, "blurry", "euler", "normal", steps, 5.0, 3, 2, 64, 64, 2, 2)
    return pc.ComfyTeacher(model, clip, prompts, "blurry", s)


def test_the_collector_encodes_each_shards_prompts_in_one_call(tmp_path, monkeypatch):
    from onestep.pairs.collect import collect, open_dataset
    from onestep_nodes import pair_collection as pc
    from onestep_nodes import generator_model as gm
    F.write_generator(str(tmp_path / "g.safetensors"))
    model, clip = gm.load_generator_model(str(tmp_path / "g.safetensors")), F.clip_l()
    prompts = [PROMPTS[0], PROMPTS[1], PROMPTS[3], "a green hill"]
    s = pc.settings_for(model, clip, prompts, "", "euler", "normal", 1, 5.0, 0, 8, 64, 64, 2, 4)  # 2 shards × 2 batches
    teacher = pc.ComfyTeacher(model, clip, prompts, "", s)
    calls = []
    real = clip.encode_from_tokens
    monkeypatch.setattr(clip, "encode_from_tokens", lambda tokens, **kw: calls.append(1) or real(tokens, **kw))
    out = str(tmp_path / "pairs")
    assert collect(out, open_dataset(out, s, prompts, {}), teacher) == [0, 1]
    assert len(calls) == 1  # shard 0's four prompts at once (per batch it was two calls); shard 1 finds them cached
    for j, text in enumerate(prompts):
        assert torch.allclose(teacher.conditioning(j)["cond"], real(clip.tokenize(text)).float(), atol=1e-5, rtol=1e-5)
    monkeypatch.setattr(pc, "ENCODE_BATCH", 3)  # a shard's prompts beyond a call's worth go in several calls
    calls.clear()
    fresh = pc.ComfyTeacher(model, clip, prompts, "", s)
    fresh.encode([0, 1, 2, 3])
    assert len(calls) == 1 + 2 and all(j in fresh._cache for j in range(4))  # the negative, then 3 + 1 prompts


def _eager_runner(calls):
    def run(key, fn, inputs, compile_mode):  # the graph's function, called as capture would call it, with no graph
        calls.append((key, compile_mode))
        return fn(**inputs)
    return run


def test_graphed_teacher_calls_equal_core_sampling(tmp_path):
    """fast_teacher inside core's sampling: where graphs are impossible (CPU) the wrapper falls back to core's call, and
    the call the graph would replay (apply_model(x, t, c_crossattn) alone) gives bit-identical latents to core's."""
    from onestep_nodes import unet_graphs as ug
    teacher = _tiny_teacher(tmp_path)
    noise = torch.cat([teacher.noise(3), teacher.noise(4)])
    core = teacher.sample(noise, [0, 1], None)
    assert teacher.last_wrapper is None and teacher.fast_teacher_summary() is None  # off: nothing to tell
    teacher.fast_teacher = "cuda graph"
    assert torch.equal(teacher.sample(noise, [0, 1], None), core) and teacher.last_wrapper is None  # not CUDA: core's path
    assert teacher.fast_teacher_summary() == "fast_teacher 'cuda graph' not used: not a CUDA device; every UNet call ran on core's path"

    positive, negative = teacher._batch_cond([0, 1]), teacher._batch_cond([-1])
    model, wrapper = ug.with_graphed_unet(teacher.model, positive, negative, "cuda graph", runner=_eager_runner([]))
    forced = ug.GraphedUNet("cuda graph")  # the real graph runner, installed although graphs are impossible here
    clone = teacher.model.clone()
    clone.set_model_unet_function_wrapper(forced)
    out = comfy.sample.sample(clone, noise, 3, 5.0, "euler", "normal", positive, negative, torch.zeros_like(noise), seed=3, disable_pbar=True)
    assert torch.equal(out, core) and forced.replayed == 0 and forced.fallbacks == 3  # cond+uncond in one call per step
    assert forced.summary() == ("fast_teacher 'cuda graph': 0 of 3 UNet calls replayed from CUDA graphs; "
                                "core's path for 3 (x on cpu, not a CUDA device)")

    calls = []
    teacher.graph_runner = _eager_runner(calls)
    assert torch.equal(teacher.sample(noise, [0, 1], None), core)
    assert teacher.last_wrapper.replayed == 3 and teacher.last_wrapper.fallbacks == 0 and len(calls) == 3
    assert teacher.fast_teacher_summary() == "fast_teacher 'cuda graph': 3 of 3 UNet calls replayed from CUDA graphs"
    shapes = {name: shape for name, shape, _ in calls[0][0][3]}
    assert shapes == {"x": (4, 4, 8, 8), "sigma": (4,), "context": (4, 77, 768)} and calls[0][1] is None  # one batch of cond
    # + uncond, no y (an SDXL call's key names y: the two never share a graph); no compile in this mode
    wrapper_1 = teacher.last_wrapper
    assert torch.equal(teacher.sample(noise, [0, 1], None), core) and teacher.last_wrapper is wrapper_1  # the clone is kept
    assert wrapper_1.replayed == 6 and len(calls) == 6
    teacher.fast_teacher = "compile + cuda graph (slow first run)"
    compiled = teacher.sample(noise, [0, 1], None)  # the compiled mode traces a view with the UNet's upsampling in
    assert calls[-1][1] == "default" and (compiled - core).abs().max() <= 1e-5 * core.abs().max()  # sub-pixel form
    assert model is not teacher.model and wrapper is not None


def test_a_failed_capture_falls_back_and_the_summary_says_what_failed(tmp_path):
    teacher = _tiny_teacher(tmp_path)
    noise = torch.cat([teacher.noise(3), teacher.noise(4)])
    core = teacher.sample(noise, [0, 1], None)

    def broken(key, fn, inputs, compile_mode):
        raise RuntimeError("operation not permitted when stream is capturing\nmore lines")
    teacher.fast_teacher, teacher.graph_runner = "cuda graph", broken
    assert torch.equal(teacher.sample(noise, [0, 1], None), core)  # the run goes on, on core's path
    assert teacher.fast_teacher_summary() == (
        "fast_teacher 'cuda graph': 0 of 3 UNet calls replayed from CUDA graphs; core's path for 2 (the graph path failed "
        "earlier in this run), 1 (capture failed: operation not permitted when stream is capturing)")


def test_graphed_teacher_eligibility(tmp_path):
    """What keeps core's path: a model-level patch or wrapper, a ControlNet-style key, per-call extras; a bad mode."""
    from onestep_nodes import unet_graphs as ug
    teacher = _tiny_teacher(tmp_path)
    positive, negative = teacher._batch_cond([0]), teacher._batch_cond([-1])
    assert ug.model_reason(teacher.model, positive, negative, need_cuda=False) is None
    assert ug.model_reason(teacher.model, positive, negative) == "not a CUDA device"
    patched = teacher.model.clone()
    patched.set_model_attn1_patch(lambda q, k, v, extra: (q, k, v))
    assert ug.model_reason(patched, positive, negative, need_cuda=False) == "transformer patches"
    wrapped = teacher.model.clone()
    wrapped.set_model_unet_function_wrapper(lambda f, a: f(a["input"], a["timestep"], **a["c"]))
    assert ug.model_reason(wrapped, positive, negative, need_cuda=False) == "model wrappers"
    assert ug.with_graphed_unet(wrapped, positive, negative, "cuda graph", runner=_eager_runner([]))[1] is None
    control = [[positive[0][0], {**positive[0][1], "control": object()}]]
    assert "control" in ug.model_reason(teacher.model, control, negative, need_cuda=False)
    with pytest.raises(ValueError, match="fast_teacher"):
        ug.with_graphed_unet(teacher.model, positive, negative, "fastest")

    import comfy.model_management as mm
    mm.load_models_gpu([teacher.model])
    base, x = teacher.model.model, torch.zeros(2, 4, 8, 8)
    base.current_patcher = None  # outside sampling: no patcher says the model is loaded
    assert ug.call_reason(base, {"input": x, "timestep": torch.ones(2), "c": {"c_crossattn": torch.zeros(2, 77, 768)}},
                          need_cuda=False) == "model only partly on the GPU"
    base.current_patcher = teacher.model  # what core's sampling sets (ModelPatcher.pre_run)
    ctx = torch.zeros(2, 77, 768)
    plain = {"input": x, "timestep": torch.ones(2), "c": {"c_crossattn": ctx, "transformer_options": {
        "cond_or_uncond": [0, 1], "uuids": [None, None], "sigmas": torch.ones(1), "wrappers": {}}}}
    assert ug.call_reason(base, plain, need_cuda=False) is None
    assert ug.call_reason(base, plain) == "x on cpu, not a CUDA device"
    # core keeps the conditioning on the CPU while x is on the GPU (the H200's 75 of 75 refusals): the call is eligible
    # and the replay gets every input on x's device (meta stands in for CUDA here)
    on_gpu = {**plain, "input": x.to("meta"), "timestep": torch.ones(2).to("meta")}
    assert ug.call_reason(base, on_gpu, need_cuda=False) is None
    seen = {}
    wrapper = ug.GraphedUNet("cuda graph", runner=lambda key, fn, inputs, mode: seen.update(inputs) or inputs["x"])
    wrapper._replay(base, on_gpu)
    assert {k: v.device.type for k, v in seen.items()} == {"x": "meta", "sigma": "meta", "context": "meta"}
    assert ug.call_reason(base, {**plain, "c": {"transformer_options": {}}}, need_cuda=False) == "call carries no c_crossattn"
    assert ug.call_reason(base, {**plain, "c": {**plain["c"], "y": torch.zeros(2, 8)}}, need_cuda=False) == "call carries ['y']"
    patches = {**plain["c"]["transformer_options"], "patches": {"attn1_patch": [None]}}
    assert ug.call_reason(base, {**plain, "c": {**plain["c"], "transformer_options": patches}}, need_cuda=False) == "transformer_options carry ['patches']"
    hooked = {**plain["c"]["transformer_options"], "wrappers": {"apply_model": {"x": [print]}}}
    assert "wrappers" in ug.call_reason(base, {**plain, "c": {**plain["c"], "transformer_options": hooked}}, need_cuda=False)


SDXL_SIZE = (1536, 1024, 16, 48, 768, 1024, 1024, 1024, 0, 0, 1024, 1024)  # the prompts' and the negative's (manifest order)


def _tiny_sdxl_teacher(tmp_path, steps=3):
    """A reduced-width SDXL teacher (model_base.SDXL: y = pooled text + six size embeddings) at a non-square size, with
    CLIP Text Encode SDXL-style sizes that differ between the prompts and the negative."""
    from onestep_nodes import pair_collection as pc
    from onestep_nodes import generator_model as gm
    heads = {k: F.TINY_SDXL_UNET[k] for k in ("num_heads", "num_head_channels")}
    F.write_generator(str(tmp_path / "sdxl.safetensors"), F.TINY_SDXL_UNET, seed=3, method="teacher", base="sdxl",
                      latent_format="sdxl", unet_config=heads)
    model, clip = gm.load_generator_model(str(tmp_path / "sdxl.safetensors")), F.sdxl_clip()
    s = pc.settings_for(model, clip, PROMPTS[:2], "blurry", "euler", "normal", steps, 5.0, 3, 2, 64, 80, 2, 2, sdxl_size=SDXL_SIZE)
    return pc.ComfyTeacher(model, clip, PROMPTS[:2], "blurry", s)


def test_graphed_sdxl_teacher_calls_equal_core_sampling(tmp_path):
    """An SDXL teacher's calls carry core's per-call y: the wrapper replays them (y one more static input, its shape in
    the graph key) and gives bit-identical latents to core's sampling."""
    import comfy.model_base
    teacher = _tiny_sdxl_teacher(tmp_path)
    assert type(teacher.model.model) is comfy.model_base.SDXL
    noise = torch.cat([teacher.noise(3), teacher.noise(4)])
    core = teacher.sample(noise, [0, 1], None)
    calls = []
    teacher.fast_teacher, teacher.graph_runner = "cuda graph", _eager_runner(calls)
    assert torch.equal(teacher.sample(noise, [0, 1], None), core)
    assert teacher.last_wrapper.replayed == 3 and teacher.last_wrapper.fallbacks == 0 and len(calls) == 3
    shapes = {name: shape for name, shape, _ in calls[0][0][3]}
    assert shapes == {"x": (4, 4, 10, 8), "sigma": (4,), "context": (4, 77, 2048), "y": (4, 2816)}


def _tiny_refiner():
    """Core's SDXL refiner class (its y holds an aesthetic score, not the target size) at the SDXL fixture's width."""
    import comfy.model_patcher
    import comfy.supported_models
    config = {**F.TINY_SDXL_UNET, "context_dim": 1280, "adm_in_channels": 2560}
    model_config = comfy.supported_models.SDXLRefiner(config)
    model_config.unet_config.update(config)  # the fixture's heads over the class's SDXL-width defaults
    base = model_config.get_model({})
    F.randomize(base.diffusion_model, seed=4)
    return comfy.model_patcher.ModelPatcher(base, load_device=torch.device("cpu"), offload_device=torch.device("cpu"))


def test_graphed_teacher_leaves_other_vector_conditioning_to_core(tmp_path, caplog):
    """The refiner's y (or any adm but SDXL's) and anything besides c_crossattn and y in an SDXL call keep core's path:
    refused before sampling with the reason logged, and call by call where the wrapper is installed anyway."""
    from onestep_nodes import unet_graphs as ug
    refiner = _tiny_refiner()
    g = torch.Generator().manual_seed(0)
    positive = [[torch.randn(1, 77, 1280, generator=g), {"pooled_output": torch.randn(1, 1280, generator=g)}]]
    negative = [[torch.zeros(1, 77, 1280), {"pooled_output": torch.zeros(1, 1280)}]]
    with caplog.at_level("INFO", logger="onestep"):
        assert ug.with_graphed_unet(refiner, positive, negative, "compile + cuda graph (slow first run)",
                                    runner=_eager_runner([])) == (refiner, None)
    assert "not used: vector (adm) conditioning other than SDXL's" in caplog.text
    aesthetic = [[positive[0][0], {**positive[0][1], "aesthetic_score": 6.0}]]
    assert ug.model_reason(refiner, aesthetic, negative, need_cuda=False) == "conditioning carries ['aesthetic_score']"

    noise = torch.randn(1, 4, 8, 8, generator=g)
    sample = lambda m: comfy.sample.sample(m, noise, 2, 5.0, "euler", "normal", positive, negative, torch.zeros_like(noise),  # noqa: E731
                                           seed=1, disable_pbar=True)
    core = sample(refiner)
    calls = []
    forced = ug.GraphedUNet("cuda graph", runner=_eager_runner(calls))  # installed although the model check refuses
    clone = refiner.clone()
    clone.set_model_unet_function_wrapper(forced)
    assert torch.equal(sample(clone), core) and forced.replayed == 0 and forced.fallbacks == 2 and not calls

    teacher = _tiny_sdxl_teacher(tmp_path)
    import comfy.model_management as mm
    mm.load_models_gpu([teacher.model])
    base = teacher.model.model
    base.current_patcher = teacher.model
    x, ctx = torch.zeros(2, 4, 8, 8), torch.zeros(2, 77, 2048)
    sdxl_call = {"input": x, "timestep": torch.ones(2), "c": {"c_crossattn": ctx, "y": torch.zeros(2, 2816), "transformer_options": {}}}
    assert ug.call_reason(base, sdxl_call, need_cuda=False) is None
    assert ug.call_reason(base, {**sdxl_call, "c": {**sdxl_call["c"], "c_concat": x}}, need_cuda=False) == "call carries ['c_concat']"
    assert ug.call_reason(base, {**sdxl_call, "c": {**sdxl_call["c"], "control": {}}}, need_cuda=False) == "call carries ['control']"
    moved = {**sdxl_call, "c": {**sdxl_call["c"], "y": torch.zeros(2, 2816, device="meta")}}
    assert ug.call_reason(base, moved, need_cuda=False) == "y on meta, x on cpu"
    assert ug.call_reason(refiner.model, {**sdxl_call, "input": x}, need_cuda=False) == "call carries ['y']"


def test_replayed_batches_get_their_conditioning_on_the_device_once(tmp_path):
    """With graphs replaying the calls, the batch's conditioning goes to the model's device once (core would copy it from
    the CPU in every call, each copy a stream sync): every tensor moves, the SDXL size keys (ints) stay as they are."""
    from onestep_nodes import pair_collection as pc
    teacher = _tiny_teacher(tmp_path)
    cond = teacher._batch_cond([0, 1])
    cond[0][1].update({"pooled_output": torch.ones(2, 4), "width": 64})
    moved = pc._on_device(cond, torch.device("meta"))
    assert moved[0][0].device.type == "meta" and moved[0][0].shape == cond[0][0].shape
    assert moved[0][1]["pooled_output"].device.type == "meta" and moved[0][1]["width"] == 64
    assert cond[0][0].device.type == "cpu"  # the batch's own list is left as it was
