"""One-Step Generate's fast path on an SDXL-family generator, in process with ComfyUI's real classes: the call the CUDA
graph captures (fast_path.call_inputs + model_call), run eagerly on the CPU, gives core's path's latents (fast off)
for the pooled text and CLIP Text Encode SDXL's size keys; and the fast path still refuses what needs core."""
import pytest
import torch
from test_comfy_inprocess import pack  # noqa: F401  (fixture: the pack's nodes as ComfyUI registers them)

import comfy.sample

from tools import fixtures as F

HEADS = {k: F.TINY_SDXL_UNET[k] for k in ("num_heads", "num_head_channels")}
SIZES = {"width": 1536, "height": 640, "crop_w": 48, "crop_h": 16, "target_width": 1024, "target_height": 768}

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny convolutions run faster on one core


@pytest.fixture(scope="module")
def sdxl(pack, tmp_path_factory):  # noqa: F811
    from onestep_nodes import generator_model as gm

    path = tmp_path_factory.mktemp("sdxl_fast") / "g.safetensors"
    F.write_generator(str(path), F.TINY_SDXL_UNET, seed=3, base="sdxl", latent_format="sdxl", unet_config=HEADS)
    return gm.load_generator_model(str(path))


def conditioning(seed: int, **sizes):
    g = torch.Generator().manual_seed(seed)
    return [[torch.randn(1, 77, 2048, generator=g), {"pooled_output": torch.randn(1, 1280, generator=g), **sizes}]]


def eager_fast(model, positive, seed, latent):
    """onestep_generate's fast branch with the graph replaced by the eager call it captures."""
    from onestep_nodes import fast_path, generate

    noise = comfy.sample.prepare_noise(latent, seed)
    return generate.one_call_latents(model, generate.onestep_sigmas(model), noise, latent,
                                     lambda x, sigma: fast_path.eager_denoise(model, positive, sigma, x))


@pytest.mark.parametrize("sizes", [{}, SIZES], ids=["latent size", "size keys"])
def test_eager_fast_call_equals_core_path_for_sdxl(sdxl, sizes):
    from onestep_nodes import fast_path, generate

    positive = conditioning(0, **sizes)
    latent = torch.zeros(2, 4, 10, 8)  # non-square, batch 2: y is repeated to the batch as core's process_cond does
    assert fast_path.per_call_reason(sdxl, positive, None) is None
    with torch.inference_mode():
        core = generate.onestep_generate(sdxl, positive, 7, latent, fast="off")
        fast = eager_fast(sdxl, positive, 7, latent)
        other_sizes = eager_fast(sdxl, conditioning(0, **({} if sizes else SIZES)), 7, latent)
    scale = core.abs().max()
    assert fast.shape == core.shape and (fast - core).abs().max() <= 1e-5 * scale, ((fast - core).abs().max(), scale)
    assert (other_sizes - core).abs().max() > 1e-3 * scale  # y carries the sizes, so the comparison above checks them
    inputs = fast_path.call_inputs(sdxl, positive, 14.6, torch.zeros(2, 4, 10, 8))
    assert inputs["y"].shape == (2, 2816) and inputs["context"].shape == (2, 77, 2048)
    want = sdxl.model.encode_adm(pooled_output=positive[0][1]["pooled_output"], **({"width": 64, "height": 80} | sizes))
    assert torch.equal(inputs["y"][1:], want)  # default sizes: the latent's (width 8·8, height 10·8), as core's sampling


def test_fast_path_refuses_what_needs_core_on_sdxl(sdxl, pack):  # noqa: F811
    from onestep_nodes import fast_path

    (ctx, extra), = conditioning(1, **SIZES)
    ok = [[ctx, extra]]
    assert fast_path.ineligible_reason(sdxl, ok, None) == "not a CUDA device"  # this machine has no GPU
    assert fast_path.per_call_reason(sdxl, ok, None) is None
    assert fast_path.per_call_reason(sdxl, [[ctx, {**extra, "control": object()}]], None) == "conditioning carries ['control']"
    assert fast_path.per_call_reason(sdxl, [[ctx, {**extra, "mask": torch.ones(1, 8, 8)}]], None) == "conditioning carries ['mask']"
    assert fast_path.per_call_reason(sdxl, [[ctx, {**extra, "area": (8, 8, 0, 0)}]], None) == "conditioning carries ['area']"
    assert fast_path.per_call_reason(sdxl, [[ctx, {**extra, "aesthetic_score": 6.0}]], None) == "conditioning carries ['aesthetic_score']"
    assert fast_path.per_call_reason(sdxl, [[ctx, {"width": 1024}]], None) == "no pooled text for the vector (adm) conditioning"
    assert fast_path.per_call_reason(sdxl, ok + ok, None) == "several conditionings"
    assert fast_path.per_call_reason(sdxl, ok, torch.ones(1, 1, 4, 4)) == "noise mask"
    wrapped = sdxl.clone()
    wrapped.set_model_unet_function_wrapper(lambda apply, args: apply(args["input"], args["timestep"], **args["c"]))
    assert fast_path.per_call_reason(wrapped, ok, None) == "model wrappers"
    patched = sdxl.clone()
    patched.set_model_attn1_patch(lambda q, k, v, extra_options: (q, k, v))
    assert fast_path.per_call_reason(patched, ok, None) == "transformer patches"


def test_size_keys_are_refused_on_models_without_a_label_vector(pack, tmp_path):  # noqa: F811
    """An SD1.5-family UNet has no y to carry them: the sizes are accepted for adm models only (pooled text for all)."""
    from onestep_nodes import fast_path
    from onestep_nodes import generator_model as gm

    F.write_generator(str(tmp_path / "sd15.safetensors"))
    model = gm.load_generator_model(str(tmp_path / "sd15.safetensors"))
    ctx = torch.randn(1, 77, 768)
    assert fast_path.per_call_reason(model, [[ctx, {"pooled_output": ctx[:, 0]}]], None) is None
    assert fast_path.per_call_reason(model, [[ctx, {"width": 1024, "height": 1024}]], None) == "conditioning carries ['height', 'width']"
    inputs = fast_path.call_inputs(model, [[ctx, {"pooled_output": ctx[:, 0]}]], 14.6, torch.zeros(3, 4, 8, 8))
    assert set(inputs) == {"x", "sigma", "context"} and inputs["context"].shape == (3, 77, 768)


def test_vector_conditioning_of_other_model_classes_is_refused(pack, tmp_path):  # noqa: F811
    """A label vector built by another class's encode_adm (here core's plain BaseModel, whose y is zeros or unCLIP's) is
    not SDXL's: the fast path leaves it to core."""
    from onestep_nodes import fast_path
    from onestep_nodes import generator_model as gm

    F.write_generator(str(tmp_path / "custom.safetensors"), F.TINY_SDXL_UNET, base="custom", unet_config=HEADS)
    model = gm.load_generator_model(str(tmp_path / "custom.safetensors"))
    assert type(model.model).__name__ == "BaseModel"
    (ctx, extra), = conditioning(2)
    assert fast_path.per_call_reason(model, [[ctx, extra]], None) == "vector (adm) conditioning other than SDXL's"


@pytest.mark.parametrize("size", [(10, 8), (9, 7)], ids=["even", "odd: core's upsampling on the skip's size"])
def test_the_compiled_modes_call_gives_cores_latents(sdxl, pack, tmp_path, size, monkeypatch):  # noqa: F811
    """The compiled modes trace the call on a view whose UNet upsampling runs in sub-pixel form (subpixel_views): the same
    latents as core's path, for SD1.5's and SDXL's UNets; at an odd size the layer whose output is the skip's size
    (not twice its input) runs core's own forward."""
    from onestep_nodes import fast_path, generate
    from onestep_nodes import generator_model as gm
    from onestep_nodes import subpixel_views
    from onestep_nodes.subpixel_views import unet_view

    ran, original = [], subpixel_views.upsample_conv
    monkeypatch.setattr(subpixel_views, "upsample_conv", lambda *a: ran.append(1) or original(*a))
    F.write_generator(str(tmp_path / "sd15.safetensors"))
    sd15 = gm.load_generator_model(str(tmp_path / "sd15.safetensors"))
    for model, positive in ((sd15, [[torch.randn(1, 77, 768, generator=torch.Generator().manual_seed(4)), {}]]), (sdxl, conditioning(0, **SIZES))):
        view = unet_view(model.model)
        assert view.swapped == 1 and view.module.diffusion_model is not model.model.diffusion_model  # the tiny UNets: one level up
        latent = torch.zeros(2, 4, *size)
        noise = comfy.sample.prepare_noise(latent, 7)
        with torch.inference_mode():
            core = generate.onestep_generate(model, positive, 7, latent, fast="off")
            ours = generate.one_call_latents(model, generate.onestep_sigmas(model), noise, latent,
                                             lambda x, s: fast_path.eager_denoise(model, positive, s, x, mode="compile + cuda graph (slow first run)"))
        scale = core.abs().max()
        assert ours.shape == core.shape and (ours - core).abs().max() <= 1e-5 * scale, ((ours - core).abs().max(), scale)
    assert len(ran) == (2 if size == (10, 8) else 0)  # one call per model, in sub-pixel form only where the sizes allow


def test_loaded_as_is_only_when_cores_load_would_change_nothing(sdxl):
    """A replay skips core's load_models_gpu only for the very patcher core has loaded, with its own weight patches
    applied and all of its weights loaded; like core's call it moves the patcher to the front of core's list. A patched
    clone, another loaded model or an unload make core's load needed again (the real ComfyUI, CPU device)."""
    import comfy.model_management as mm

    from onestep_nodes import fast_path

    mm.unload_all_models()
    assert not fast_path.loaded_as_is(sdxl)
    mm.load_models_gpu([sdxl])
    assert fast_path.loaded_as_is(sdxl) and mm.current_loaded_models[0].model is sdxl
    key = next(iter(sdxl.model_state_dict()))
    patched = sdxl.clone()
    patched.add_patches({key: (torch.zeros_like(sdxl.model_state_dict()[key]),)}, 1.0)
    assert patched.patches_uuid != sdxl.patches_uuid and not fast_path.loaded_as_is(patched)
    mm.load_models_gpu([patched])  # core unloads the other clone of the same model
    assert fast_path.loaded_as_is(patched) and not fast_path.loaded_as_is(sdxl)
    mm.load_models_gpu([sdxl])
    assert fast_path.loaded_as_is(sdxl) and not fast_path.loaded_as_is(patched)
    # the LRU order core keeps: a second loaded model in front, then the check moves ours back to the front
    import comfy.sd

    vae = comfy.sd.VAE(sd=F.vae_state_dict())
    mm.load_models_gpu([vae.patcher])
    assert mm.current_loaded_models[0].model is vae.patcher
    assert fast_path.loaded_as_is(sdxl) and mm.current_loaded_models[0].model is sdxl
    assert fast_path.loaded_as_is(vae.patcher)
    mm.unload_all_models()
    assert not fast_path.loaded_as_is(sdxl) and not fast_path.loaded_as_is(vae.patcher)


def test_replay_key_loads_through_core_unless_the_graph_is_ready(sdxl, monkeypatch):
    """replay_key calls core's load_models_gpu while no graph is captured for the key or core's load would change
    something; with the graph captured and the patcher loaded as is, it returns the key without core's load."""
    import comfy.model_management as mm

    from onestep.cuda_graph import GraphCache
    from onestep_nodes import fast_path

    loads = []
    real = mm.load_models_gpu
    monkeypatch.setattr(mm, "load_models_gpu", lambda models, **kw: (loads.append(models), real(models, **kw))[1])
    mm.unload_all_models()
    cache = GraphCache()
    key = fast_path.replay_key(sdxl, cache, lambda: ("k", fast_path.weights_key(sdxl.model.diffusion_model)))
    assert key is not None and len(loads) == 1  # no graph yet: core loads
    cache._graphs[key] = None  # as if captured (a capture needs CUDA)
    assert fast_path.replay_key(sdxl, cache, lambda: ("k", fast_path.weights_key(sdxl.model.diffusion_model))) == key
    assert len(loads) == 1  # graph ready, patcher loaded as is: no core load
    mm.unload_all_models()
    assert fast_path.replay_key(sdxl, cache, lambda: ("k", fast_path.weights_key(sdxl.model.diffusion_model))) is not None
    assert len(loads) == 2  # unloaded meanwhile: core loads again
