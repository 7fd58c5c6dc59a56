"""The teacher's UNet calls replayed from CUDA graphs inside core's sampling (Collect Teacher Pairs' fast_teacher).

Core keeps its sampler, schedule, CFG and cond/uncond batching; only the model call `apply_model(x, t, c_crossattn[, y])`
goes through a graph (optionally torch.compiled), via ComfyUI's `model_options["model_function_wrapper"]`. A call
replays a graph only where that is the same computation as core's call: a CUDA device, the model fully loaded, plain
text conditioning on both branches (fast_path.ineligible_reason: for SDXL its pooled text and CLIP Text Encode SDXL's
size keys), and per call nothing but `c_crossattn`, SDXL's label vector `y` (comfy.model_base.SDXL only: core builds
it per call, and it has one shape per batch, so it is one more graph input) and inert transformer_options (the
bookkeeping core adds for patches, which a patch-free UNet never reads). Anything else (ControlNet, concat latents, the
y of the SDXL refiner, unCLIP or SVD), or any failure, runs core's own call, so the wrapper never fails a run. Graphs
are keyed like the one-step fast path's: the model, the addresses of its weights, the model_sampling object, the
inputs' names, shapes and dtypes (so SD1.5-style calls without y and SDXL calls with it never share one), and the mode.
"""
from __future__ import annotations

import logging
from collections import Counter

import torch
from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

from onestep.cuda_graph import GraphCache
from .fast_path import FAST_MODES, OFF, ineligible_reason, model_call, per_call_reason, sdxl_label, weights_key

log = logging.getLogger("onestep")
_CACHE = GraphCache(max_entries=2)  # cond+uncond at one batch size, plus a split batch if memory ever forces one
MODES = (OFF, *FAST_MODES)
INERT_OPTIONS = {"cond_or_uncond", "uuids", "sigmas", "sample_sigmas"}  # set by core per call; a UNetModel without
EMPTY_OK_OPTIONS = {"wrappers", "callbacks"}  # patches or wrappers never reads them; these two only matter when not empty
PLAIN_CALL_KEYS = {"c_crossattn", "transformer_options"}
SDXL_CALL_KEYS = PLAIN_CALL_KEYS | {"y"}  # SDXL's label vector, built by core from the plain conditioning
_TOLD: set[tuple[str, str]] = set()
_CPU = torch.device("cpu")  # where core keeps the conditioning between calls


def model_reason(model, positive, negative, need_cuda: bool = True) -> str | None:
    """Why this MODEL with these conditionings cannot replay graphs (checked before sampling), or None; need_cuda=False
    (a test's eager runner, which replays nothing) skips only the device check."""
    if not isinstance(model.model.diffusion_model, UNetModel):
        return f"{type(model.model.diffusion_model).__name__} is not an SD-style UNet (others may read per-call options)"
    for cond in (positive, negative):
        reason = ineligible_reason(model, cond, None) if need_cuda else per_call_reason(model, cond, None)
        if reason is not None:
            return reason
    return None


def call_reason(base, args: dict, need_cuda: bool = True) -> str | None:
    """What in this one call needs core's path, or None: the checks that can change between calls."""
    c = args["c"]
    extra = set(c) - (SDXL_CALL_KEYS if sdxl_label(base) else PLAIN_CALL_KEYS)
    if extra:
        return f"call carries {sorted(extra)}"
    options = c.get("transformer_options", {})
    extra = {k for k, v in options.items() if k not in INERT_OPTIONS and not (k in EMPTY_OK_OPTIONS and not _nonempty(v))}
    if extra:
        return f"transformer_options carry {sorted(extra)}"
    if "c_crossattn" not in c:
        return "call carries no c_crossattn"
    x = args["input"]
    if need_cuda and x.device.type != "cuda":
        return f"x on {x.device}, not a CUDA device"
    for name, value in call_tensors(args).items():  # core keeps conditioning on the CPU and casts it inside apply_model;
        if value.device not in (x.device, _CPU):  # the replay moves such inputs first (_replay), anything else is refused
            return f"{name} on {value.device}, x on {x.device}"
    patcher = getattr(base, "current_patcher", None)
    if patcher is None or patcher.loaded_size() < patcher.model_size():
        return "model only partly on the GPU"
    return None


def call_tensors(args: dict) -> dict[str, torch.Tensor]:
    """The call's tensors other than x, by the names the graph's function takes."""
    c = args["c"]
    named = {"sigma": args["timestep"], "context": c.get("c_crossattn"), "y": c.get("y")}
    return {k: v for k, v in named.items() if isinstance(v, torch.Tensor)}


def _nonempty(value) -> bool:
    """Whether a nested dict of lists (core's wrappers/callbacks registries) holds anything."""
    return any(_nonempty(v) for v in value.values()) if isinstance(value, dict) else bool(value)


def graph_runner(key, fn, inputs: dict[str, torch.Tensor], compile_mode: str | None) -> torch.Tensor:
    return _CACHE.run(key, fn, inputs, compile_mode)


class GraphedUNet:
    """A model_function_wrapper replaying eligible calls; `runner(key, fn, inputs, compile_mode)` does the replay (a
    test may give one that calls fn eagerly, to check the eligible call against core's on the CPU)."""

    def __init__(self, mode: str, runner=graph_runner):
        self.mode, self.runner, self.failed = mode, runner, False
        self.need_cuda = runner is graph_runner
        self.replayed = self.fallbacks = 0
        self.reasons: Counter[str] = Counter()  # why calls took core's path (the user is told: summary())

    def __call__(self, apply_model, args: dict) -> torch.Tensor:
        base = apply_model.__self__
        reason = "the graph path failed earlier in this run" if self.failed else call_reason(base, args, self.need_cuda)
        if reason is None:
            try:
                out = self._replay(base, args)
                self.replayed += 1
                return out
            except Exception as e:  # capture is unsupported by some ops/backends: fall back, never fail the run
                error = str(e).splitlines()[0] if str(e) else type(e).__name__
                log.warning("[onestep] teacher CUDA-graph path failed (%s); core's path for the rest of this run", error)
                self.failed = True
                _CACHE.clear()
                reason = f"capture failed: {error}"
        log.debug("[onestep] teacher call on core's path: %s", reason)
        self.fallbacks += 1
        self.reasons[reason] += 1
        return apply_model(args["input"], args["timestep"], **args["c"])

    def summary(self) -> str:
        """How many calls replayed a graph, and why the others did not (most frequent reason first)."""
        text = f"fast_teacher {self.mode!r}: {self.replayed} of {self.replayed + self.fallbacks} UNet calls replayed from CUDA graphs"
        if self.fallbacks:
            text += "; core's path for " + ", ".join(f"{n} ({reason})" for reason, n in self.reasons.most_common())
        return text

    def _replay(self, base, args: dict) -> torch.Tensor:
        x = args["input"]  # y: SDXL's label vector (call_reason), one more static input copied in each replay
        inputs = {"x": x, **{k: v.to(x.device) for k, v in call_tensors(args).items()}}  # as core's apply_model casts
        shapes = tuple((k, tuple(v.shape), v.dtype) for k, v in inputs.items())
        key = (id(base), weights_key(base.diffusion_model), id(base.model_sampling), shapes, self.mode)
        with torch.no_grad():
            return self.runner(key, model_call(base, FAST_MODES[self.mode]), inputs, FAST_MODES[self.mode])


def with_graphed_unet(model, positive, negative, mode: str, runner=graph_runner, reuse=None):
    """(model to sample with, wrapper or None): a clone of `model` whose UNet calls go through GraphedUNet where the
    model and conditionings allow it, else `model` itself (and the reason is logged). `reuse`: the (clone, wrapper) of
    the previous batch, kept when its mode and runner fit: a new clone per batch would make core unload and load the
    model again before every batch (core's loader tells patchers apart by identity)."""
    if mode == OFF:
        return model, None
    if mode not in FAST_MODES:
        raise ValueError(f"fast_teacher must be one of {MODES}, not {mode!r}")
    reason = model_reason(model, positive, negative, need_cuda=runner is graph_runner)
    if reason is not None:
        if (mode, reason) not in _TOLD:  # once per process, not once per batch
            _TOLD.add((mode, reason))
            log.info("[onestep] %s", refusal(mode, reason))
        return model, None
    if reuse is not None and reuse[1] is not None and (reuse[1].mode, reuse[1].runner) == (mode, runner):
        return reuse
    wrapper = GraphedUNet(mode, runner)
    clone = model.clone()
    clone.set_model_unet_function_wrapper(wrapper)
    return clone, wrapper


def refusal(mode: str, reason: str) -> str:
    """The line that tells a user why the fast teacher they chose was not used at all."""
    return f"fast_teacher {mode!r} not used: {reason}; every UNet call ran on core's path"
