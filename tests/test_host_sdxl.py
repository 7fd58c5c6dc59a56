"""SDXL one-step generators in the REAL host, as an SDXL user wires them: DualCLIPLoader (type sdxl: CLIP-L + a
full-size OpenCLIP-G, random weights) → CLIP Text Encode SDXL with non-default size/crop/target settings → One-Step
Generate on a reduced-width SDXL generator → SaveLatent, queued over HTTP. Each convention the pack reads — DMD2-SDXL's
ε at t = 399 on raw z, and ε at t = 999 on σ_t·z — must equal the one-step formula computed here, apart from the pack,
on core's SDXL model class fed core's own label vector (pooled text + the six size values)."""
from __future__ import annotations

import math
import os

import pytest
import torch
from test_core_parameterization import alpha_bar  # SD's schedule, written out apart from the pack
from test_host import CLIP, latent, ok

CLIP_G = "onestep-test-clip-g-random.safetensors"
TEXT = "a lighthouse at dusk"
SIZE = {"width": 1024, "height": 768, "crop_w": 16, "crop_h": 32, "target_width": 896, "target_height": 640}
WIDTH, HEIGHT, SEED = 64, 48, 5
CASES = {  # generator file → (metadata, timestep, the UNet's input from the noise z and ᾱ_t)
    "test_sdxl_dmd2_t399_raw_z.safetensors": (dict(method="dmd2", timestep=399, input_convention="raw_z"), 399, lambda z, a: z),
    "test_sdxl_eps_t999_sigma_z.safetensors": ({}, 999, lambda z, a: math.sqrt(1 - a) * z),
}


@pytest.fixture(scope="module")
def sdxl_models(host):
    from tools import fixtures as F  # in-process ComfyUI for the reference (CPU), after the host is up

    models = os.path.join(host.base_dir, "models")
    F.write_clip_g(os.path.join(models, "text_encoders", CLIP_G))
    heads = {k: F.TINY_SDXL_UNET[k] for k in ("num_heads", "num_head_channels")}
    for name, (meta, _, _) in CASES.items():
        F.write_generator(os.path.join(models, "onestep", name), F.TINY_SDXL_UNET, seed=4, base="sdxl", latent_format="sdxl", unet_config=heads, **meta)
    import comfy.sd

    clip = comfy.sd.load_clip(ckpt_paths=[os.path.join(models, "text_encoders", f) for f in (CLIP, CLIP_G)])  # what DualCLIPLoader sdxl loads
    context, pooled = clip.encode_from_tokens(clip.tokenize(TEXT), return_pooled=True)
    return models, context, pooled


def reference(sdxl_models, name: str, size: dict) -> torch.Tensor:
    """x0 = (x_t − sqrt(1 − ᾱ)·ε̂) / sqrt(ᾱ) on core's SDXL model, its text from core's loader, in LATENT units."""
    import comfy.sample
    import comfy.supported_models
    from tools import fixtures as F

    from onestep.format import load_generator

    models, context, pooled = sdxl_models
    meta, t, unet_input = CASES[name]
    config = comfy.supported_models.SDXL(dict(F.TINY_SDXL_UNET))
    config.unet_config.update({k: F.TINY_SDXL_UNET[k] for k in ("num_heads", "num_head_channels")})  # SDXL's class sets 64-channel heads
    model = config.get_model({})
    weights, _ = load_generator(os.path.join(models, "onestep", name))
    model.diffusion_model.load_state_dict({k: v.float() for k, v in weights.items()})
    z = comfy.sample.prepare_noise(torch.zeros(2, 4, HEIGHT // 8, WIDTH // 8), SEED).double()
    a = alpha_bar(t)
    x_in = unet_input(z, a)
    y = model.encode_adm(pooled_output=pooled, **size).repeat(2, 1)  # core's SDXL label vector
    with torch.no_grad():
        eps = model.diffusion_model(x_in.float(), torch.full((2,), float(t)), context=context.repeat(2, 1, 1), y=y).double()
    x0 = (x_in - math.sqrt(1 - a) * eps) / math.sqrt(a)
    return x0 / config.latent_format.scale_factor  # LATENT (VAE) units, as SaveLatent writes them


@pytest.mark.parametrize("name", sorted(CASES))
def test_sdxl_generator_through_dual_clip_and_clip_text_encode_sdxl_equals_the_formula(host, sdxl_models, name):
    g = {
        "1": {"class_type": "OneStepLoadGenerator", "inputs": {"generator": name}},
        "2": {"class_type": "DualCLIPLoader", "inputs": {"clip_name1": CLIP, "clip_name2": CLIP_G, "type": "sdxl"}},
        "3": {"class_type": "CLIPTextEncodeSDXL", "inputs": {"clip": ["2", 0], "text_g": TEXT, "text_l": TEXT, **SIZE}},
        "80": {"class_type": "OneStepGenerate", "inputs": {"model": ["1", 0], "positive": ["3", 0], "seed": SEED, "width": WIDTH,
                                                           "height": HEIGHT, "batch_size": 2}},
        "90": {"class_type": "SaveLatent", "inputs": {"samples": ["80", 0], "filename_prefix": f"latents/sdxl_{name[:-12]}"}},
    }
    out = latent(host, ok(host.run(g))).double()
    ref = reference(sdxl_models, name, SIZE)
    assert out.shape == ref.shape == (2, 4, HEIGHT // 8, WIDTH // 8)
    assert torch.allclose(out, ref, rtol=1e-4, atol=2e-4 * ref.abs().max().item()), (out - ref).abs().max()
    # the six size values reach the UNet: the formula at the default size (the image's, no crop) is another latent
    default = reference(sdxl_models, name, {"width": WIDTH, "height": HEIGHT, "target_width": WIDTH, "target_height": HEIGHT})
    assert (out - default).abs().max() > 100 * (out - ref).abs().max()
