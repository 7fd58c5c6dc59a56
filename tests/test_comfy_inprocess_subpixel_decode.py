"""VAE Decode (fast)'s sub-pixel view of core's SD VAE (onestep_nodes/subpixel_views.vae_view), in-process with the
real ComfyUI modules on the CPU: the view decodes as core's decoder does, reads core's weights through core's own cast
(patches included), and leaves core's model as it was. The compiled GPU modes that use it are measured on the GPU."""
import pytest
import torch
from test_comfy_inprocess import pack  # noqa: F401  (fixture: the pack's nodes as ComfyUI registers them)

import comfy.sd
from comfy.ldm.modules.diffusionmodules.model import Upsample

from onestep.subpixel import SubpixelUpsample
from tools import fixtures as F


@pytest.fixture(scope="module")
def vae(pack):  # noqa: F811
    return comfy.sd.VAE(sd=F.vae_state_dict())


def _decode(model, z):
    with torch.inference_mode():
        return model.decode(z).double()


def test_the_view_decodes_as_core_does(vae):
    from onestep_nodes.subpixel_views import vae_view

    model = vae.first_stage_model
    z = torch.randn(2, 4, 6, 5, generator=torch.Generator().manual_seed(0)).to(vae.vae_dtype)
    core = _decode(model, z)
    v = vae_view(model)
    view, n = v.module, v.swapped
    assert n == 3  # the SD decoder's three upsampling levels
    assert sum(isinstance(m, SubpixelUpsample) for m in view.modules()) == 3
    ours = _decode(view, z)
    assert ours.shape == core.shape == (2, 3, 48, 40)
    assert (ours - core).abs().max() < 1e-5 * core.abs().max()  # float32: the same sums in another order (2.4e-6 measured)
    assert sum(isinstance(m, Upsample) for m in model.decoder.modules()) == 3  # core's model: its own modules
    assert torch.equal(_decode(model, z), core)


def test_the_view_reads_the_weights_through_cores_cast_and_patches(vae):
    from onestep_nodes.subpixel_views import vae_view

    model = vae.first_stage_model
    conv = next(m for m in model.decoder.modules() if isinstance(m, Upsample)).conv
    assert hasattr(conv, "weight_function")  # core's ops, whose forward applies its patches
    z = torch.randn(1, 4, 4, 4, generator=torch.Generator().manual_seed(1)).to(vae.vae_dtype)
    plain = _decode(model, z)
    conv.weight_function.append(lambda w: 0.5 * w)  # a patch, as core's weight patching installs them
    try:
        core = _decode(model, z)
        ours = _decode(vae_view(model).module, z)
    finally:
        conv.weight_function.clear()
    assert (core - plain).abs().max() > 1e-3 * plain.abs().max()  # the patch changed core's output
    assert (ours - core).abs().max() < 1e-5 * core.abs().max()  # and the view's the same way


def test_the_graph_view_swaps_every_groupnorm_and_decodes_as_core_does(vae, monkeypatch):
    from onestep.group_norm import WideGroupNorm
    from onestep_nodes.subpixel_views import vae_graph_view

    model = vae.first_stage_model
    norms = sum(isinstance(m, torch.nn.GroupNorm) for m in model.modules())
    v = vae_graph_view(model)
    assert v.swapped == norms > 0 and sum(isinstance(m, WideGroupNorm) for m in v.module.modules()) == norms
    z = torch.randn(1, 4, 6, 5, generator=torch.Generator().manual_seed(2)).to(vae.vae_dtype)
    core = _decode(model, z)
    assert torch.equal(_decode(v.module, z), core)  # on the CPU every norm falls back to core's module
    monkeypatch.setattr("onestep.group_norm.prefers_wide", lambda x, groups: True)  # the GPU's path, forced
    ours = _decode(v.module, z)
    assert (ours - core).abs().max() < 1e-4 * core.abs().max()
    assert not any(isinstance(m, WideGroupNorm) for m in model.modules())  # core's model: its own modules


def test_the_graph_views_bf16_decode_is_as_close_to_fp32_as_cores(vae, monkeypatch):
    """In bf16 (the dtype core picks for the VAE on recent GPUs) the wide GroupNorm rounds differently from torch's;
    its decode must stay as close to the fp32 decode as core's own bf16 decode is (measured, 256²: mean |Δ| 0.0026 vs
    core's 0.0025 in 0..1 pixels; max 0.056 vs 0.046)."""
    import copy

    from onestep_nodes.subpixel_views import vae_graph_view

    fp32 = copy.deepcopy(vae.first_stage_model).float()
    bf16 = copy.deepcopy(fp32).to(torch.bfloat16)
    monkeypatch.setattr("onestep.group_norm.prefers_wide", lambda x, groups: True)
    wide = vae_graph_view(bf16).module
    z = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(3))

    def pixels(model, z):
        with torch.inference_mode():
            return ((model.decode(z).float() + 1) / 2).clamp(0, 1)
    ref, core, ours = pixels(fp32, z), pixels(bf16, z.bfloat16()), pixels(wide, z.bfloat16())
    assert not torch.equal(core, ours)  # the wide path ran
    core_err, ours_err = (core - ref).abs(), (ours - ref).abs()
    assert ours_err.mean() <= 1.25 * core_err.mean()
    assert ours_err.max() <= 2 * core_err.max()
