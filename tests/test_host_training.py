"""Train Diffusion2GAN in the REAL ComfyUI host over HTTP on a small teacher: the generator lands in
models/onestep and generates; cancel leaves a checkpoint and the resumed run equals an uninterrupted one; a
LoRA run's LoRA works in core's loader; real images reach the discriminator; a dataset from another text encoder is
refused."""
from __future__ import annotations

import os
import threading
import time

import pytest
import torch
from comfy_host import combo_options
from safetensors.torch import load_file
from test_host import CLIP, failed, latent, ok

TEACHER = "tiny_eps_t999.safetensors"  # a small SD1.5-family UNet; any MODEL can be the teacher


def graph(name, dataset, steps=4, count=4, lora_rank=0, teacher=TEACHER, **kw):
    """Collect pairs from the tiny teacher (128², 2 euler steps), train on them, generate with the result."""
    g = {
        "1": {"class_type": "OneStepLoadGenerator", "inputs": {"generator": teacher}},
        "2": {"class_type": "CLIPLoader", "inputs": {"clip_name": CLIP, "type": "stable_diffusion"}},
        "4": {"class_type": "OneStepCollectTeacherPairs", "inputs": {
            "model": ["1", 0], "clip": ["2", 0], "prompts": "a red fox\na blue bird\na green frog", "prompt_file": "", "prompt_column": "prompt",
            "negative": "", "sampler_name": "euler", "scheduler": "normal", "steps": 2, "cfg": 3.0, "seed": 0, "count": count,
            "width": 128, "height": 128, "batch_size": 2, "shard_size": 2, "dataset_name": dataset}},
        "5": {"class_type": "OneStepTrainDiffusion2GAN", "inputs": {
            "model": ["1", 0], "dataset": ["4", 0], "latent_lpips": "onestep-default-latent-lpips-sd15-random.safetensors",
            "regression": "elatentlpips", "steps": steps, "batch_size": 2, "lr_g": 1e-4, "lr_d": 1e-4, "gan_weight": 0.1, "r1_gamma": 1.0,
            "warmup_steps": 1, "lora_rank": lora_rank, "save_every": 0, "seed": 0, "generator_name": name, "resume": True,
            "gradient_checkpointing": False}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red fox", "clip": ["2", 0]}},
        "7": {"class_type": "OneStepGenerate", "inputs": {"model": ["5", 0], "positive": ["6", 0], "seed": 0, "width": 128, "height": 128, "batch_size": 1}},
        "90": {"class_type": "SaveLatent", "inputs": {"samples": ["7", 0], "filename_prefix": f"latents/{name}"}},
        "91": {"class_type": "SaveImage", "inputs": {"images": ["5", 2], "filename_prefix": f"onestep/{name}_loss"}},
    }
    g["5"]["inputs"].update(kw)
    return g


def generator_file(host, name):
    return os.path.join(host.base_dir, "models", "onestep", f"{name}.safetensors")


def test_train_writes_a_generator_that_generates(host):
    out = ok(host.run(graph("d2g-straight", "train-pairs")))
    sd = load_file(generator_file(host, "d2g-straight"))
    teacher = load_file(os.path.join(host.base_dir, "models", "onestep", TEACHER))
    assert sd.keys() == teacher.keys()
    assert any(not torch.allclose(sd[k].float(), teacher[k].float()) for k in sd)  # it trained
    assert torch.isfinite(latent(host, out)).all()
    assert out["91"]["images"], "no loss-curve image"
    info = combo_options(host.get("/object_info/OneStepLoadGenerator")["OneStepLoadGenerator"]["input"]["required"]["generator"])
    assert "d2g-straight.safetensors" in info  # listed at once by Load One-Step Generator


def test_cancel_leaves_a_checkpoint_and_resume_is_exact(host):
    ok(host.run(graph("d2g-ref", "train-pairs", steps=6)))
    run_dir = os.path.join(host.base_dir, "models", "onestep_runs", "d2g-cut")

    def interrupt_at_first_checkpoint():
        deadline = time.time() + 600
        while time.time() < deadline and not os.path.exists(os.path.join(run_dir, "checkpoint.safetensors")):
            time.sleep(0.02)
        host.post("/interrupt", {})

    t = threading.Thread(target=interrupt_at_first_checkpoint)
    t.start()
    entry = host.run(graph("d2g-cut", "train-pairs", steps=6, save_every=2))
    t.join()
    assert entry["status"]["status_str"] != "success"
    assert os.path.exists(os.path.join(run_dir, "checkpoint.safetensors"))
    assert not os.path.exists(generator_file(host, "d2g-cut"))  # no half-trained generator file
    ok(host.run(graph("d2g-cut", "train-pairs", steps=6, save_every=2)))
    ref, cut = load_file(generator_file(host, "d2g-ref")), load_file(generator_file(host, "d2g-cut"))
    for k in ref:
        assert torch.allclose(ref[k], cut[k], atol=1e-6), k


def test_lora_run_saves_a_lora_for_core_loaders(host):
    ok(host.run(graph("d2g-lora", "train-pairs", lora_rank=4, lr_g=1e-2)))
    assert os.path.exists(os.path.join(host.base_dir, "models", "loras", "d2g-lora.safetensors"))
    g = graph("d2g-lora", "train-pairs", lora_rank=4, lr_g=1e-2)
    g["8"] = {"class_type": "LoraLoaderModelOnly", "inputs": {"model": ["1", 0], "lora_name": "d2g-lora.safetensors", "strength_model": 1.0}}
    g["9"] = {"class_type": "OneStepGenerate", "inputs": {"model": ["8", 0], "positive": ["6", 0], "seed": 0, "width": 128, "height": 128, "batch_size": 1}}
    g["92"] = {"class_type": "SaveLatent", "inputs": {"samples": ["9", 0], "filename_prefix": "latents/d2g-lora-core"}}
    g["93"] = {"class_type": "OneStepGenerate", "inputs": {"model": ["1", 0], "positive": ["6", 0], "seed": 0, "width": 128, "height": 128, "batch_size": 1}}
    g["94"] = {"class_type": "SaveLatent", "inputs": {"samples": ["93", 0], "filename_prefix": "latents/d2g-lora-teacher"}}
    out = ok(host.run(g))
    student, with_lora, teacher = latent(host, out, "90"), latent(host, out, "92"), latent(host, out, "94")
    scale = student.abs().max()
    assert (student - with_lora).abs().max() <= 1e-4 * scale, (student - with_lora).abs().max()  # teacher + LoRA == merged generator
    assert (student - teacher).abs().max() > 1e-3 * scale  # and the LoRA did something


def test_low_memory_lora_run_trains_a_lora_discriminator_on_the_generators_frozen_base(host):
    import json

    from safetensors import safe_open

    out = ok(host.run(graph("d2g-lowmem", "train-pairs", lora_rank=4, lr_g=1e-2, memory="low")))
    assert torch.isfinite(latent(host, out, "90")).all()
    ckpt = os.path.join(host.base_dir, "models", "onestep_runs", "d2g-lowmem", "checkpoint.safetensors")
    with safe_open(ckpt, "pt") as f:
        config = json.loads(f.metadata()["onestep.trainer_state"])["config"]
        d_keys = [k.removeprefix("/discriminator/") for k in f.keys() if k.startswith("/discriminator/")]
    d = config["discriminator"]
    assert (d["backbone"], d["r1_mode"]) == ("lora", "approx")
    assert config["generator"]["frozen_dtype"] == "bfloat16" and config["optim"]["optimizer_d"] in ("", "adamw") and config["bf16"]
    # only what D trains is saved: its LoRA factors, heads and z-conv (the frozen backbone is G's base, not stored twice)
    assert any(".lora_up." in k for k in d_keys) and any(k.startswith("heads.") for k in d_keys)
    assert all(".lora_" in k or k.startswith(("heads.", "z_conv.")) for k in d_keys), [k for k in d_keys if ".lora_" not in k][:5]


def test_dataset_from_another_text_encoder_is_refused(host):
    ok(host.run({k: v for k, v in graph("unused", "pairs-clip-l").items() if k in ("1", "2", "4")}))
    g = graph("d2g-mismatch", "pairs-clip-l")
    g["20"] = {"class_type": "OneStepLoadGenerator", "inputs": {"generator": "tiny_sd21_width1024.safetensors"}}
    g["5"]["inputs"]["model"] = ["20", 0]
    g["5"]["inputs"]["dataset"] = "pairs-clip-l"
    msg = failed(host.run({k: v for k, v in g.items() if k in ("2", "5", "6", "7", "20", "90", "91")}))
    assert "text conditioning has width 768" in msg and "1024" in msg, msg
    assert not os.path.exists(generator_file(host, "d2g-mismatch"))


@pytest.mark.parametrize("regression, weights, want", [("elatentlpips", "(none: latent MSE regression)", "needs E-LatentLPIPS weights")])
def test_bad_training_input_named(host, regression, weights, want):
    g = graph("d2g-bad", "train-pairs", regression=regression, latent_lpips=weights)
    assert want in failed(host.run(g))


def real_images_graph(name, prompts="0 1 2", **kw):
    """The training graph with real images for D: three latents the teacher makes in one step (any LATENT at the
    pairs' size stands for VAE Encode's), saved beside for the comparison."""
    g = graph(name, "train-pairs", real_image_prompts=prompts, **kw)
    g["30"] = {"class_type": "OneStepGenerate", "inputs": {"model": ["1", 0], "positive": ["6", 0], "seed": 5, "width": 128, "height": 128, "batch_size": 3}}
    g["95"] = {"class_type": "SaveLatent", "inputs": {"samples": ["30", 0], "filename_prefix": f"latents/{name}-real"}}
    g["5"]["inputs"]["real_images"] = ["30", 0]
    return g


def test_real_images_feed_the_discriminator(host):
    import json

    from safetensors import safe_open

    out = ok(host.run(real_images_graph("d2g-real", z_conditioning=False)))
    run_dir = os.path.join(host.base_dir, "models", "onestep_runs", "d2g-real")
    real = load_file(os.path.join(run_dir, "real_images.safetensors"))
    assert torch.equal(real["latents"], latent(host, out, "95").float()) and real["labels"].tolist() == [0, 1, 2]
    with safe_open(os.path.join(run_dir, "checkpoint.safetensors"), "pt") as f:
        d = json.loads(f.metadata()["onestep.trainer_state"])["config"]["discriminator"]
    assert d["real_images"] == os.path.join(run_dir, "real_images.safetensors") and not d["z_conditioning"]
    assert os.path.exists(generator_file(host, "d2g-real"))


@pytest.mark.parametrize("kw, want", [
    ({}, "need z_conditioning off"),  # z_conditioning defaults to on
    ({"z_conditioning": False, "prompts": "0"}, "none for prompt(s) 1 ('a blue bird'), 2 ('a green frog')"),
    ({"z_conditioning": False, "prompts": "0, 1"}, "gives 2 prompt indices for 3 real images"),
    ({"z_conditioning": False, "discriminator": False}, "real_images feed the discriminator: turn discriminator on"),
])
def test_bad_real_images_named(host, kw, want):
    msg = failed(host.run(real_images_graph("d2g-real-bad", **kw)))
    assert want in msg, msg
    assert not os.path.exists(generator_file(host, "d2g-real-bad"))
