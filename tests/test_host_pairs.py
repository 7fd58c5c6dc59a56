"""Collect Teacher Pairs in the REAL ComfyUI host over HTTP, and the headless CLI (also under torchrun) on
the same teacher: replay through core KSampler/SamplerCustom, determinism, cancel, kill -9 + resume, refusals."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest
import torch
from comfy_host import REPO, comfyui_dir
from shared_data import shared_data
from safetensors.torch import load_file
from test_host import CLIP, failed, latent, ok

TEACHER = "onestep-default-teacher-sd15-random.safetensors"
PARTI = shared_data("PartiPrompts.tsv")
SETTINGS = dict(sampler_name="euler", scheduler="normal", steps=3, cfg=5.0, width=64, height=64)


def collect_graph(name, count=3, seed=10, batch_size=3, shard_size=3, prompts="", prompt_file="PartiPrompts.tsv", model=None, **kw):
    g = {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": TEACHER, "weight_dtype": "default"}},
        "2": {"class_type": "CLIPLoader", "inputs": {"clip_name": CLIP, "type": "stable_diffusion"}},
        "4": {"class_type": "OneStepCollectTeacherPairs", "inputs": {
            "model": list(model or ("1", 0)), "clip": ["2", 0], "prompts": prompts, "prompt_file": prompt_file, "prompt_column": "Prompt",
            "negative": "", **SETTINGS, "seed": seed, "count": count, "batch_size": batch_size, "shard_size": shard_size, "dataset_name": name}},
    }
    g["4"]["inputs"].update(kw)
    return g


def dataset(host, name):
    return os.path.join(host.base_dir, "models", "onestep_pairs", name)


def shards(folder):
    return {f: load_file(os.path.join(folder, f)) for f in sorted(os.listdir(folder)) if f.startswith("shard-") and f.endswith(".safetensors")}


def validate(folder):
    out = subprocess.run([sys.executable, "-m", "onestep.pairs.cli", "validate", folder], cwd=REPO, capture_output=True, text=True)
    return out.returncode, out.stdout


@pytest.fixture(scope="module")
def parti_in_input(host):
    shutil.copy(PARTI, os.path.join(host.base_dir, "input", "PartiPrompts.tsv"))


def test_pairs_replay_in_core_samplers_and_repeat_exactly(host, parti_in_input):
    ok(host.run(collect_graph("replay-a")))
    out = ok(host.run(collect_graph("replay-b", fast_teacher="cuda graph")))  # no CUDA here: core's path, and the node says so
    assert out["4"]["text"] == [f"1/1 shards in {dataset(host, 'replay-b')}",
                                "fast_teacher 'cuda graph' not used: not a CUDA device; every UNet call ran on core's path"]
    a, b = shards(dataset(host, "replay-a")), shards(dataset(host, "replay-b"))
    assert list(a) == ["shard-000000.safetensors"]
    for key in ("noise", "latent", "seed", "prompt_index", "cond.1"):
        assert torch.equal(a["shard-000000.safetensors"][key], b["shard-000000.safetensors"][key]), key
    code, text = validate(dataset(host, "replay-a"))
    assert code == 0 and "VALID" in text and "items: 3 of 3" in text and "prompts: 1632" in text, text
    rec = a["shard-000000.safetensors"]
    assert rec["seed"].tolist() == [10, 11, 12] and rec["prompt_index"].tolist() == [0, 1, 2]
    # item 1 is seed 11 with PartiPrompts' second prompt ("element"): replay it alone in core's samplers
    g = {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": TEACHER, "weight_dtype": "default"}},
        "2": {"class_type": "CLIPLoader", "inputs": {"clip_name": CLIP, "type": "stable_diffusion"}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "element", "clip": ["2", 0]}},
        "5": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["2", 0]}},
        "6": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "7": {"class_type": "KSampler", "inputs": {"model": ["1", 0], "positive": ["3", 0], "negative": ["5", 0], "latent_image": ["6", 0], "seed": 11,
                                                    "steps": 3, "cfg": 5.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0}},
        "90": {"class_type": "SaveLatent", "inputs": {"samples": ["7", 0], "filename_prefix": "latents/replay_ksampler"}},
        "10": {"class_type": "RandomNoise", "inputs": {"noise_seed": 11}},
        "11": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
        "12": {"class_type": "BasicScheduler", "inputs": {"model": ["1", 0], "scheduler": "normal", "steps": 3, "denoise": 1.0}},
        "13": {"class_type": "SamplerCustom", "inputs": {"model": ["1", 0], "add_noise": True, "noise_seed": 11, "cfg": 5.0, "positive": ["3", 0],
                                                         "negative": ["5", 0], "sampler": ["11", 0], "sigmas": ["12", 0], "latent_image": ["6", 0]}},
        "91": {"class_type": "SaveLatent", "inputs": {"samples": ["13", 0], "filename_prefix": "latents/replay_custom"}},
    }
    out = ok(host.run(g))
    for node in ("90", "91"):
        replay = latent(host, out, node)[0]
        scale = rec["latent"][1].abs().max()  # batch 3 vs batch 1 changes float rounding only
        assert (replay - rec["latent"][1]).abs().max() <= 1e-5 * scale, (node, (replay - rec["latent"][1]).abs().max(), scale)
        assert (replay - rec["latent"][0]).abs().max() > 0.1 * scale  # another seed/prompt is far away


@pytest.mark.parametrize("case", ["ancestral", "sde", "empty", "no_file", "outside_input", "no_column", "clip_mismatch", "bad_name"])
def test_collect_refuses_bad_input_with_a_message(host, parti_in_input, case):
    kw, want = {
        "ancestral": (dict(sampler_name="euler_ancestral"), "ancestral sampler: it adds new random noise"),
        "sde": (dict(sampler_name="dpmpp_2m_sde"), "SDE/stochastic sampler"),
        "empty": (dict(prompt_file="", prompts="  \n"), "prompt list is empty"),
        "no_file": (dict(prompt_file="nope.txt"), "not found in ComfyUI's input folder"),
        "outside_input": (dict(prompt_file="../../../etc/passwd"), "outside ComfyUI's input folder"),
        "no_column": (dict(prompt_column="caption"), "no 'caption' column"),
        "clip_mismatch": (dict(model=("20", 0)), "conditioning width 768 does not match this model's text width 1024"),
        "bad_name": (dict(dataset_name="../escape"), "invalid dataset name"),
    }[case]
    g = collect_graph(f"refused-{case}", **{k: v for k, v in kw.items() if k != "model"}, model=kw.get("model"))
    g["20"] = {"class_type": "OneStepLoadGenerator", "inputs": {"generator": "tiny_sd21_width1024.safetensors"}}
    assert want in failed(host.run(g))
    assert not os.path.exists(os.path.join(dataset(host, f"refused-{case}"), "shard-000000.safetensors"))


def test_cancel_keeps_finished_shards_and_resumes(host, parti_in_input):
    name = "cancelled"
    folder = dataset(host, name)

    def interrupt_after_first_shard():
        deadline = time.time() + 300
        while time.time() < deadline and not os.path.exists(os.path.join(folder, "shard-000000.safetensors")):
            time.sleep(0.05)
        host.post("/interrupt", {})

    t = threading.Thread(target=interrupt_after_first_shard)
    t.start()
    entry = host.run(collect_graph(name, count=8, batch_size=1, shard_size=1, steps=2))
    t.join()
    assert entry["status"]["status_str"] != "success"
    code, text = validate(folder)
    assert code == 0 and "not yet collected" in text, text
    ok(host.run(collect_graph(name, count=8, batch_size=1, shard_size=1, steps=2)))
    code, text = validate(folder)
    assert code == 0 and "items: 8 of 8 (8/8 shards, complete)" in text, text


def cli(host, out, *extra, runner=(sys.executable,)):
    """The headless collector (optionally under torchrun) on the host's teacher files."""
    models = os.path.join(host.base_dir, "models")
    cmd = [*runner, "-m", "onestep.pairs.cli", "collect", "--unet", os.path.join(models, "diffusion_models", TEACHER),
           "--clip", os.path.join(models, "text_encoders", CLIP), "--prompts", PARTI, "--column", "Prompt", "--sampler", "euler",
           "--scheduler", "normal", "--steps", "2", "--cfg", "5", "--seed", "3", "--count", "4", "--width", "64", "--height", "64",
           "--batch-size", "1", "--shard-size", "1", "--out", out, *extra]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([REPO, comfyui_dir()])}
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_cli_kill_9_resume_matches_node_and_torchrun(host, parti_in_input, tmp_path):
    out = str(tmp_path / "killed")
    proc = cli(host, out)
    deadline = time.time() + 300
    while not os.path.exists(os.path.join(out, "shard-000001.safetensors")):
        assert proc.poll() is None and time.time() < deadline, proc.stdout.read() if proc.poll() is not None else "timeout"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    code, text = validate(out)
    assert code == 0 and "not yet collected" in text, text
    proc = cli(host, out, "--fast-teacher", "cuda-graph")  # resumed with the graph option: on the CPU, core's path
    log = proc.communicate(timeout=600)[0]
    assert proc.returncode == 0, log
    assert log.count("[onestep] fast_teacher 'cuda graph' not used: not a CUDA device") == 1, log  # once, not per batch
    assert "rank 0: fast_teacher 'cuda graph' not used: not a CUDA device; every UNet call ran on core's path" in log, log  # the run's summary
    code, text = validate(out)
    assert code == 0 and "items: 4 of 4 (4/4 shards, complete)" in text, text
    # the node with the same teacher and settings writes the same pairs
    ok(host.run(collect_graph("like-cli", count=4, seed=3, batch_size=1, shard_size=1, steps=2)))
    killed, node = shards(out), shards(dataset(host, "like-cli"))
    assert killed.keys() == node.keys()
    for f in node:
        for key in ("noise", "seed", "prompt_index"):
            assert torch.equal(killed[f][key], node[f][key]), (f, key)
        assert torch.allclose(killed[f]["latent"], node[f]["latent"], rtol=1e-5, atol=1e-5 * node[f]["latent"].abs().max()), f
    # two torchrun ranks write the same files as one process
    ranks = str(tmp_path / "ranks")
    proc = cli(host, ranks, runner=(sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"))
    log = proc.communicate(timeout=600)[0]
    assert proc.returncode == 0, log
    assert "rank 1:" in log and "rank 0:" in log
    two = shards(ranks)
    assert two.keys() == killed.keys()
    for f in two:
        for key in ("noise", "seed", "prompt_index"):
            assert torch.equal(two[f][key], killed[f][key]), (f, key)
        assert torch.allclose(two[f]["latent"], killed[f]["latent"], rtol=1e-5, atol=1e-5 * two[f]["latent"].abs().max()), f
    code, text = validate(ranks)
    assert code == 0 and "complete" in text, text
