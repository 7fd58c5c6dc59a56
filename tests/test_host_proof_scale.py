"""The proof-scale model set in the REAL ComfyUI host over HTTP: Load Proof-Scale Model Set feeding core's
CLIPTextEncode, EmptyLatentImage, KSampler, VAE Decode and SaveImage (teacher), and One-Step Generate (student).
Random-weight stand-ins of the default architecture, written into the host's models/onestep by this module."""
import os

import pytest
import torch
from PIL import Image
from comfy_host import combo_options
from safetensors.torch import load_file

from tools import proof_scale_encoder as E

NODE = "OneStepLoadProofScaleModelSet"


@pytest.fixture(scope="module")
def proof_scale(host):
    """The stand-in set in the host's models/onestep (role → file name), after checking the node is served."""
    info = host.get("/object_info")
    assert NODE in info, f"{NODE} is not served: add 'proof_scale_models' to NODE_MODULES in onestep_nodes/__init__.py"
    E.write_stand_in_set(os.path.join(host.base_dir, "models", "onestep"))
    return dict(E.STAND_IN_FILES)


def ok(entry):
    assert "refused" not in entry, f"prompt refused at validation: {entry.get('refused')}"
    assert entry["error"] is None, f"{entry['error'].get('exception_type')}: {entry['error'].get('exception_message')}"
    return entry["outputs"]


def saved(host, outputs, node, kind="images"):
    return [os.path.join(host.base_dir, "output", item["subfolder"], item["filename"]) for item in outputs[node][kind]]


def loader(files, teacher=None, student=None):
    return {"1": {"class_type": NODE, "inputs": {"teacher": teacher or files["teacher"], "student": student or files["student"], "text_encoder": files["text_encoder"]}},
            "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "Sneaker", "clip": ["1", 2]}}}


def test_node_has_tooltips_and_lists_files(host, proof_scale):
    node = host.get("/object_info")[NODE]
    assert node["category"] == "Diffusion2GAN/one-step" and len(node["output_tooltips"]) == 4
    for name, spec in node["input"]["required"].items():
        assert spec[1].get("tooltip"), name
        assert set(proof_scale.values()) <= set(combo_options(spec))


def test_teacher_ksampler_vae_decode_save_image(host, proof_scale):
    g = loader(proof_scale)
    g.update({
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["1", 2]}},
        "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 256, "height": 256, "batch_size": 2}},
        "5": {"class_type": "KSampler", "inputs": {"model": ["1", 0], "seed": 3, "steps": 10, "cfg": 3.0, "sampler_name": "euler", "scheduler": "normal",
                                                   "positive": ["2", 0], "negative": ["3", 0], "latent_image": ["4", 0], "denoise": 1.0}},
        "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 3]}},
        "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": "proof_scale/teacher"}},
        "8": {"class_type": "SaveLatent", "inputs": {"samples": ["5", 0], "filename_prefix": "latents/proof_scale_teacher"}},
    })
    outputs = ok(host.run(g))
    images = saved(host, outputs, "7")
    assert len(images) == 2
    for path in images:
        assert Image.open(path).size == (256, 256)
    latent = load_file(saved(host, outputs, "8", "latents")[0])["latent_tensor"]
    assert latent.shape == (2, 1, 32, 32) and torch.isfinite(latent).all()


def test_student_one_step_generate_vae_decode_save_image(host, proof_scale):
    g = loader(proof_scale)
    g.update({
        "3": {"class_type": "OneStepGenerate", "inputs": {"model": ["1", 1], "positive": ["2", 0], "seed": 5, "width": 256, "height": 256, "batch_size": 2}},
        "4": {"class_type": "OneStepVAEDecode", "inputs": {"samples": ["3", 0], "vae": ["1", 3], "fast": "cuda graph"}},
        "5": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "proof_scale/student"}},
    })
    images = saved(host, ok(host.run(g)), "5")
    assert len(images) == 2
    for path in images:
        assert Image.open(path).size == (256, 256)


def test_swapped_files_are_refused_by_name(host, proof_scale):
    entry = host.run(_swapped(proof_scale))
    assert "refused" not in entry and entry["error"] is not None, "swapped teacher/student should fail"
    assert "pick it as the student" in entry["error"]["exception_message"]


def _swapped(files):
    g = loader(files, teacher=files["student"])
    g["3"] = {"class_type": "OneStepGenerate", "inputs": {"model": ["1", 1], "positive": ["2", 0], "seed": 5, "width": 256, "height": 256, "batch_size": 1}}
    g["4"] = {"class_type": "SaveLatent", "inputs": {"samples": ["3", 0], "filename_prefix": "latents/proof_scale_swapped"}}
    return g


def test_bundled_fmnist_workflow_runs_on_the_shipped_default_set(host):
    """workflows/api/fmnist_text_to_image.json unchanged, on the trained files serve.sh installs (not stand-ins):
    Fashion-MNIST images are garments on a black background, so a trained teacher and student leave the 2-pixel
    padding of the 32×32 latent black and put a bright object in the middle; random weights do neither."""
    import json

    import numpy as np

    from comfy_host import REPO

    from onestep.atomic import file_sha256
    from tools import ship_proof_scale

    shipped = ship_proof_scale.shipped_set()
    assert shipped, "default_models/proof_scale holds no shipped set"
    with open(os.path.join(REPO, "workflows", "api", "fmnist_text_to_image.json")) as f:
        prompt = json.load(f)
    assert {prompt["1"]["inputs"][r] for r in ("teacher", "student", "text_encoder")} == {os.path.basename(p) for p in shipped.values()}
    installed = os.path.join(host.base_dir, "models", "onestep")
    for path in shipped.values():  # the host runs the very files the repo ships
        assert file_sha256(os.path.join(installed, os.path.basename(path))) == file_sha256(path)
    outputs = ok(host.run(prompt))
    for node in ("5", "10"):  # one step, teacher
        images = saved(host, outputs, node)
        assert len(images) == 4
        for path in images:
            img = np.asarray(Image.open(path).convert("L"), dtype=np.float32) / 255.0
            assert img.shape == (256, 256)
            cells = img.reshape(32, 8, 32, 8).mean(axis=(1, 3))  # back to the 32×32 latent grid (8×8 blocks)
            border = np.concatenate([cells[:2].ravel(), cells[-2:].ravel(), cells[:, :2].ravel(), cells[:, -2:].ravel()])
            assert border.mean() < 0.1, f"{os.path.basename(path)}: padding not black ({border.mean():.3f})"
            assert cells[8:24, 8:24].mean() > 0.2, f"{os.path.basename(path)}: no garment in the middle ({cells[8:24, 8:24].mean():.3f})"
    one_step = [np.asarray(Image.open(p)) for p in saved(host, outputs, "5")]
    assert any(not np.array_equal(one_step[0], x) for x in one_step[1:])  # four seeds, four images
