"""Train SiD-LSG in the REAL ComfyUI host over HTTP on a small teacher, from prompts only: the generator file (method
sid-lsg, its t_init and κ4) lands in models/onestep, loads with Load One-Step Generator and generates; cancel leaves a
checkpoint and no generator file; N steps straight equal N/2 + resume + N/2 (and a cancelled run resumed); bad input
(no prompts, a prompt file outside input/, a flow teacher, a CLIP of another base) is named in the execution error.
init_from: G starts from a one-step generator file (the Diffusion2GAN → SiD-LSG recipe), recorded in the file it
writes; a file of another timestep, input or architecture, or no generator file at all, is refused by name. The recall
anchor (anchor_pairs) trains on a pairs dataset's prompts with its regression; pairs of another size are refused."""
from __future__ import annotations

import json
import os
import threading
import time

import pytest
import torch
from comfy_host import combo_options
from safetensors.torch import load_file
from test_host import CLIP, failed, latent, ok

from onestep import format
from tools import fixtures

TEACHER = "tiny_eps_t999.safetensors"  # a small SD1.5-family UNet; any ε/v MODEL can be the teacher
PROMPTS = "a red fox\na blue bird\na green frog"


def graph(name, steps=4, teacher=TEACHER, **kw):
    """Train from typed prompts at 64² (8×8 latents), then generate with the result."""
    g = {
        "1": {"class_type": "OneStepLoadGenerator", "inputs": {"generator": teacher}},
        "2": {"class_type": "CLIPLoader", "inputs": {"clip_name": CLIP, "type": "stable_diffusion"}},
        "5": {"class_type": "OneStepTrainSiDLSG", "inputs": {
            "model": ["1", 0], "clip": ["2", 0], "prompts": PROMPTS, "prompt_file": "", "prompt_column": "prompt",
            "kappa1": 1.5, "kappa2": 1.5, "kappa4": 2.0, "alpha": 1.0, "t_init": 625, "width": 64, "height": 64,
            "steps": steps, "batch_size": 2, "lr": 1e-4, "lora_rank": 0, "save_every": 0, "seed": 0, "generator_name": name,
            "resume": True, "gradient_checkpointing": False}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red fox", "clip": ["2", 0]}},
        "7": {"class_type": "OneStepGenerate", "inputs": {"model": ["5", 0], "positive": ["6", 0], "seed": 0, "width": 64, "height": 64, "batch_size": 1}},
        "90": {"class_type": "SaveLatent", "inputs": {"samples": ["7", 0], "filename_prefix": f"latents/{name}"}},
        "91": {"class_type": "SaveImage", "inputs": {"images": ["5", 2], "filename_prefix": f"onestep/{name}_loss"}},
        "92": {"class_type": "SaveImage", "inputs": {"images": ["5", 3], "filename_prefix": f"onestep/{name}_previews"}},
    }
    g["5"]["inputs"].update(kw)
    return g


def generator_file(host, name):
    return os.path.join(host.base_dir, "models", "onestep", f"{name}.safetensors")


def run_dir(host, name):
    return os.path.join(host.base_dir, "models", "onestep_runs", name)


def test_train_from_a_prompt_file_writes_a_sid_generator_that_loads_and_generates(host):
    with open(os.path.join(host.base_dir, "input", "sid_prompts.tsv"), "w", encoding="utf-8") as f:
        f.write("Prompt\tCategory\na lighthouse at dusk\tplaces\na bowl of ramen\tfood\n")
    out = ok(host.run(graph("sid-straight", prompts="a red fox", prompt_file="sid_prompts.tsv", prompt_column="Prompt")))
    path = generator_file(host, "sid-straight")
    sd, teacher = load_file(path), load_file(os.path.join(host.base_dir, "models", "onestep", TEACHER))
    assert sd.keys() == teacher.keys()
    assert any(not torch.allclose(sd[k].float(), teacher[k].float()) for k in sd)  # it trained
    meta = format.read_metadata(path)
    assert (meta.method, meta.prediction, meta.timestep, meta.input_convention, meta.guidance) == ("sid-lsg", "eps", 625, "sigma_z", 2.0)
    assert meta.training_steps == 4 and meta.notes["sid_lsg"]["kappa1"] == 1.5 and "3 prompts" in meta.source  # typed + file
    assert torch.isfinite(latent(host, out)).all()
    assert out["91"]["images"] and out["92"]["images"], "no loss-curve or preview image"
    info = combo_options(host.get("/object_info/OneStepLoadGenerator")["OneStepLoadGenerator"]["input"]["required"]["generator"])
    assert "sid-straight.safetensors" in info  # listed at once by Load One-Step Generator
    g = {  # the file through the existing nodes alone: the loaded generator equals the node's own output
        "2": graph("x")["2"], "6": graph("x")["6"],
        "10": {"class_type": "OneStepLoadGenerator", "inputs": {"generator": "sid-straight.safetensors"}},
        "11": {"class_type": "OneStepGenerate", "inputs": {"model": ["10", 0], "positive": ["6", 0], "seed": 0, "width": 64, "height": 64, "batch_size": 1}},
        "93": {"class_type": "SaveLatent", "inputs": {"samples": ["11", 0], "filename_prefix": "latents/sid-loaded"}},
    }
    loaded = latent(host, ok(host.run(g)), "93")
    assert torch.allclose(loaded, latent(host, out), atol=1e-5)


def test_halves_and_a_cancelled_run_resume_exactly(host):
    ok(host.run(graph("sid-ref", steps=6)))
    ok(host.run(graph("sid-half", steps=3)))
    ok(host.run(graph("sid-half", steps=6)))  # resumes at step 3
    ref, half = load_file(generator_file(host, "sid-ref")), load_file(generator_file(host, "sid-half"))
    assert format.read_metadata(generator_file(host, "sid-half")).training_steps == 6
    for k in ref:
        assert torch.equal(ref[k], half[k]), k

    def interrupt_at_first_checkpoint():
        deadline = time.time() + 600
        while time.time() < deadline and not os.path.exists(os.path.join(run_dir(host, "sid-cut"), "checkpoint.safetensors")):
            time.sleep(0.02)
        host.post("/interrupt", {})

    t = threading.Thread(target=interrupt_at_first_checkpoint)
    t.start()
    entry = host.run(graph("sid-cut", steps=6, save_every=2))
    t.join()
    assert entry["status"]["status_str"] != "success"
    assert os.path.exists(os.path.join(run_dir(host, "sid-cut"), "checkpoint.safetensors"))
    assert not os.path.exists(generator_file(host, "sid-cut"))  # no half-trained generator file
    ok(host.run(graph("sid-cut", steps=6, save_every=2)))
    cut = load_file(generator_file(host, "sid-cut"))
    for k in ref:
        assert torch.equal(ref[k], cut[k]), k


def test_low_memory_lora_run_generates(host):
    out = ok(host.run(graph("sid-lora-low", lora_rank=4, memory="low")))
    assert torch.isfinite(latent(host, out)).all()
    assert format.read_metadata(generator_file(host, "sid-lora-low")).method == "sid-lsg"


@pytest.mark.parametrize("change, want", [
    ({"prompts": "  \n"}, "the prompt list is empty"),
    ({"prompt_file": "../sid_outside.txt"}, "outside ComfyUI's input folder"),
    ({"prompt_file": "no_such_prompts.txt"}, "not found in ComfyUI's input folder"),
    ({"teacher": "tiny_flow.safetensors"}, "SiD-LSG distills ε- or v-prediction teachers"),
    ({"width": 72}, "width and height must be multiples of"),
    ({"init_from": TEACHER}, "init_from tiny_eps_t999.safetensors is a generator for ε at t=999 (σ·z input); this run trains ε at "
                             "t=625 (σ·z input): set t_init to 999"),
    ({"init_from": "tiny_eps_t399_rawz"}, "SiD-LSG trains a σ·z-input generator"),
    ({"init_from": "tiny_flow"}, "is a generator for flow velocity at model time 1000; this run trains ε"),
    ({"init_from": "no-such-student"}, "init_from 'no-such-student' is not a generator file in models/onestep"),
    ({"init_from": "tiny_eps_t625_sid", "lora_rank": 4}, "needs a full fine-tune (lora_rank 0)"),
])
def test_bad_input_is_named_in_the_execution_error(host, change, want):
    change = dict(change)
    with open(os.path.join(host.base_dir, "sid_outside.txt"), "w", encoding="utf-8") as f:
        f.write("a prompt outside input/\n")
    entry = host.run(graph("sid-bad", **change))
    msg = failed(entry)
    assert want in msg, msg
    assert entry["error"]["exception_type"] not in ("RuntimeError", "torch.OutOfMemoryError"), entry["error"]
    assert not os.path.exists(generator_file(host, "sid-bad"))


def test_a_clip_of_another_base_is_refused_before_training(host):
    g = graph("sid-mismatch")
    g["20"] = {"class_type": "OneStepLoadGenerator", "inputs": {"generator": "tiny_sd21_width1024.safetensors"}}
    g["5"]["inputs"]["model"] = ["20", 0]
    msg = failed(host.run({k: v for k, v in g.items() if k in ("2", "5", "20", "91")}))
    assert "width 768" in msg and "1024" in msg, msg
    assert not os.path.isdir(run_dir(host, "sid-mismatch")) or not os.listdir(run_dir(host, "sid-mismatch"))


def test_starts_from_a_generator_file_and_records_it(host):
    """The recipe Train Diffusion2GAN → Train SiD-LSG: G and its EMA start from the student's file, not the teacher."""
    onestep = os.path.join(host.base_dir, "models", "onestep")
    fixtures.write_generator(os.path.join(onestep, "sid-d2g-student.safetensors"), seed=3, timestep=625)  # other weights, SiD's call
    ok(host.run(graph("sid-from-d2g", steps=1, lr=0.0, init_from="sid-d2g-student")))  # lr 0: G stays what it started from
    student, teacher = load_file(os.path.join(onestep, "sid-d2g-student.safetensors")), load_file(os.path.join(onestep, TEACHER))
    out = load_file(generator_file(host, "sid-from-d2g"))
    assert any(not torch.allclose(student[k], teacher[k], atol=1e-3) for k in student)
    for k in student:
        assert torch.allclose(out[k].float(), student[k].float(), atol=1e-6), k
    meta = format.read_metadata(generator_file(host, "sid-from-d2g"))
    assert meta.notes["init_from"] == "sid-d2g-student.safetensors" and meta.source.endswith("G from sid-d2g-student.safetensors")
    assert (meta.method, meta.timestep, meta.input_convention) == ("sid-lsg", 625, "sigma_z")
    # a resume continues the run's own start: another init file is refused, none keeps the record
    msg = failed(host.run(graph("sid-from-d2g", steps=2, lr=0.0, init_from="tiny_eps_t625_sid")))
    assert "resumes at step 1, started from sid-d2g-student.safetensors" in msg, msg
    ok(host.run(graph("sid-from-d2g", steps=2, lr=0.0)))
    meta = format.read_metadata(generator_file(host, "sid-from-d2g"))
    assert meta.training_steps == 2 and meta.notes["init_from"] == "sid-d2g-student.safetensors"


def test_an_unreadable_or_other_architecture_init_from_is_refused_by_name(host):
    onestep = os.path.join(host.base_dir, "models", "onestep")
    with open(os.path.join(onestep, "sid-not-a-generator.safetensors"), "wb") as f:
        f.write(b"not a safetensors file")
    fixtures.write_generator(os.path.join(onestep, "sid-wide-student.safetensors"), {**fixtures.TINY_UNET, "context_dim": 1024}, base="sd21",
                             timestep=625)
    try:
        for init, want in (("sid-not-a-generator", "init_from sid-not-a-generator.safetensors is not a readable generator file"),
                           ("sid-wide-student", "init_from sid-wide-student.safetensors does not fit this MODEL's UNet (another architecture)")):
            entry = host.run(graph("sid-bad-init", init_from=init))
            msg = failed(entry)
            assert want in msg, msg
            assert entry["error"]["exception_type"] not in ("RuntimeError", "KeyError", "torch.OutOfMemoryError"), entry["error"]
            assert not os.path.exists(generator_file(host, "sid-bad-init"))
    finally:  # the session's other tests list models/onestep
        for name in ("sid-not-a-generator", "sid-wide-student"):
            os.remove(os.path.join(onestep, f"{name}.safetensors"))


def collect(dataset: str, size: int) -> dict:
    """Collect Teacher Pairs of the teacher at size² (4 pairs, 2 euler steps), a non-empty negative prompt."""
    return {"class_type": "OneStepCollectTeacherPairs", "inputs": {
        "model": ["1", 0], "clip": ["2", 0], "prompts": "a lighthouse\na teapot", "prompt_file": "", "prompt_column": "prompt",
        "negative": "blurry", "sampler_name": "euler", "scheduler": "normal", "steps": 2, "cfg": 2.0, "seed": 0, "count": 4,
        "width": size, "height": size, "batch_size": 2, "shard_size": 2, "dataset_name": dataset}}


def test_the_recall_anchor_trains_on_the_pairs_prompts_and_regresses_on_them(host):
    g = graph("sid-anchored", steps=2, prompts="", anchor_pairs=["10", 0], anchor_weight=0.5)  # no prompts: the pairs bring theirs
    g["10"] = collect("sid-anchor-pairs", 64)
    ok(host.run(g))
    meta = format.read_metadata(generator_file(host, "sid-anchored"))
    assert meta.method == "sid-lsg" and meta.notes["sid_lsg"]["anchor_weight"] == 0.5 and meta.notes["sid_lsg"]["anchor_loss"] == "mse"
    assert "the prompts of sid-anchor-pairs + its pairs as recall anchor (0.5)" in meta.source
    with open(os.path.join(run_dir(host, "sid-anchored"), "history.json"), encoding="utf-8") as f:
        history = json.load(f)
    assert [s for s, _ in history["anchor"]] == [1, 2] and all(v > 0 for _, v in history["anchor_scale"])
    # pairs of another size than the run's are refused by name, before training
    g = graph("sid-anchored-128", steps=1, anchor_pairs=["10", 0])
    g["10"] = collect("sid-anchor-pairs-128", 128)
    msg = failed(host.run(g))
    assert "anchor_pairs sid-anchor-pairs-128 holds 128×128 pairs; this run trains 64×64" in msg, msg
    assert not os.path.exists(generator_file(host, "sid-anchored-128"))
