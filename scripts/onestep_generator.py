"""Automatic1111/Forge script "One-step generator": txt2img and img2img with a generator file from models/onestep, in one
UNet call.

The app imports every .py in scripts/, so this is the only one here. It sets steps 1, CFG 1 (the guidance is
baked into the generator), sigmas [σ_t, 0] from the file's metadata and the pack's one-step sampler
(onestep.sampling.sample_onestep in k-diffusion's signature, wrapped by onestep_webui/forge.py, which swaps in the
generator's UNet at sampling time); the app's own processing does the rest (prompts, seeds, VAE, saving).
img2img makes the call at σ(timestep × denoising strength) on the start image's latent re-noised to that σ, the rule
of ComfyUI's One-Step Generate (onestep/img2img.py); hires fix's second pass is such an img2img of the upscaled first
image, at its own denoising strength. A prompt's <lora:name:weight> applies to the generator's UNet.
API: POST /sdapi/v1/txt2img (or /sdapi/v1/img2img with init_images and denoising_strength) with
"script_name": "one-step generator", "script_args": ["<file name>"].

Imports: Automatic1111 and Forge put the extension's folder first on sys.path while they load this file, so the core
(`onestep`) and the app adapter (`onestep_webui`) import by their own names here, as in ComfyUI and the tests; both
names are checked to resolve to this extension (module names are shared by every extension of the app).
"""
import os

import gradio as gr
import torch
from modules import errors, paths, processing, scripts, sd_samplers, sd_samplers_common

import onestep
import onestep_webui

EXTENSION_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLER_NAME = "One-Step (generator file)"  # set by this script; a plain run with it is refused with a message
TITLE = "One-step generator"


def _check_own(module) -> None:
    """Refuse, by name, a package of another extension (or an installed package) that took this one's name."""
    found = os.path.dirname(os.path.dirname(os.path.realpath(module.__file__)))
    if found != os.path.realpath(EXTENSION_DIR):
        raise ImportError(f"[onestep] package {module.__name__!r} resolves to {found}, not to this extension's folder "
                          f"{EXTENSION_DIR}: another extension or installed package has the same top-level name")


for _package in (onestep, onestep_webui):
    _check_own(_package)
from onestep import format as onestep_format  # noqa: E402 (after the check, which names a clash plainly)
from onestep import img2img as onestep_img2img  # noqa: E402

try:  # Forge's backend; Automatic1111 proper has none, and no adapter yet (README)
    from onestep_webui import forge
except ImportError as e:
    forge, FORGE_MISSING = None, e


def generator_dir() -> str:
    return os.path.join(paths.models_path, "onestep")


def generator_names() -> list:
    folder = generator_dir()
    os.makedirs(folder, exist_ok=True)
    return sorted(f for f in os.listdir(folder) if f.endswith(".safetensors"))


def one_step_sigmas(spec, denoise: float, steps: int) -> torch.Tensor:
    """The app's sigma schedule of `steps` + 1 values for the one call at σ(timestep × denoise) (onestep.img2img).

    txt2img samples all of them ([σ, 0] at steps 1); img2img samples the last t_enc + 2, with t_enc = 0 at one step
    (and, under "img2img_fix_steps", steps = 1/denoise), so the call's σ fills every place before the final 0.
    """
    return torch.tensor([onestep_img2img.start_sigma(spec, denoise)] * max(int(steps), 1) + [0.0])


def _sampler(sd_model):
    """The one-step sampler for this app: Forge's (onestep_webui/forge.py); A1111 proper has no adapter yet (README)."""
    if forge is None:
        raise RuntimeError("the one-step generator script needs Stable Diffusion WebUI Forge "
                           f"(A1111 proper is not supported yet: {FORGE_MISSING})")
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
        return True  # txt2img, and img2img from the start image at timestep × denoising strength

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
        p.steps, p.cfg_scale, p.sampler_name, p.scheduler = 1, 1.0, SAMPLER_NAME, "Automatic"
        # Hires fix's second pass is an img2img of the upscaled first image: the same sampler, one step, no CFG.
        p.hr_sampler_name, p.hr_scheduler, p.hr_second_pass_steps, p.hr_cfg = SAMPLER_NAME, "Automatic", 0, 1.0
        img2img = self.is_img2img
        p.sampler_noise_scheduler_override = lambda steps: one_step_sigmas(
            spec, p.denoising_strength if img2img or getattr(p, "is_hr_pass", False) else 1.0, steps)
        p.extra_generation_params.update({
            "One-step generator": os.path.basename(path), "One-step timestep": spec.timestep,
            "One-step prediction": spec.prediction, "One-step input": spec.input_convention})
        return processing.process_images(p)
