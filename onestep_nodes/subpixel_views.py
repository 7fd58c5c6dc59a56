"""Views of core's models whose "nearest ×2 upsampling, then 3×3 convolution" modules run as one 2×2 convolution on
the smaller input (onestep/subpixel.py): the VAE decoder's Upsample modules and the SD UNet's. The compiled fast paths
(VAE Decode (fast); One-Step Generate and Collect Teacher Pairs' fast_teacher in their compiled modes) record these
views; the plain CUDA-graph paths record core's modules as they are (bit-equal to core), except VAE Decode
(fast)'s, whose view (vae_graph_view) computes the decoder's GroupNorms on large maps from wide reductions
(onestep/group_norm.py: the same values up to bf16 rounding, several times faster). A view shares every weight
with core's model, reads each convolution's weight through core's own cast (patches included) when it runs, and
leaves core's model unchanged; one whose model has since changed its children or attributes (an object patch) is
made again."""
from __future__ import annotations

import functools
import weakref

import torch
from torch import nn

from onestep.group_norm import WideGroupNorm
from onestep.subpixel import ModuleView, SubpixelUpsample, swap_modules, upsample_conv

_VIEWS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # core's model → {view maker: its ModuleView}


def weight_and_bias(module: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A convolution's or norm's weight and bias as its own forward would apply them to x: core's ops cast and patch
    them when they are set to (comfy.ops' forwards make the same test), else they are the module's as they are."""
    if getattr(module, "comfy_cast_weights", False) or getattr(module, "weight_function", None) or getattr(module, "bias_function", None):
        from comfy.ops import cast_bias_weight

        return cast_bias_weight(module, x)
    return module.weight, module.bias


def _plain_3x3(conv) -> bool:
    return (isinstance(conv, nn.Conv2d) and conv.kernel_size == (3, 3) and conv.stride == (1, 1) and conv.padding == (1, 1)
            and conv.dilation == (1, 1) and conv.groups == 1 and conv.padding_mode == "zeros")


def _vae_upsample(module: nn.Module) -> nn.Module | None:
    from comfy.ldm.modules.diffusionmodules.model import Upsample

    if type(module) is not Upsample or not module.with_conv or module.scale_factor not in (2, 2.0) or not _plain_3x3(module.conv):
        return None
    return SubpixelUpsample(lambda x: weight_and_bias(module.conv, x), module)  # the module's conv when it runs


def _unet_upsample(module: nn.Module) -> nn.Module | None:
    from comfy.ldm.modules.diffusionmodules.openaimodel import Upsample

    if type(module) is not Upsample or module.dims != 2 or not module.use_conv or not _plain_3x3(module.conv):
        return None
    view = object.__new__(_unet_upsample_class())  # core's UNet dispatches on isinstance(layer, Upsample)
    view.__dict__ = dict(module.__dict__)  # its settings, and its children's dict itself: its conv as it is when it runs
    return view


def vae_view(model: nn.Module) -> ModuleView:
    """Core's VAE model (first_stage_model) with its decoder's upsampling levels in sub-pixel form."""
    return swap_modules(model, _vae_upsample)


def _wide_group_norm(module: nn.Module) -> nn.Module | None:
    if not isinstance(module, nn.GroupNorm):
        return None
    return WideGroupNorm(lambda x: weight_and_bias(module, x), module)  # the module's weight and bias when it runs


def vae_graph_view(model: nn.Module) -> ModuleView:
    """Core's VAE model with its GroupNorms computed from wide reductions on large maps (onestep/group_norm.py):
    what VAE Decode (fast)'s plain CUDA-graph mode records."""
    return swap_modules(model, _wide_group_norm)


def unet_view(model: nn.Module) -> ModuleView:
    """Core's model (BaseModel, or its diffusion_model) with the SD UNet's Upsample modules in sub-pixel form."""
    return swap_modules(model, _unet_upsample)


def current_view(model: nn.Module, make) -> nn.Module:
    """make(model).module (make: vae_view or unet_view), kept per model and made again once the model has changed."""
    views = _VIEWS.setdefault(model, {})
    view = views.get(make)
    if view is None or not view.current():
        view = views[make] = make(model)
    return view.module


@functools.cache
def _unet_upsample_class() -> type:
    """A subclass of core's UNet Upsample (made on first use: core's modules are imported by then, and a core that
    renamed them fails the fast path's call, which falls back to core's, not the pack's import)."""
    from comfy.ldm.modules.diffusionmodules.openaimodel import Upsample

    class SubpixelUNetUpsample(Upsample):
        """Core's UNet Upsample whose 2-D call with the doubled size runs as onestep.subpixel.upsample_conv; any other
        call (another output_shape: odd sizes on the skip path) runs core's forward."""

        def forward(self, x, output_shape=None):
            if x.ndim != 4 or (output_shape is not None and tuple(output_shape[2:4]) != (2 * x.shape[2], 2 * x.shape[3])):
                return super().forward(x, output_shape=output_shape)
            weight, bias = weight_and_bias(self.conv, x)
            return upsample_conv(x, weight, bias)

    return SubpixelUNetUpsample
