"""Test-only Forge extension (installed by tests/forge_host.py into the test's data dir, never shipped): records
what Forge actually computes, so the tests observe it from outside the pack's own code.

Into $ONESTEP_PROBE_DIR it writes, numbered in call order: noise-N.pt (each batch's noise from Forge's ImageRNG),
unet-N.pt (every UNet forward call: input, timesteps, context, output), latent-N.pt (the latents Forge decodes) and
init-N.pt (img2img: the start latent and noise Forge's k-diffusion sampler gets).
"""
import itertools
import os

import torch
from backend.nn.unet import IntegratedUNet2DConditionModel
from modules import processing, rng
from modules.sd_samplers_kdiffusion import KDiffusionSampler

OUT = os.environ["ONESTEP_PROBE_DIR"]
_count = itertools.count()


def _save(kind, value):
    os.makedirs(OUT, exist_ok=True)
    torch.save(value, os.path.join(OUT, f"{kind}-{next(_count):04d}.pt"))


def _wrap(owner, name, record):
    original = getattr(owner, name)
    if getattr(original, "_onestep_probe", False):
        return

    def wrapper(*args, **kwargs):
        result = original(*args, **kwargs)
        record(args, kwargs, result)
        return result

    wrapper._onestep_probe = True
    setattr(owner, name, wrapper)


def _unet(args, kwargs, out):
    x, timesteps = args[1], args[2]
    _save("unet", {"x": x.detach().float().cpu(), "t": timesteps.detach().float().cpu(),
                   "context": kwargs["context"].detach().float().cpu(), "out": out.detach().float().cpu()})


_wrap(IntegratedUNet2DConditionModel, "forward", _unet)
_wrap(rng.ImageRNG, "next", lambda args, kwargs, x: _save("noise", x.detach().float().cpu()))
_wrap(processing, "decode_latent_batch", lambda args, kwargs, r: _save("latent", args[1].detach().float().cpu()))
_wrap(KDiffusionSampler, "sample_img2img",
      lambda args, kwargs, r: _save("init", {"x": args[2].detach().float().cpu(), "noise": args[3].detach().float().cpu()}))
