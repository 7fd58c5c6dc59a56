"""Train Rectified Flow and Train InstaFlow in the REAL ComfyUI host over HTTP on a small teacher: reflow writes a
2-rectified-flow file that core KSampler samples with euler/simple; Collect Teacher Pairs on that MODEL (euler,
simple) — and the headless collector on the 2-RF file, the same pairs — and Train InstaFlow from the 2-RF file write an
instaflow file One-Step Generate runs; cancel leaves a
checkpoint and no file, the resumed run equals an uninterrupted one; an ε generator as init_from is refused by name."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import torch
from comfy_host import REPO, comfyui_dir
from safetensors.torch import load_file
from test_host import CLIP, failed, latent, ok

from onestep import format

TEACHER = "tiny_eps_t999.safetensors"  # a small SD1.5-family ε UNet


def reflow_graph(name, dataset="flow-pairs", steps=4, **kw):
    """Collect the teacher's pairs (128², 2 euler steps, CFG 3), reflow on them, sample the 2-RF with KSampler euler/simple."""
    g = {
        "1": {"class_type": "OneStepLoadGenerator", "inputs": {"generator": TEACHER}},
        "2": {"class_type": "CLIPLoader", "inputs": {"clip_name": CLIP, "type": "stable_diffusion"}},
        "4": {"class_type": "OneStepCollectTeacherPairs", "inputs": {
            "model": ["1", 0], "clip": ["2", 0], "prompts": "a red fox\na blue bird\na green frog", "prompt_file": "", "prompt_column": "prompt",
            "negative": "", "sampler_name": "euler", "scheduler": "normal", "steps": 2, "cfg": 3.0, "seed": 0, "count": 4,
            "width": 128, "height": 128, "batch_size": 2, "shard_size": 2, "dataset_name": dataset}},
        "5": {"class_type": "OneStepTrainReflow", "inputs": {
            "model": ["1", 0], "dataset": ["4", 0], "steps": steps, "batch_size": 2, "lr": 1e-4, "lora_rank": 0, "save_every": 0, "seed": 0,
            "generator_name": name, "resume": True, "gradient_checkpointing": False, "t_eps": 1e-3, "text_dropout": 0.5}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red fox", "clip": ["2", 0]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["2", 0]}},
        "8": {"class_type": "EmptyLatentImage", "inputs": {"width": 128, "height": 128, "batch_size": 1}},
        "9": {"class_type": "KSampler", "inputs": {
            "model": ["5", 0], "seed": 0, "steps": 2, "cfg": 1.5, "sampler_name": "euler", "scheduler": "simple", "positive": ["6", 0],
            "negative": ["7", 0], "latent_image": ["8", 0], "denoise": 1.0}},
        "90": {"class_type": "SaveLatent", "inputs": {"samples": ["9", 0], "filename_prefix": f"latents/{name}"}},
        "91": {"class_type": "SaveImage", "inputs": {"images": ["5", 2], "filename_prefix": f"onestep/{name}_loss"}},
    }
    g["5"]["inputs"].update(kw)
    return g


def instaflow_graph(name, rf_name, **kw):
    """The reflow graph, then pairs of the 2-RF's own Euler ODE (euler, simple), InstaFlow from its file, one-step generation."""
    g = reflow_graph(rf_name)
    g["10"] = {"class_type": "OneStepCollectTeacherPairs", "inputs": {
        **g["4"]["inputs"], "model": ["5", 0], "scheduler": "simple", "cfg": 1.0, "dataset_name": f"{rf_name}-pairs"}}
    g["11"] = {"class_type": "OneStepTrainInstaFlow", "inputs": {
        "model": ["1", 0], "init_from": ["5", 1], "dataset": ["10", 0], "latent_lpips": "(none: latent MSE regression)", "regression": "mse",
        "steps": 3, "batch_size": 2, "lr": 1e-4, "lora_rank": 0, "save_every": 0, "seed": 0, "generator_name": name, "resume": True,
        "gradient_checkpointing": False}}
    g["12"] = {"class_type": "OneStepGenerate", "inputs": {"model": ["11", 0], "positive": ["6", 0], "seed": 0, "width": 128, "height": 128, "batch_size": 1}}
    g["92"] = {"class_type": "SaveLatent", "inputs": {"samples": ["12", 0], "filename_prefix": f"latents/{name}"}}
    g["11"]["inputs"].update(kw)
    return g


def generator_file(host, name):
    return os.path.join(host.base_dir, "models", "onestep", f"{name}.safetensors")


def test_reflow_writes_a_2rf_that_ksampler_samples_and_instaflow_distils_it(host, tmp_path):
    out = ok(host.run(instaflow_graph("if-straight", "rf-straight")))
    rf = format.read_metadata(generator_file(host, "rf-straight"))
    assert (rf.method, rf.prediction, rf.timestep, rf.guidance) == ("2-rectified-flow", "flow", 1000, 3.0)
    teacher = load_file(os.path.join(host.base_dir, "models", "onestep", TEACHER))
    rf_sd = load_file(generator_file(host, "rf-straight"))
    assert rf_sd.keys() == teacher.keys() and any(not torch.allclose(rf_sd[k].float(), teacher[k].float()) for k in rf_sd)
    assert torch.isfinite(latent(host, out, "90")).all()  # KSampler euler/simple on the 2-RF MODEL
    assert out["91"]["images"], "no loss-curve image"
    meta = format.read_metadata(generator_file(host, "if-straight"))
    assert (meta.method, meta.prediction, meta.timestep) == ("instaflow", "flow", 1000)
    assert "rf-straight-pairs" in meta.source
    insta = load_file(generator_file(host, "if-straight"))
    assert torch.isfinite(latent(host, out, "92")).all()  # One-Step Generate on the instaflow MODEL
    # G started from the 2-RF (not the teacher): after 3 steps at lr 1e-4 it is far closer to the 2-RF than to the teacher
    k = next(k for k in insta if k.endswith("out.2.weight"))
    assert (insta[k].float() - rf_sd[k].float()).abs().max() < (insta[k].float() - teacher[k].float()).abs().max()
    # headless: the pair collector on the 2-RF file (--generator) writes the node's pairs of that MODEL
    rf_pairs = os.path.join(host.base_dir, "models", "onestep_pairs", "rf-straight-pairs")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([REPO, comfyui_dir()])}
    run = subprocess.run([sys.executable, "-m", "onestep.pairs.cli", "collect", "--generator", generator_file(host, "rf-straight"),
                          "--clip", os.path.join(host.base_dir, "models", "text_encoders", CLIP),
                          *(a for p in ("a red fox", "a blue bird", "a green frog") for a in ("--prompt", p)),
                          "--sampler", "euler", "--scheduler", "simple", "--steps", "2", "--cfg", "1", "--seed", "0", "--count", "4",
                          "--width", "128", "--height", "128", "--batch-size", "2", "--shard-size", "2", "--out", str(tmp_path / "cli")],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    node_shards = sorted(f for f in os.listdir(rf_pairs) if f.startswith("shard-"))
    assert node_shards == sorted(f for f in os.listdir(tmp_path / "cli") if f.startswith("shard-")) and node_shards
    for f in node_shards:
        a, b = load_file(os.path.join(rf_pairs, f)), load_file(str(tmp_path / "cli" / f))
        for key in ("noise", "seed", "prompt_index"):
            assert torch.equal(a[key], b[key]), (f, key)
        assert torch.allclose(a["latent"], b["latent"], rtol=1e-5, atol=1e-5 * a["latent"].abs().max()), f


def test_reflow_cancel_leaves_a_checkpoint_and_resume_is_exact(host):
    ok(host.run(reflow_graph("rf-ref", steps=6)))
    run_dir = os.path.join(host.base_dir, "models", "onestep_runs", "rf-cut")

    def interrupt_at_first_checkpoint():
        deadline = time.time() + 600
        while time.time() < deadline and not os.path.exists(os.path.join(run_dir, "checkpoint.safetensors")):
            time.sleep(0.02)
        host.post("/interrupt", {})

    t = threading.Thread(target=interrupt_at_first_checkpoint)
    t.start()
    entry = host.run(reflow_graph("rf-cut", steps=6, save_every=2))
    t.join()
    assert entry["status"]["status_str"] != "success"
    assert os.path.exists(os.path.join(run_dir, "checkpoint.safetensors"))
    assert not os.path.exists(generator_file(host, "rf-cut"))  # no half-trained generator file
    ok(host.run(reflow_graph("rf-cut", steps=6, save_every=2)))
    ref, cut = load_file(generator_file(host, "rf-ref")), load_file(generator_file(host, "rf-cut"))
    for k in ref:
        assert torch.allclose(ref[k], cut[k], atol=1e-6), k


def test_instaflow_refuses_an_eps_generator_as_init_from(host):
    g = instaflow_graph("if-bad", "rf-straight")
    g["11"]["inputs"]["init_from"] = TEACHER
    msg = failed(host.run(g))
    assert "init_from tiny_eps_t999.safetensors is a 'eps'-prediction" in msg and "2-rectified-flow" in msg, msg
    assert not os.path.exists(generator_file(host, "if-bad"))


def test_instaflow_names_a_missing_init_from(host):
    g = instaflow_graph("if-missing", "rf-straight")
    g["11"]["inputs"]["init_from"] = "no-such-flow"
    assert "init_from 'no-such-flow' is not a generator file in models/onestep" in failed(host.run(g))


def test_low_memory_lora_reflow_writes_the_merged_2rf_and_no_lora(host):
    out = ok(host.run(reflow_graph("rf-lowmem", steps=2, lora_rank=4, lr=1e-2, memory="low")))
    assert torch.isfinite(latent(host, out, "90")).all()
    assert format.read_metadata(generator_file(host, "rf-lowmem")).method == "2-rectified-flow"
    assert not os.path.exists(os.path.join(host.base_dir, "models", "loras", "rf-lowmem.safetensors"))


def test_instaflow_with_a_gan_weight_trains_a_discriminator_and_writes_an_instaflow_file(host):
    """Train InstaFlow's optional GAN term (gan_weight > 0: method instaflow-gan): D's losses are logged from a quarter
    of the steps on, the file is an instaflow file that One-Step Generate runs."""
    out = ok(host.run(instaflow_graph("if-gan", "rf-gan", steps=4, gan_weight=0.3)))
    meta = format.read_metadata(generator_file(host, "if-gan"))
    assert (meta.method, meta.prediction, meta.timestep) == ("instaflow", "flow", 1000)
    assert torch.isfinite(latent(host, out, "92")).all()
    with open(os.path.join(host.base_dir, "models", "onestep_runs", "if-gan", "history.json"), encoding="utf-8") as f:
        history = json.load(f)
    assert {"d_total", "regression"} <= set(history), sorted(history)  # term → [(step, value)]
    assert [step for step, _ in history["d_total"]] == [2, 3, 4] and [s for s, _ in history["regression"]] == [1, 2, 3, 4]


def instaflow_real_images_graph(name, **kw):
    """Train InstaFlow with its GAN term on real images (three latents the teacher makes in one step stand for VAE
    Encode's), after the reflow graph of the GAN test above (ComfyUI reuses its cached outputs)."""
    g = instaflow_graph(name, "rf-gan", steps=4, **kw)
    g["30"] = {"class_type": "OneStepGenerate", "inputs": {"model": ["1", 0], "positive": ["6", 0], "seed": 5, "width": 128, "height": 128, "batch_size": 3}}
    g["95"] = {"class_type": "SaveLatent", "inputs": {"samples": ["30", 0], "filename_prefix": f"latents/{name}-real"}}
    g["11"]["inputs"]["real_images"] = ["30", 0]
    return g


def test_instaflow_gan_on_real_images_with_a_fixed_weight(host):
    """The proof-scale InstaFlow recipe's GAN settings from the node: gan_balance fixed and real images on D's real side
    (D then not z-conditioned), written into the run folder and the checkpoint's config."""
    from safetensors import safe_open

    out = ok(host.run(instaflow_real_images_graph("if-real", gan_weight=0.1, gan_balance="fixed", real_image_prompts="0 1 2")))
    run_dir = os.path.join(host.base_dir, "models", "onestep_runs", "if-real")
    real = load_file(os.path.join(run_dir, "real_images.safetensors"))
    assert torch.equal(real["latents"], latent(host, out, "95").float()) and real["labels"].tolist() == [0, 1, 2]
    with safe_open(os.path.join(run_dir, "checkpoint.safetensors"), "pt") as f:
        config = json.loads(f.metadata()["onestep.trainer_state"])["config"]
    assert (config["loss"]["gan_balance"], config["loss"]["gan_weight"]) == ("fixed", 0.1)
    assert config["discriminator"]["real_images"] == os.path.join(run_dir, "real_images.safetensors")
    assert not config["discriminator"]["z_conditioning"]
    assert format.read_metadata(generator_file(host, "if-real")).method == "instaflow"
    assert torch.isfinite(latent(host, out, "92")).all()


def test_instaflow_real_images_need_the_gan_term(host):
    msg = failed(host.run(instaflow_real_images_graph("if-real-off", gan_weight=0.0)))
    assert "real_images feed the discriminator: set gan_weight above 0" in msg, msg
    assert not os.path.exists(generator_file(host, "if-real-off"))
