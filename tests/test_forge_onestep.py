"""The pack as an Automatic1111-family extension, in the real Stable Diffusion WebUI Forge (headless, CPU, API).

Forge starts from the test with a random-weight SD1.5 checkpoint and two SD1.5-size generator files (DMD2-style ε at
t=999 from raw z; v at t=625 from σ_t·z); txt2img runs through /sdapi/v1/txt2img with script_name/script_args.
A probe extension (tests/forge_probe) records Forge's noise, every UNet call and the latents it decodes; the tests
check one UNet call per image at the file's timestep and that the latent equals the pack's core formula
(onestep.parameterization.OneStepGenerator) for the same noise, with the generator's weights run by ComfyUI's UNet;
the same for a prompt's LoRA (merged by its definition), img2img through /sdapi/v1/img2img and the hires-fix pass
(the core's x0 at σ(timestep × denoise) on the re-noised start latent, onestep/img2img.py).
Opt-in (ONESTEP_FORGE_TESTS=1, tests/conftest.py): Forge's source is on neither PyPI, Debian nor npm, so a fresh
machine cannot build it; opted in without it (FORGE_SRC), the tests fail with the reason, never skip.
"""
from __future__ import annotations

import base64
import ctypes
import gc
import json
import os
import subprocess
import sys
import time

import pytest
import torch

from forge_host import FIXTURES, REPO, ForgeHost, ForgeUnavailable, bootstrap

from onestep.format import load_generator, read_metadata
from onestep.img2img import start_sigma, timestep_at
from onestep.parameterization import OneStepGenerator

GENERATORS = {  # file → (metadata overrides, seed, batch size of its txt2img)
    "gen-eps-raw.safetensors": (dict(method="dmd2", prediction="eps", timestep=999, input_convention="raw_z"), 1234, 2),
    "gen-v-sigma.safetensors": (dict(method="diffusion2gan", prediction="v", timestep=625, input_convention="sigma_z"), 77, 1),
}
FIXTURE_VERSION = "1"
SCRIPT = "one-step generator"
SIZE = 256
LORA = "onestep-test-lora"  # models/Lora/<LORA>.safetensors: a kohya-format LoRA for the fixture UNet


def _generators() -> dict[str, str]:
    """The generator files (one random SD1.5 UNet, fp16, under two parameterizations), built once into .host/."""
    paths = {name: os.path.join(FIXTURES, f"v{FIXTURE_VERSION}-{name}") for name in GENERATORS}
    if not all(os.path.isfile(p) for p in paths.values()):
        os.makedirs(FIXTURES, exist_ok=True)
        specs = {paths[n]: GENERATORS[n][0] for n in GENERATORS}
        code = (
            "import dataclasses, sys, json, torch\n"
            "from tools.fixtures import SD15_UNET, write_generator\n"
            "from onestep.format import load_generator, save_generator\n"
            "specs = json.loads(sys.argv[1]); first, *rest = specs\n"
            "write_generator(first, SD15_UNET, seed=11, dtype=torch.float16, **specs[first])\n"
            "sd, meta = load_generator(first)\n"
            "for p in rest: save_generator(p, sd, dataclasses.replace(meta, **specs[p]))\n"
        )
        subprocess.run([sys.executable, "-c", code, json.dumps(specs)], cwd=REPO, check=True)
    return paths


@pytest.fixture(scope="module")
def forge(tmp_path_factory):
    try:
        tree, python = bootstrap()
    except ForgeUnavailable as e:
        pytest.fail(f"FORGE NOT AVAILABLE on this machine, so the A1111/Forge extension is untested:\n{e}", pytrace=False)
    host = ForgeHost(str(tmp_path_factory.mktemp("forge_base")), tree, python)
    for name, path in _generators().items():
        os.symlink(path, os.path.join(host.models, "onestep", name))
    _write_lora(os.path.join(host.models, "Lora", LORA + ".safetensors"))
    seconds = host.start()
    # A random CLIP's last LayerNorm (bias 0) gives tokens of mean 0, and the default emphasis divides by that mean:
    # NaN text conditioning. "No norm" (read when the model loads, at the first generation) keeps it finite.
    status, _ = host.post("/sdapi/v1/options", {"sd_model_checkpoint": "random-sd15", "emphasis": "No norm"})
    assert status == 200
    sys.stdout.write(f"\n[forge] API up in {seconds:.0f} s\n")
    yield host
    host.stop()
    sys.stdout.write("\n--- Forge log tail ---\n" + host.log_tail(30))


def _lora(path: str):
    """The test LoRA (kohya keys) for the fixture generators' UNet, and the ldm key each of its modules changes."""
    from tools.fixtures import kohya_lora

    return kohya_lora(load_generator(path)[0])


def _write_lora(dest: str) -> None:
    from safetensors.torch import save_file

    lora, _ = _lora(_generators()["gen-v-sigma.safetensors"])
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    save_file(lora, dest + ".partial")
    os.replace(dest + ".partial", dest)


def _reference_unet(path: str, lora_strength: float = 0.0):
    """The generator's weights in ComfyUI's UNet (not Forge's), float32: an independent run of the same network;
    with the test LoRA merged at `lora_strength` by the LoRA definition (tools.fixtures.merge_kohya_lora)."""
    import comfy.supported_models
    from tools.fixtures import SD15_UNET, merge_kohya_lora

    net = comfy.supported_models.SD15(dict(SD15_UNET)).get_model({}).diffusion_model
    sd, _ = load_generator(path)
    if lora_strength:
        sd = merge_kohya_lora(sd, *_lora(path), lora_strength)
    net.load_state_dict(sd)  # copied into the float32 parameters (no float32 copy of the dict: memory is shared here)
    return net.eval()


@pytest.fixture(autouse=True)
def _give_memory_back():
    """Return each test's reference UNet (3.4 GB) to the system: Forge runs beside this process on a shared machine."""
    yield
    gc.collect()
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _one_step(forge, name: str, prompt: str, seed: int, endpoint: str = "txt2img", **extra) -> dict:
    """One image through the script; the probe's records of it (its single UNet call, noise and decoded latent)."""
    forge.take_records()
    t0 = time.time()
    status, body = forge.post(f"/sdapi/v1/{endpoint}", {
        "prompt": prompt, "seed": seed, "width": SIZE, "height": SIZE, "batch_size": 1, "steps": 20, "cfg_scale": 7.0,
        "sampler_name": "Euler", "script_name": SCRIPT, "script_args": [name], "send_images": True, "save_images": False,
        **extra})
    sys.stdout.write(f"\n[forge] {endpoint} {name} {prompt!r}: {time.time() - t0:.1f} s\n")
    assert status == 200, f"{body}\n{forge.log_tail()}"
    rec = forge.take_records()
    assert len(rec["unet"]) == 1 and len(rec["latent"]) == 1, {k: len(v) for k, v in rec.items()}
    return {"call": rec["unet"][0], "latent": rec["latent"][0], "noise": rec["noise"], "init": rec["init"], "body": body}


def test_api_lists_the_script_and_the_sampler(forge):
    scripts = forge.get("/sdapi/v1/scripts")
    assert SCRIPT in scripts["txt2img"], scripts
    assert "One-Step (generator file)" in [s["name"] for s in forge.get("/sdapi/v1/samplers")]


@pytest.mark.parametrize("name", list(GENERATORS))
def test_txt2img_one_unet_call_equals_core_formula(forge, name):
    _, seed, batch = GENERATORS[name]
    forge.take_records()
    t0 = time.time()
    status, body = forge.post("/sdapi/v1/txt2img", {
        "prompt": "a photo of a red fox in the snow", "negative_prompt": "blurry", "seed": seed, "width": SIZE,
        "height": SIZE, "batch_size": batch, "steps": 20, "cfg_scale": 7.0, "sampler_name": "Euler",
        "script_name": SCRIPT, "script_args": [name], "send_images": True, "save_images": False,
        "override_settings": {"sd_model_checkpoint": "random-sd15"},
    })
    sys.stdout.write(f"\n[forge] txt2img {name} batch {batch}: {time.time() - t0:.1f} s\n")
    assert status == 200, f"{body}\n{forge.log_tail()}"
    assert len(body["images"]) >= batch and all(base64.b64decode(i)[:4] == b"\x89PNG" for i in body["images"])
    info = json.loads(body["info"])
    assert "One-step generator: " + name in info["infotexts"][0] and "Steps: 1," in info["infotexts"][0], info["infotexts"][0]

    rec = forge.take_records()
    assert len(rec["noise"]) == 1 and len(rec["latent"]) == 1, {k: len(v) for k, v in rec.items()}
    # exactly one UNet call per image: one forward over the whole batch (CFG 1: no unconditional pass)
    assert [c["x"].shape[0] for c in rec["unet"]] == [batch], [c["x"].shape for c in rec["unet"]]
    call, noise, latent = rec["unet"][0], rec["noise"][0], rec["latent"][0]
    path = os.path.join(forge.models, "onestep", name)
    spec = read_metadata(path).spec()

    for i in range(batch):  # Forge's noise for image i is torch's normal draw from seed + i
        expected = torch.randn(noise.shape[1:], generator=torch.Generator().manual_seed(seed + i))
        torch.testing.assert_close(noise[i], expected, rtol=0, atol=0)
    for key in ("x", "context", "out"):
        assert torch.isfinite(call[key]).all(), f"Forge's UNet call has non-finite {key}"
    assert torch.all(call["t"] == spec.timestep), call["t"]
    torch.testing.assert_close(call["x"], spec.unet_input(noise), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(latent, spec.x0(call["out"], call["x"]), rtol=1e-5, atol=1e-5)

    with torch.no_grad():  # the core formula with the file's weights in ComfyUI's UNet, for the same noise and text
        net = _reference_unet(path)
        core = OneStepGenerator(lambda x, t, c: net(x, t, context=c), spec)(noise, call["context"])
    err = float((latent - core).abs().max() / core.abs().max())
    sys.stdout.write(f"[forge] {name}: max |Forge − core| / max |core| = {err:.2e}\n")
    assert err < 1e-4, err


def _rss_gib(forge) -> float:
    with open(f"/proc/{forge.proc.pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 2**20


def test_switching_generators_frees_the_previous_one(forge):
    """Alternating two generator files keeps one generator UNet in memory, not one per switch: Forge frees abandoned
    models only when it needs GPU room, so the adapter unloads the one it replaces (3.4 GB each at SD1.5 float32;
    before, every switch kept one and this file's runs ended with Forge OOM-killed on a 23 GB machine)."""
    names = ["gen-eps-raw.safetensors", "gen-v-sigma.safetensors"]
    rss = []
    for i in range(4):
        _one_step(forge, names[i % 2], "a red fox", 1)
        rss.append(round(_rss_gib(forge), 2))
    sys.stdout.write(f"[forge] resident GiB after alternating generators: {rss}\n")
    assert rss[-1] - rss[1] < 1.5, rss


def test_checkpoint_unet_back_after_the_script(forge):
    """After the script, a plain txt2img uses the checkpoint's own UNet again (one call per step, σ_max start)."""
    forge.take_records()
    status, body = forge.post("/sdapi/v1/txt2img", {
        "prompt": "a red fox", "seed": 5, "width": SIZE, "height": SIZE, "steps": 1, "cfg_scale": 1.0,
        "sampler_name": "Euler", "send_images": False, "save_images": False})
    assert status == 200, body
    rec = forge.take_records()
    assert len(rec["unet"]) == 1
    with torch.no_grad():  # the checkpoint's UNet is not the generator's: the outputs differ for the same input
        net = _reference_unet(os.path.join(forge.models, "onestep", "gen-eps-raw.safetensors"))
        out = net(rec["unet"][0]["x"], rec["unet"][0]["t"], context=rec["unet"][0]["context"])
    assert not torch.allclose(out, rec["unet"][0]["out"], rtol=1e-3, atol=1e-3)


def test_install_py_under_the_launcher(forge):
    r = subprocess.run([forge.python, os.path.join(REPO, "install.py")], cwd=forge.tree, capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": forge.tree})
    assert r.returncode == 0, r.stdout + r.stderr


def test_lora_in_the_prompt_applies_to_the_generator(forge):
    """<lora:name:w> reaches the one-step UNet through Forge's own LoRA machinery: the image is the generator's with the
    LoRA merged (W + w·(α/r)·up·down); weight 0 and a later run without it give the plain generator's image again."""
    name, seed, prompt = "gen-v-sigma.safetensors", 77, "a photo of a red fox in the snow"
    path = os.path.join(forge.models, "onestep", name)
    spec = read_metadata(path).spec()
    plain = _one_step(forge, name, prompt, seed)
    lora = _one_step(forge, name, f"{prompt} <lora:{LORA}:1>", seed)
    after = _one_step(forge, name, prompt, seed)  # the cached generator must not keep the merged weights
    zero = _one_step(forge, name, f"{prompt} <lora:{LORA}:0>", seed)
    assert f"<lora:{LORA}:1>" in json.loads(lora["body"]["info"])["infotexts"][0]  # the tag was in the prompt Forge ran
    # Forge strips the LoRA tag from the text: the same context and noise reach the UNet in every run
    for run in (lora, after, zero):
        torch.testing.assert_close(run["call"]["context"], plain["call"]["context"], rtol=0, atol=0)
        torch.testing.assert_close(run["call"]["x"], plain["call"]["x"], rtol=0, atol=0)

    with torch.no_grad():  # the core formula on the generator's weights with the LoRA merged by its definition
        merged = _reference_unet(path, lora_strength=1.0)
        core = OneStepGenerator(lambda x, t, c: merged(x, t, context=c), spec)(plain["noise"][0], lora["call"]["context"])
    err = float((lora["latent"] - core).abs().max() / core.abs().max())
    change = float((lora["latent"] - plain["latent"]).abs().max() / plain["latent"].abs().max())
    drift_after = float((after["latent"] - plain["latent"]).abs().max())
    drift_zero = float((zero["latent"] - plain["latent"]).abs().max())
    sys.stdout.write(f"[forge] LoRA: max |Forge − core with merged LoRA| / max = {err:.2e}; LoRA changes the latent by "
                     f"{change:.2e} (relative max); without it afterwards {drift_after:.2e}, at weight 0 {drift_zero:.2e} (max abs)\n")
    assert change > 0.05, change
    assert err < 1e-4, err
    assert drift_after == 0.0 and drift_zero == 0.0, (drift_after, drift_zero)


def _start_image() -> str:
    """A SIZE² start image for img2img (smooth colour ramps and a disc), base64 PNG."""
    import io

    import numpy as np
    from PIL import Image

    y, x = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    disc = ((x - 0.6) ** 2 + (y - 0.4) ** 2 < 0.05).astype(float)
    rgb = np.stack([x, y, 0.5 * (1 - x) + 0.5 * disc], axis=-1)
    buf = io.BytesIO()
    Image.fromarray((rgb * 255).round().astype(np.uint8)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _check_img2img(forge, name: str, run: dict, denoise: float) -> torch.Tensor:
    """Forge's img2img call is the core's at σ(timestep × denoise): the UNet gets the start latent re-noised to that σ
    (input scaled by c_in(σ)) at the nearest table time, and the image's latent is the core's x0 at σ from the file's
    weights run by ComfyUI's UNet. Returns the start latent."""
    path = os.path.join(forge.models, "onestep", name)
    spec = read_metadata(path).spec()
    assert len(run["init"]) == 1 and len(run["noise"]) == 1, run["init"]
    start, noise, call = run["init"][0]["x"], run["init"][0]["noise"], run["call"]
    torch.testing.assert_close(noise, run["noise"][0], rtol=0, atol=0)  # the noise Forge drew for this image
    sigma = start_sigma(spec, denoise)
    x = spec.noise_scaling_at(sigma, noise, start)
    assert torch.all(call["t"] == timestep_at(spec, sigma)), (call["t"], sigma)
    torch.testing.assert_close(call["x"], x * spec.input_scale_at(sigma), rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        net = _reference_unet(path)
        core = spec.denoised_at(net(x * spec.input_scale_at(sigma), call["t"], context=call["context"]), x, sigma)
    err = float((run["latent"] - core).abs().max() / core.abs().max())
    sys.stdout.write(f"[forge] img2img {name} denoise {denoise}: σ {sigma:.4f}, UNet time {float(call['t'][0]):g}; "
                     f"max |Forge − core| / max |core| = {err:.2e}\n")
    assert err < 1e-4, err
    return start


def test_img2img_calls_the_generator_at_timestep_times_denoise(forge):
    """img2img through /sdapi/v1/img2img: at denoising strength d the single call is made at σ(t·d) on the start latent
    re-noised there (the core's rule, as ComfyUI's One-Step Generate), exactly (_check_img2img).
    At d = 1 the call is txt2img's (same seed, same noise, σ_t) plus the start latent in the sample, as k-diffusion's
    noise scaling adds it at every σ: the UNet inputs differ by exactly c_in(σ_t)·start."""
    name, seed, prompt = "gen-v-sigma.safetensors", 77, "a photo of a red fox in the snow"
    spec = read_metadata(os.path.join(forge.models, "onestep", name)).spec()
    scripts = forge.get("/sdapi/v1/scripts")
    assert SCRIPT in scripts["img2img"], scripts
    txt = _one_step(forge, name, prompt, seed)
    image = _start_image()
    runs = {d: _one_step(forge, name, prompt, seed, "img2img", init_images=[image], denoising_strength=d) for d in (1.0, 0.6, 0.3)}
    for d, run in runs.items():
        _check_img2img(forge, name, run, d)
        torch.testing.assert_close(run["init"][0]["noise"], txt["noise"][0], rtol=0, atol=0)  # the seed's noise, as txt2img
        info = json.loads(run["body"]["info"])["infotexts"][0]
        assert "One-step generator: " + name in info and f"Denoising strength: {d}" in info, info
    start = runs[1.0]["init"][0]["x"]
    torch.testing.assert_close(runs[1.0]["call"]["x"] - txt["call"]["x"], start * spec.input_scale_at(start_sigma(spec, 1.0)),
                               rtol=1e-5, atol=1e-5)
    gap = float((runs[1.0]["latent"] - txt["latent"]).abs().max() / txt["latent"].abs().max())
    sys.stdout.write(f"[forge] {name} img2img at denoise 1 vs txt2img: max |Δ latent| / max = {gap:.2e}; "
                     f"mean |latent − start| / mean |start| by denoise: {_distances(runs)}\n")


def _distances(runs: dict) -> dict:
    return {d: round(float((r["latent"] - r["init"][0]["x"]).abs().mean() / r["init"][0]["x"].abs().mean()), 3) for d, r in runs.items()}


def test_img2img_lower_denoise_stays_closer_to_the_start(forge):
    """Raw-z ε generator (DMD2's convention): at σ the sample is start + sqrt(σ² + 1)·z and x0 = sample − σ·ε̂, so
    x0 − start = sqrt(σ² + 1)·z − σ·ε̂ shrinks with σ for any network whose ε̂ is not tied to −z: a lower denoising
    strength keeps the result closer to the start image even with this random-weight UNet (measured below). A v- or
    x0-predicting random UNet gives no such guarantee (its x0 is not a denoiser's); the test above reports its figures."""
    name, image = "gen-eps-raw.safetensors", _start_image()
    runs = {d: _one_step(forge, name, "a red fox", 1234, "img2img", init_images=[image], denoising_strength=d) for d in (1.0, 0.5, 0.2)}
    for d, run in runs.items():
        _check_img2img(forge, name, run, d)
    distance = _distances(runs)
    sys.stdout.write(f"[forge] {name} mean |latent − start| / mean |start| by denoise: {distance}\n")
    assert distance[1.0] > distance[0.5] > distance[0.2], distance


def test_hires_fix_is_a_one_step_img2img_of_the_upscaled_image(forge):
    """txt2img with hires fix: a one-step first pass at σ_t, then the upscaled latent re-noised to σ(t·d) for the hires
    denoising strength d and one more call (the same sampler whatever hires sampler, steps and CFG were asked for)."""
    name, seed = "gen-v-sigma.safetensors", 77
    spec = read_metadata(os.path.join(forge.models, "onestep", name)).spec()
    forge.take_records()
    status, body = forge.post("/sdapi/v1/txt2img", {
        "prompt": "a red fox", "seed": seed, "width": SIZE, "height": SIZE, "steps": 20, "cfg_scale": 7.0, "sampler_name": "Euler",
        "enable_hr": True, "hr_scale": 1.5, "hr_upscaler": "Latent", "denoising_strength": 0.5, "hr_second_pass_steps": 7,
        "hr_sampler_name": "Euler", "hr_cfg": 7.0, "script_name": SCRIPT, "script_args": [name], "send_images": True,
        "save_images": False,
        "hr_additional_modules": ["Use same choices"]})  # the UI's default; the API's (None) fails in Forge's hires pass
    assert status == 200, f"{body}\n{forge.log_tail()}"
    rec = forge.take_records()
    assert [c["x"].shape[-1] for c in rec["unet"]] == [SIZE // 8, SIZE * 3 // 16], [c["x"].shape for c in rec["unet"]]
    first, second = rec["unet"]
    assert torch.all(first["t"] == spec.timestep)
    first_latent = spec.x0(first["out"], first["x"])
    upscaled = torch.nn.functional.interpolate(first_latent, size=(SIZE * 3 // 16,) * 2, mode="bilinear", antialias=False)
    torch.testing.assert_close(rec["init"][0]["x"], upscaled, rtol=1e-5, atol=1e-5)  # Forge's "Latent" upscaler
    _check_img2img(forge, name, {"init": rec["init"], "noise": rec["noise"][1:], "call": second, "latent": rec["latent"][-1]}, 0.5)
    info = json.loads(body["info"])["infotexts"][0]
    assert "Hires upscale: 1.5" in info and "Denoising strength: 0.5" in info and "Steps: 1," in info, info
    from PIL import Image
    import io
    assert Image.open(io.BytesIO(base64.b64decode(body["images"][0]))).size == (SIZE * 3 // 2,) * 2
