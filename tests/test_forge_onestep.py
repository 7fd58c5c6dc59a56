"""The pack as an Automatic1111-family extension, in the real Stable Diffusion WebUI Forge (headless, CPU, API).

Forge starts from the test with a random-weight SD1.5 checkpoint and two SD1.5-size generator files (DMD2-style ε at
t=999 from raw z; v at t=625 from σ_t·z); txt2img runs through /sdapi/v1/txt2img with script_name/script_args.
A probe extension (tests/forge_probe) records Forge's noise, every UNet call and the latents it decodes; the tests
check one UNet call per image at the file's timestep and that the latent equals the pack's core formula
(onestep.parameterization.OneStepGenerator) for the same noise, with the generator's weights run by ComfyUI's UNet.
Opt-in (ONESTEP_FORGE_TESTS=1, tests/conftest.py): Forge's source is on neither PyPI, Debian nor npm, so a fresh
machine cannot build it; opted in without it (FORGE_SRC), the tests fail with the reason, never skip.
"""
from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time

import pytest
import torch

from forge_host import FIXTURES, REPO, ForgeHost, ForgeUnavailable, bootstrap

from onestep.format import load_generator, read_metadata
from onestep.parameterization import OneStepGenerator

GENERATORS = {  # file → (metadata overrides, seed, batch size of its txt2img)
    "gen-eps-raw.safetensors": (dict(method="dmd2", prediction="eps", timestep=999, input_convention="raw_z"), 1234, 2),
    "gen-v-sigma.safetensors": (dict(method="diffusion2gan", prediction="v", timestep=625, input_convention="sigma_z"), 77, 1),
}
FIXTURE_VERSION = "1"
SCRIPT = "one-step generator"
SIZE = 256


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
    seconds = host.start()
    # A random CLIP's last LayerNorm (bias 0) gives tokens of mean 0, and the default emphasis divides by that mean:
    # NaN text conditioning. "No norm" (read when the model loads, at the first generation) keeps it finite.
    status, _ = host.post("/sdapi/v1/options", {"sd_model_checkpoint": "random-sd15", "emphasis": "No norm"})
    assert status == 200
    sys.stdout.write(f"\n[forge] API up in {seconds:.0f} s\n")
    yield host
    host.stop()
    sys.stdout.write("\n--- Forge log tail ---\n" + host.log_tail(30))


def _reference_unet(path: str):
    """The generator's weights in ComfyUI's UNet (not Forge's), float32: an independent run of the same network."""
    import comfy.supported_models
    from tools.fixtures import SD15_UNET

    net = comfy.supported_models.SD15(dict(SD15_UNET)).get_model({}).diffusion_model
    sd, _ = load_generator(path)
    net.load_state_dict({k: v.float() for k, v in sd.items()})
    return net.eval()


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
