"""The fast path of One-Step Generate: the single model call replayed from a CUDA graph.

Taken only when the result is provably the same as core's machinery would give: a CUDA device, the model
fully loaded, one plain text conditioning (no ControlNet, area, mask or hooks), no model wrappers or
patches that act per call, no noise mask, and no SDXL-style vector conditioning. Otherwise (or if capture
fails) `fast_denoise` returns None and the caller takes core's path. Graphs are keyed by the model, the
addresses of its weights (so reloads and LoRA re-patching recapture) and the input shapes.
"""
from __future__ import annotations

import logging
import weakref

import comfy.model_management as mm
import torch

from onestep.cuda_graph import GraphCache

log = logging.getLogger("onestep")
_CACHE = GraphCache(max_entries=4)
FAST_MODES = {  # node option → torch.compile mode (None: CUDA graph of the eager call)
    "cuda graph": None,
    "compile + cuda graph (slow first run)": "default",
}
OFF = "off"
_PLAIN_COND_KEYS = {"pooled_output"}  # CLIP adds it; SD1.x/2.x UNets do not read it


def ineligible_reason(model, positive, noise_mask) -> str | None:
    """Why the fast path cannot run, or None."""
    if not torch.cuda.is_available() or getattr(model.load_device, "type", "cpu") != "cuda":
        return "not a CUDA device"
    return per_call_reason(model, positive, noise_mask)


def per_call_reason(model, positive, noise_mask) -> str | None:
    """What in this call needs core's machinery (ControlNet, masks, wrappers, ...), or None."""
    if noise_mask is not None:
        return "noise mask"
    if len(positive) != 1:
        return "several conditionings"
    extra = set(positive[0][1]) - _PLAIN_COND_KEYS
    if extra:
        return f"conditioning carries {sorted(extra)}"
    if model.model.model_config.unet_config.get("adm_in_channels") is not None:
        return "vector (adm) conditioning"
    opts = model.model_options
    if opts.get("model_function_wrapper") or opts.get("sampler_cfg_function") or opts.get("sampler_post_cfg_function"):
        return "model wrappers"
    t_opts = opts.get("transformer_options", {})
    if t_opts.get("patches") or t_opts.get("patches_replace") or any(getattr(model, "wrappers", {}).values()):
        return "transformer patches"
    return None


def fully_loaded(patcher, memory_required: int = 0) -> bool:
    """Load the patcher onto the GPU through core (which applies its LoRA/weight patches: clones share one
    model, so "already on the GPU" does not mean "patched for this clone") and say whether all of it is there."""
    mm.load_models_gpu([patcher], memory_required=memory_required)
    return patcher.loaded_size() >= patcher.model_size()


_PARAM_SLOTS: "weakref.WeakKeyDictionary[torch.nn.Module, list[tuple[dict, str]]]" = weakref.WeakKeyDictionary()


def weights_key(module: torch.nn.Module) -> int:
    """Changes when weights are moved or replaced (reload, LoRA re-patching), so graphs get recaptured.

    Reads the live parameters through their owners' `_parameters` dicts (the module tree never changes, the
    Parameter objects in it may): walking `module.parameters()` each call cost ~2 ms per image (profiled)."""
    slots = _PARAM_SLOTS.get(module)
    if slots is None:
        slots = [(m._parameters, n) for m in module.modules() for n, p in m._parameters.items() if p is not None]
        _PARAM_SLOTS[module] = slots
    return hash(tuple(params[name].data_ptr() for params, name in slots))


def fast_denoise(model, positive, sigma: float, x: torch.Tensor, noise_mask=None, mode: str = "cuda graph") -> torch.Tensor | None:
    """x0 of the model at σ for the noise-scaled input x, by graph replay; None when not eligible."""
    reason = ineligible_reason(model, positive, noise_mask)
    if reason is not None:
        log.debug("[onestep] fast path off: %s", reason)
        return None
    if not fully_loaded(model):
        log.debug("[onestep] fast path off: model only partly on the GPU")
        return None
    base = model.model
    device = model.load_device
    x = x.to(device)
    cond = positive[0][0].to(device).expand(x.shape[0], -1, -1).contiguous()
    sigmas = torch.full((x.shape[0],), sigma, device=device, dtype=torch.float32)
    key = (id(base), weights_key(base.diffusion_model), tuple(x.shape), x.dtype, tuple(cond.shape), cond.dtype, mode)

    def call(x, sigma, context):
        return base.apply_model(x, sigma, c_crossattn=context)

    try:
        with torch.inference_mode():
            return _CACHE.run(key, call, {"x": x, "sigma": sigmas, "context": cond}, FAST_MODES[mode])
    except Exception as e:  # capture is unsupported by some ops/backends: fall back, never fail the run
        log.warning("[onestep] CUDA-graph fast path failed (%s); using core's path", str(e).splitlines()[0])
        _CACHE.clear()
        return None
