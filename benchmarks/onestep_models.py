"""The models benchmarks/bench_onestep.py times, per architecture, all with random weights (nothing downloaded): the
generator as the pack's loader builds it, the same weights as a plain ε teacher MODEL, a VAE and the text conditioning.

Full size: SD1.5's UNet at 512², or SDXL's (tools/fixtures.py SDXL_UNET) at 1024², the teacher loaded by core's own
loader (comfy.sd.load_diffusion_model), which must detect the architecture asked for — so the SDXL rows time ComfyUI's
own SDXL model class and config. The conditioning is random, in the form CLIP Text Encode (SDXL: CLIP Text Encode SDXL
at the image size) gives it: text [1, 77, 768 | 2048], pooled text, and for SDXL the six size keys; timings depend
only on its shapes, and building a random text encoder would only cost time. --tiny: the tests' reduced-width UNets on the CPU (core's detection does not know them: the teacher is the
pack's teacher file of the same weights).
"""
from __future__ import annotations

import os
import types

import torch

ARCHS = {"sd15": 512, "sdxl": 1024}  # architecture → its native image size



def build(arch: str, tiny: bool, size: int, folder: str, nodes: dict) -> types.SimpleNamespace:
    """Generator MODEL (`ours`), teacher MODEL (`core`), VAE, positive/negative conditioning; files go in `folder`,
    which must be registered as the `onestep` model folder."""
    import comfy.model_base
    import comfy.sd

    from onestep_nodes import generator_model as gm
    from tools import fixtures as F

    unet = {("sd15", False): F.SD15_UNET, ("sd15", True): F.TINY_UNET,
            ("sdxl", False): F.SDXL_UNET, ("sdxl", True): F.TINY_SDXL_UNET}[arch, tiny]
    meta = {} if arch == "sd15" else {"base": "sdxl", "latent_format": "sdxl"}
    if tiny and arch == "sdxl":
        meta["unet_config"] = {k: unet[k] for k in ("num_heads", "num_head_channels")}  # a non-standard width names its heads
    dtype = torch.float32 if tiny else torch.float16
    path = os.path.join(folder, f"g-{arch}.safetensors")
    F.write_generator(path, unet, seed=5, dtype=dtype, **meta)
    ours = nodes["OneStepLoadGenerator"].execute(os.path.basename(path))[0]
    if tiny:
        teacher = os.path.join(folder, f"teacher-{arch}.safetensors")
        F.write_generator(teacher, unet, seed=5, dtype=dtype, method="teacher", **meta)
        core = gm.load_generator_model(teacher)
    else:
        core = comfy.sd.load_diffusion_model(path)  # core's loader: detects the architecture from the weights
        want = comfy.model_base.SDXL if arch == "sdxl" else comfy.model_base.BaseModel
        detected = core.model.model_config.unet_config
        if type(core.model) is not want or any(detected.get(k) != v for k, v in unet.items() if k in detected):
            raise RuntimeError(f"core detected {type(core.model).__name__} {detected}, not the {arch} architecture asked for")
    vae = comfy.sd.VAE(sd=F.vae_state_dict())
    positive, negative = (conditioning(arch, size, seed) for seed in (0, 1))
    return types.SimpleNamespace(ours=ours, core=core, vae=vae, positive=positive, negative=negative, unet_config=unet)


def conditioning(arch: str, size: int, seed: int) -> list:
    """Random text conditioning in CLIP Text Encode's (SD1.5) or CLIP Text Encode SDXL's (at `size`, no crop) form."""
    g = torch.Generator().manual_seed(seed)
    if arch == "sd15":
        return [[torch.randn(1, 77, 768, generator=g), {"pooled_output": torch.randn(1, 768, generator=g)}]]
    sizes = {"width": size, "height": size, "crop_w": 0, "crop_h": 0, "target_width": size, "target_height": size}
    return [[torch.randn(1, 77, 2048, generator=g), {"pooled_output": torch.randn(1, 1280, generator=g), **sizes}]]
