"""Automatic1111/Forge script "One-step generator": txt2img with a generator file from models/onestep, in one UNet call.

The app imports every .py in scripts/, so this is the only one here. It sets steps 1, CFG 1 (the guidance is
baked into the generator), sigmas [σ_t, 0] from the file's metadata and the pack's one-step sampler
(onestep.sampling.sample_onestep in k-diffusion's signature, wrapped by webui/forge.py, which swaps in the
generator's UNet at sampling time); the app's own processing does the rest (prompts, seeds, VAE, saving).
API: POST /sdapi/v1/txt2img with "script_name": "one-step generator", "script_args": ["<file name>"].
"""
import importlib
import os
import sys
import types

import gradio as gr
import torch
from modules import errors, paths, processing, scripts, sd_samplers, sd_samplers_common

EXTENSION_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "onestep_pack_" + "".join(c if c.isalnum() else "_" for c in os.path.basename(EXTENSION_DIR))
SAMPLER_NAME = "One-Step (generator file)"  # set by this script; a plain run with it is refused with a message
TITLE = "One-step generator"


def _pack(module: str):
    """A module of this extension, imported as <unique package>.<module> (names must be unique across extensions)."""
    if PACKAGE not in sys.modules:
        package = types.ModuleType(PACKAGE)
        package.__path__ = [EXTENSION_DIR]  # the folder as a package, without running the ComfyUI entry __init__.py
        sys.modules[PACKAGE] = package
    return importlib.import_module(f"{PACKAGE}.{module}")


onestep_format = _pack("onestep.format")


def generator_dir() -> str:
    return os.path.join(paths.models_path, "onestep")


def generator_names() -> list:
    folder = generator_dir()
    os.makedirs(folder, exist_ok=True)
    return sorted(f for f in os.listdir(folder) if f.endswith(".safetensors"))


def _sampler(sd_model):
    """The one-step sampler for this app: Forge's (webui/forge.py); A1111 proper has no adapter yet (README)."""
    try:
        forge = _pack("webui.forge")
    except ImportError as e:
        raise RuntimeError(f"the one-step generator script needs Stable Diffusion WebUI Forge (A1111 proper is not supported yet: {e})") from None
    return forge.OneStepSampler(sd_model)


def _register_sampler() -> None:
    """Add the one-step sampler to the app's list, the way sampler extensions do (both apps read these names)."""
    if SAMPLER_NAME in sd_samplers.all_samplers_map:
        return
    data = sd_samplers_common.SamplerData(SAMPLER_NAME, _sampler, [], {})
    sd_samplers.all_samplers.append(data)
    sd_samplers.all_samplers_map[SAMPLER_NAME] = data
    sd_samplers.set_samplers()


try:
    _register_sampler()
except Exception:  # must not stop the app; run() then fails with the reason
    errors.report("[onestep] could not register the one-step sampler", exc_info=True)


class Script(scripts.Script):
    def title(self):
        return TITLE

    def show(self, is_img2img):
        return not is_img2img

    def ui(self, is_img2img):
        names = generator_names()
        generator = gr.Dropdown(label="Generator file (models/onestep)", choices=names, value=names[0] if names else None,
                                elem_id=self.elem_id("generator"))
        refresh = gr.Button("Refresh list", elem_id=self.elem_id("refresh"))
        refresh.click(fn=lambda: gr.update(choices=generator_names()), inputs=[], outputs=[generator])
        gr.Markdown("One UNet call per image: steps, CFG and sampler come from the file (its guidance is baked in).")
        return [generator]

    def run(self, p, generator):
        if not generator:
            raise ValueError("pick a generator file from models/onestep")
        path = os.path.join(generator_dir(), os.path.basename(generator))
        spec = onestep_format.read_metadata(path).spec()  # a file that is no generator is refused here, by name
        p.onestep_generator = path
        p.steps, p.cfg_scale, p.sampler_name, p.scheduler, p.enable_hr = 1, 1.0, SAMPLER_NAME, "Automatic", False
        p.sampler_noise_scheduler_override = lambda steps: torch.tensor([spec.sigma, 0.0])
        p.extra_generation_params.update({
            "One-step generator": os.path.basename(path), "One-step timestep": spec.timestep,
            "One-step prediction": spec.prediction, "One-step input": spec.input_convention})
        return processing.process_images(p)
