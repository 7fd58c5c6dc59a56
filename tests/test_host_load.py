"""Load on the REAL ComfyUI host (issue 21): 100 one-step prompts on the embedded default set (the shipped
Fashion-MNIST student, installed by the fixtures) queued at once all finish, the server's resident memory after
warm-up grows by less than 50 MB, and an interrupt in the middle of a queue leaves the server answering and the
next prompt's latent equal to the same prompt run before."""
import os
import time

import pytest
import torch
from safetensors.torch import load_file

from tools import ship_proof_scale

CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
PROMPTS = 100
RSS_GROWTH_LIMIT_MB = 50.0


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmRSS")


def prompt(files: dict, i: int, prefix: str) -> dict:
    """One-step student → latent saved (and decoded image saved, as a user's graph would)."""
    return {
        "1": {"class_type": "OneStepLoadProofScaleModelSet", "inputs": {r: files[r] for r in ("teacher", "student", "text_encoder")}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": CLASSES[i % len(CLASSES)], "clip": ["1", 2]}},
        "3": {"class_type": "OneStepGenerate", "inputs": {"model": ["1", 1], "positive": ["2", 0], "seed": i, "width": 256, "height": 256, "batch_size": 1}},
        "4": {"class_type": "SaveLatent", "inputs": {"samples": ["3", 0], "filename_prefix": f"load/{prefix}_{i:03d}"}},
        "5": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["1", 3]}},
        "6": {"class_type": "SaveImage", "inputs": {"images": ["5", 0], "filename_prefix": f"load/{prefix}_{i:03d}"}},
    }


def queue(host, prompts: list[dict]) -> list[str]:
    ids = []
    for p in prompts:
        status, body = host.post("/prompt", {"prompt": p, "client_id": host.client_id})
        assert status == 200, body
        ids.append(body["prompt_id"])
    return ids


def wait_idle(host, timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        q = host.get("/queue")
        if not q["queue_running"] and not q["queue_pending"]:
            return
        time.sleep(0.2)
    raise TimeoutError(f"the queue did not drain in {timeout:.0f} s")


def succeeded(host, pid: str) -> bool:
    entry = host.get(f"/history/{pid}").get(pid)
    return bool(entry) and entry["status"]["status_str"] == "success"


def latent(host, entry: dict) -> torch.Tensor:
    """The latent a prompt's SaveLatent wrote (entry: its /history entry)."""
    item = entry["outputs"]["4"]["latents"][0]
    return load_file(os.path.join(host.base_dir, "output", item["subfolder"], item["filename"]))["latent_tensor"]


@pytest.fixture(scope="module")
def files(host):
    shipped = ship_proof_scale.shipped_set()
    assert shipped, "default_models/proof_scale holds no shipped set"
    return {role: os.path.basename(path) for role, path in shipped.items()}


def test_hundred_prompts_finish_and_memory_stays_flat(host, files):
    warm = queue(host, [prompt(files, i, "warm") for i in range(10)])
    wait_idle(host, 300)
    assert all(succeeded(host, pid) for pid in warm)
    before = _rss_mb(host.proc.pid)
    start = time.monotonic()
    ids = queue(host, [prompt(files, 1000 + i, "load") for i in range(PROMPTS)])
    wait_idle(host, 900)
    seconds = time.monotonic() - start
    after = _rss_mb(host.proc.pid)
    done = sum(succeeded(host, pid) for pid in ids)
    print(f"\nload: {done}/{PROMPTS} prompts in {seconds:.1f} s; server RSS {before:.0f} → {after:.0f} MB ({after - before:+.1f} MB)")
    assert done == PROMPTS
    assert after - before < RSS_GROWTH_LIMIT_MB, f"resident memory grew {after - before:.1f} MB over {PROMPTS} prompts"


def test_interrupt_mid_queue_leaves_the_server_answering_and_the_next_prompt_correct(host, files):
    reference = queue(host, [prompt(files, 7, "ref")])
    wait_idle(host, 300)
    assert succeeded(host, reference[0])
    ids = queue(host, [prompt(files, 2000 + i, "irq") for i in range(20)])
    while not any(succeeded(host, pid) for pid in ids[:3]):  # a few have run: the queue is moving
        time.sleep(0.05)
    status, _ = host.post("/interrupt", {})
    assert status == 200
    wait_idle(host, 300)
    assert host.get("/system_stats")["system"]  # still answering
    after = host.run(prompt(files, 7, "after"))
    assert after["error"] is None and after["status"]["status_str"] == "success"
    ref = latent(host, host.get(f"/history/{reference[0]}")[reference[0]])
    assert torch.equal(latent(host, after), ref)
