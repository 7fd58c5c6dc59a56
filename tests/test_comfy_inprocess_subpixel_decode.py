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
