"""The fast path of One-Step Generate: the single model call replayed from a CUDA graph.

Taken only when the result is provably the same as core's machinery would give: a CUDA device, the model
fully loaded, one plain text conditioning (no ControlNet, area, mask or hooks; for SDXL its pooled text and
CLIP Text Encode SDXL's size keys), no model wrappers or patches that act per call, no noise mask. Otherwise
(or if capture fails) `fast_denoise` returns None and the caller takes core's path. The call's inputs are
built by core's own conditioning code (`call_inputs`), so SDXL's label vector y is core's. Graphs are keyed
by the model, the addresses of its weights (so reloads and LoRA re-patching recapture) and the input shapes.
"""
from __future__ import annotations

import logging
import weakref

import comfy.model_base
import comfy.model_management as mm
import comfy.sampler_helpers
import comfy.samplers
import torch

from onestep.cuda_graph import GraphCache
from .subpixel_views import current_view, unet_view

log = logging.getLogger("onestep")
_CACHE = GraphCache(max_entries=4)
FAST_MODES = {  # node option → torch.compile mode (None: CUDA graph of the eager call)
    "cuda graph": None,
    "compile + cuda graph (slow first run)": "default",
}
OFF = "off"
_PLAIN_COND_KEYS = {"pooled_output"}  # CLIP adds it; SD1.x/2.x UNets do not read it, SDXL's y is built from it
SIZE_KEYS = {"width", "height", "crop_w", "crop_h", "target_width", "target_height"}  # CLIP Text Encode SDXL's
_MODEL_INPUTS = {"c_crossattn", "y"}  # the extra_conds outputs the replayed call takes (text; SDXL's label vector)


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
    adm = model.model.model_config.unet_config.get("adm_in_channels") is not None
    extra = set(positive[0][1]) - _PLAIN_COND_KEYS - (SIZE_KEYS if adm else set())
    if extra:
        return f"conditioning carries {sorted(extra)}"
    if adm and not sdxl_label(model.model):  # unCLIP, refiner, SVD, ...: their y reads more
        return "vector (adm) conditioning other than SDXL's"
    if adm and positive[0][1].get("pooled_output") is None:
        return "no pooled text for the vector (adm) conditioning"
    opts = model.model_options
    if opts.get("model_function_wrapper") or opts.get("sampler_cfg_function") or opts.get("sampler_post_cfg_function"):
        return "model wrappers"
    t_opts = opts.get("transformer_options", {})
    if t_opts.get("patches") or t_opts.get("patches_replace") or any(getattr(model, "wrappers", {}).values()):
        return "transformer patches"
    return None


def sdxl_label(base) -> bool:
    """Whether the model's label vector y is SDXL's (pooled text + size embeddings): the one adm type the graphs replay,
    by class identity, since subclasses (or other adm models) may build y from more than the plain conditioning."""
    return type(base) is comfy.model_base.SDXL


def replay_key(patcher, cache: GraphCache, graph_key, memory_required: int = 0):
    """graph_key() once the patcher is ready for a replay, or None when core cannot load all of it. When the graph for
    this call is already captured (a replay needs no new memory) and core's load would leave the patcher as it is
    (`loaded_as_is`), core's load is skipped: its memory bookkeeping flattens torch.cuda.memory_stats() in Python several
    times per call, ~30 % of the GPU's idle time at batch 1 in session 63's timeline."""
    key = graph_key()
    if key in cache and loaded_as_is(patcher):
        return key
    if not fully_loaded(patcher, memory_required):
        return None
    return graph_key()  # the load may have moved or re-patched the weights


def loaded_as_is(patcher) -> bool:
    """Whether core's load_models_gpu([patcher]) would change nothing: this very patcher is in core's list of loaded
    models (loading another clone of its model takes it out), with all of its weights loaded, not in low-VRAM mode,
    its own weight patches the applied ones, and no extra models of its own to load. Like core's call it marks the
    model used and moves it to the front of core's list, which decides what core unloads first."""
    model = patcher.model
    if (getattr(model, "current_weight_patches_uuid", None) != patcher.patches_uuid or getattr(model, "model_lowvram", True)
            or patcher.loaded_size() < patcher.model_size() or patcher.model_patches_models()):
        return False
    loaded = mm.current_loaded_models
    for i, entry in enumerate(loaded):
        if entry.model is patcher:
            entry.currently_used = True
            loaded.insert(0, loaded.pop(i))
            return True
    return False


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


def call_inputs(model, positive, sigma: float, x: torch.Tensor) -> dict[str, torch.Tensor] | None:
    """The model call's inputs for the noise-scaled x, built as core's sampling builds them: convert_cond, then
    encode_model_conds with the model's extra_conds (SDXL: y from the pooled text and the size keys, or the
    latent's size), then each cond repeated to the batch (process_cond) as calc_cond_batch does. None when
    extra_conds makes inputs the replayed call does not take (concat latents, ...)."""
    conds = comfy.samplers.encode_model_conds(
        model.model.extra_conds, comfy.sampler_helpers.convert_cond(positive), x, x.device, "positive")
    model_conds = conds[0]["model_conds"]
    if set(model_conds) - _MODEL_INPUTS or "c_crossattn" not in model_conds:
        return None
    out = {"x": x, "sigma": torch.full((x.shape[0],), sigma, device=x.device, dtype=torch.float32)}
    out["context"] = _batched(model_conds["c_crossattn"], x.shape[0], x.device)
    if "y" in model_conds:
        out["y"] = _batched(model_conds["y"], x.shape[0], x.device)
    return out


def _batched(cond, batch_size: int, device) -> torch.Tensor:
    """Core's per-call batching of one cond, process_cond(batch).concat([]), done on `device` after one copy of the
    cond: the same values, without a CPU concatenation per call, which on a many-core GPU host woke torch's CPU thread
    pool while the GPU waited (aten::cat, 2.2 ms of a 24 ms call at batch 1, profiled in session 63)."""
    return cond._copy_with(cond.cond.to(device)).process_cond(batch_size=batch_size, area=None).concat([])


def model_call(base, compile_mode: str | None = None):
    """The one call the graph replays: core's apply_model (input scaling, dtype casts, denoised output); `extra`: SDXL's y.
    A compile mode's call runs a view of `base` whose UNet upsampling layers are in sub-pixel form (subpixel_views:
    the same values up to the order of the sums, less work); without one, core's modules as they are."""
    model = current_view(base, unet_view) if compile_mode else base

    def call(x, sigma, context, **extra):  # a fresh options dict: the UNet writes its bookkeeping into the one it gets
        return model.apply_model(x, sigma, c_crossattn=context, transformer_options={}, **extra)
    return call


def eager_denoise(model, positive, sigma: float, x: torch.Tensor, mode: str = "cuda graph") -> torch.Tensor | None:
    """The fast path's call in `mode` run eagerly, on any device: exactly what the graph captures, or what the compile
    traces (tests run it on CPU)."""
    inputs = call_inputs(model, positive, sigma, x)
    if inputs is None:
        return None
    with torch.inference_mode():
        return model_call(model.model, FAST_MODES[mode])(**inputs)


def fast_denoise(model, positive, sigma: float, x: torch.Tensor, noise_mask=None, mode: str = "cuda graph") -> torch.Tensor | None:
    """x0 of the model at σ for the noise-scaled input x, by graph replay; None when not eligible."""
    reason = ineligible_reason(model, positive, noise_mask)
    if reason is not None:
        log.debug("[onestep] fast path off: %s", reason)
        return None
    base = model.model
    inputs = call_inputs(model, positive, sigma, x.to(model.load_device))
    if inputs is None:
        log.debug("[onestep] fast path off: the model's conditioning makes inputs beyond text and y")
        return None
    shapes = tuple((k, tuple(v.shape), v.dtype) for k, v in inputs.items())

    key = replay_key(model, _CACHE, lambda: (id(base), weights_key(base.diffusion_model), shapes, mode))
    if key is None:
        log.debug("[onestep] fast path off: model only partly on the GPU")
        return None
    try:
        with torch.inference_mode():
            return _CACHE.run(key, model_call(base, FAST_MODES[mode]), inputs, FAST_MODES[mode])
    except Exception as e:  # capture is unsupported by some ops/backends: fall back, never fail the run
        log.warning("[onestep] CUDA-graph fast path failed (%s); using core's path", str(e).splitlines()[0])
        _CACHE.clear()
        return None
