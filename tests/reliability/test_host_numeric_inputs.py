"""Every numeric input of the training and pair-collection nodes (Collect Teacher Pairs, Train Diffusion2GAN, Train
Rectified Flow, Train InstaFlow, Train SiD-LSG) and of One-Step Generate and Latent Perceptual Diff, driven through the
REAL ComfyUI host with out-of-range and hostile
values (issue 21): below the minimum, above the maximum, 0, −1, 2^31, 2^63, 2^64, NaN and ±inf typed into the widget,
the same through a link (a Primitive node: ComfyUI checks no range on a linked value), and values inside the declared
range that cannot work (seeds a shard cannot record, sizes that are not multiples of 8, a teacher call, a one-step
call, a shard, a training batch or a dataset that would need absurd memory or disk).

Each must be refused by ComfyUI's validation (naming the input) or fail at once with the pack's ValueError naming the
input (and, for a declared range, the range) — never a torch traceback, a hang or a crash of the server; the user's
pairs, checkpoints and generator files (made by valid runs first, under the names every attack uses) stay unchanged,
no file appears, the server's peak memory does not grow, and valid runs still work afterwards."""
from __future__ import annotations

import hashlib
import math
import os
import time

import pytest
from test_host import CLIP, ok

from onestep.ranges import range_text

TINY = "tiny_eps_t999.safetensors"  # a small SD1.5-family ε UNet (the test fixtures)
MSE = "(none: latent MSE regression)"
PACK_ERRORS = {"ValueError", "DatasetError", "IncompatibleDataError"}  # the pack's refusals (ValueErrors)
INPUTS = ("models", "output", "input")  # the host folders an attack must not touch
NAN, INF = float("nan"), float("inf")
LINK_MAX = 2**63 - 1  # core's Primitive Int/Float nodes take ±sys.maxsize


def _teacher(generator: str = TINY) -> dict:
    return {"1": {"class_type": "OneStepLoadGenerator", "inputs": {"generator": generator}},
            "2": {"class_type": "CLIPLoader", "inputs": {"clip_name": CLIP, "type": "stable_diffusion"}}}


def collect_prompt(dataset: str = "sweep-pairs", generator: str = TINY, **over) -> dict:
    inputs = {"model": ["1", 0], "clip": ["2", 0], "prompts": "a red fox\na blue bird\na green frog", "prompt_file": "", "prompt_column": "prompt",
              "negative": "", "sampler_name": "euler", "scheduler": "normal", "steps": 2, "cfg": 3.0, "seed": 0, "count": 4, "width": 64,
              "height": 64, "batch_size": 2, "shard_size": 2, "dataset_name": dataset, "control_strength": 1.0}
    return {**_teacher(generator), "5": {"class_type": "OneStepCollectTeacherPairs", "inputs": {**inputs, **over}}}


def _train(node: str, name: str, **inputs) -> dict:
    common = {"model": ["1", 0], "steps": 2, "batch_size": 2, "lora_rank": 0, "save_every": 0, "seed": 0, "generator_name": name,
              "resume": True, "gradient_checkpointing": False}
    return {**_teacher(), "5": {"class_type": node, "inputs": {**common, **inputs}}}


def d2g_prompt(name: str = "sweep-d2g", **over) -> dict:
    return _train("OneStepTrainDiffusion2GAN", name, **{
        "dataset": "sweep-pairs", "latent_lpips": MSE, "regression": "mse", "lr_g": 1e-4, "lr_d": 1e-4, "gan_weight": 0.1, "r1_gamma": 1.0,
        "warmup_steps": 1, **over})


def reflow_prompt(name: str = "sweep-rf", **over) -> dict:
    return _train("OneStepTrainReflow", name, **{"dataset": "sweep-pairs", "lr": 1e-4, "t_eps": 1e-3, "text_dropout": 0.5, **over})


def instaflow_prompt(name: str = "sweep-if", **over) -> dict:
    return _train("OneStepTrainInstaFlow", name, **{
        "init_from": "sweep-rf", "dataset": "sweep-rf-pairs", "latent_lpips": MSE, "regression": "mse", "lr": 1e-4, **over})


def sid_prompt(name: str = "sweep-sid", **over) -> dict:
    return _train("OneStepTrainSiDLSG", name, **{
        "clip": ["2", 0], "prompts": "a red fox\na blue bird", "prompt_file": "", "prompt_column": "prompt", "kappa1": 1.5, "kappa2": 1.5,
        "kappa4": 2.0, "alpha": 1.0, "t_init": 625, "width": 64, "height": 64, "batch_size": 1, "lr": 1e-4, **over})


def generate_prompt(**over) -> dict:
    inputs = {"model": ["1", 0], "positive": ["3", 0], "seed": 0, "width": 64, "height": 64, "batch_size": 1, **over}
    return {**_teacher(), "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red fox", "clip": ["2", 0]}},
            "5": {"class_type": "OneStepGenerate", "inputs": inputs},
            "6": {"class_type": "SaveLatent", "inputs": {"samples": ["5", 0], "filename_prefix": "latents/sweep-generate"}}}


def diff_prompt(**over) -> dict:
    """Latent Perceptual Diff of a one-step generation with itself (its loaders stay in ComfyUI's cache between attacks,
    as for the other nodes: a reload between attacks would raise the server's peak memory, which the sweep measures)."""
    inputs = {"latent_a": ["4", 0], "latent_b": ["4", 0], "weights": "onestep-default-latent-lpips-sd15-random.safetensors", "draws": 2,
              "seed": 0, "augment": "bgco", "l1": True, "model": ["1", 0], **over}
    g = generate_prompt(width=128, height=128, batch_size=2)  # the E-LatentLPIPS network pools twice: latents ≥ 16×16
    g["4"] = g.pop("5")
    del g["6"]
    return {**g, "5": {"class_type": "OneStepLatentPerceptualDiff", "inputs": inputs}}


PROMPTS = {"OneStepCollectTeacherPairs": collect_prompt, "OneStepTrainDiffusion2GAN": d2g_prompt, "OneStepTrainReflow": reflow_prompt,
           "OneStepTrainInstaFlow": instaflow_prompt, "OneStepTrainSiDLSG": sid_prompt, "OneStepGenerate": generate_prompt,
           "OneStepLatentPerceptualDiff": diff_prompt}
MIN_INPUTS = {"OneStepGenerate": 5, "OneStepLatentPerceptualDiff": 2}  # numeric inputs each node declares (others: ≥ 6)

# Values inside the declared ranges that cannot work: (input values, inputs the message may name, what it must say —
# one of; a machine with less memory may refuse the shard case for its teacher call first)
SEED = "signed 64-bit"
CALL = "one teacher call needs about"
FORWARD = "one forward pass of the UNet alone"
IN_RANGE = {
    "OneStepCollectTeacherPairs": [
        ({"seed": 2**63 - 1}, {"seed"}, (SEED,)),  # the declared maximum, but shards record seed + i as int64 (count 4)
        ({"width": 68}, {"width"}, ("multiples of 8",)),
        ({"height": 100}, {"height"}, ("multiples of 8",)),
        ({"width": 4096, "height": 4096, "batch_size": 256}, {"width", "batch_size"}, (CALL,)),  # ~9,800 GiB
        ({"width": 2048, "height": 2048, "batch_size": 1, "count": 65536, "shard_size": 65536}, {"shard_size", "width"},
         ("a shard is kept in memory", CALL)),  # a 384 GiB shard
        ({"width": 1024, "height": 1024, "count": 100_000_000, "dataset_name": "sweep-huge"}, {"count"}, ("GiB on disk",)),  # ≥ 48,000 GiB
    ],
    # more than the 4 pairs; on the CPU host a forward pass of batch 1024 at 64² is estimated at 10 GiB
    "OneStepTrainDiffusion2GAN": [({"batch_size": 1024}, {"batch_size"}, ("more than the 4 items", FORWARD))],
    "OneStepTrainReflow": [({"batch_size": 1024}, {"batch_size"}, ("more than the 4 items", FORWARD))],
    "OneStepTrainInstaFlow": [({"batch_size": 1024}, {"batch_size"}, ("more than the 4 items", FORWARD))],
    "OneStepTrainSiDLSG": [
        ({"width": 72}, {"width"}, ("multiples of 16",)),  # the tiny UNet's two downsamplings
        ({"height": 100}, {"height"}, ("multiples of 16",)),
        ({"width": 4096, "height": 4096, "batch_size": 64}, {"width", "batch_size"}, (FORWARD,)),  # ~2,500 GiB
    ],
    "OneStepGenerate": [({"width": 16384, "height": 16384, "batch_size": 64}, {"width", "batch_size"}, ("the one-step call needs about",))],
}
IN_RANGE_LINKED = {"OneStepCollectTeacherPairs": [({"seed": LINK_MAX}, {"seed"}, (SEED,))]}


def _outside(value, lo, hi) -> bool:
    return isinstance(value, float) and not math.isfinite(value) or (lo is not None and value < lo) or (hi is not None and value > hi)


def attack_values(kind: str, lo, hi) -> tuple[list, list]:
    """(widget values, linked values) outside [lo, hi]: the neighbours of each bound, 0, −1, huge, NaN and ±inf."""
    if kind == "INT":
        near = [lo - 1, hi + 1, 0, -1, 2**31, 2**63, 2**64]
        widget = sorted({v for v in near if _outside(v, lo, hi)}) + [NAN, INF]
        linked = sorted({v for v in near if _outside(v, lo, hi) and abs(v) <= LINK_MAX} | ({LINK_MAX} if hi < LINK_MAX else set()))
        return widget, linked
    span = hi - lo
    near = [lo - span / 1000, hi + span / 1000, lo - 1.0, hi + 1.0, 0.0, -1.0, 1e308, -1e308]
    widget = sorted({v for v in near if _outside(v, lo, hi)}) + [NAN, INF, -INF]
    linked = sorted({v for v in near if _outside(v, lo, hi) and abs(v) <= LINK_MAX}) + [NAN]
    return widget, linked


def numeric_inputs(host, node: str) -> dict[str, tuple[str, float, float]]:
    """{input: (INT|FLOAT, min, max)} of a node as the host declares it (/object_info)."""
    info = host.get(f"/object_info/{node}")[node]["input"]
    out = {}
    for section in ("required", "optional"):
        for name, spec in info.get(section, {}).items():
            if spec[0] in ("INT", "FLOAT"):
                out[name] = (spec[0], spec[1]["min"], spec[1]["max"])
    return out


def _linked(prompt: dict, values: dict) -> dict:
    """The prompt with each value fed into node 5 through its own core Primitive node."""
    for i, (name, value) in enumerate(values.items()):
        prompt[f"p{i}"] = {"class_type": "PrimitiveFloat" if isinstance(value, float) else "PrimitiveInt", "inputs": {"value": value}}
        prompt["5"]["inputs"][name] = [f"p{i}", 0]
    return prompt


def _state(host) -> dict[str, tuple[int, int]]:
    """(size, mtime) of every file and folder under the host's models, output and input folders."""
    out = {}
    for top in INPUTS:
        for d, dirs, files in os.walk(os.path.join(host.base_dir, top)):
            for n in dirs + files:
                p = os.path.join(d, n)
                st = os.lstat(p)
                out[os.path.relpath(p, host.base_dir)] = (st.st_size if n in files else -1, st.st_mtime_ns)
    return out


def _user_files(host) -> dict[str, str]:
    """sha256 of every file the valid runs made (pairs, generators, checkpoints, histories)."""
    out = {}
    for sub in ("onestep_pairs", "onestep", "onestep_runs", "loras"):
        for d, _, files in os.walk(os.path.join(host.base_dir, "models", sub)):
            for n in files:
                p = os.path.join(d, n)
                if "sweep-" in os.path.relpath(p, host.base_dir):
                    with open(p, "rb") as f:
                        out[os.path.relpath(p, host.base_dir)] = hashlib.sha256(f.read()).hexdigest()
    return out


def peak_rss(host) -> int:
    """The server's peak resident memory so far (VmHWM), bytes."""
    with open(f"/proc/{host.proc.pid}/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))


@pytest.fixture(scope="module")
def sweep(host):
    """Valid runs that leave what a user has under the names the attacks use: a pairs dataset, a Diffusion2GAN, a
    reflow, an InstaFlow and a SiD-LSG run (generator files and checkpoints) and the 2-RF's own pairs; before them a
    one-step generation and a latent distance (so the prompts the attacks vary are known to work)."""
    t0 = time.time()
    for prompt in (generate_prompt(), diff_prompt(), collect_prompt(), d2g_prompt(), reflow_prompt(),
                   collect_prompt("sweep-rf-pairs", "sweep-rf.safetensors", scheduler="simple", cfg=1.0), instaflow_prompt(), sid_prompt()):
        ok(host.run(prompt))
    files = _user_files(host)
    assert sum(p.endswith("checkpoint.safetensors") for p in files) == 4 and sum("shard-" in p for p in files) == 4, sorted(files)
    print(f"\nvalid runs before the sweep: {time.time() - t0:.1f} s")
    return {"files": files, "peak": peak_rss(host), "counts": {}}


def _attack(host, prompt: dict, names: set[str], declared: tuple | None, says: tuple[str, ...] = ()) -> tuple[str, str]:
    """Run one attack on node 5; returns (how it ended: 'comfyui' or 'pack', the message) after checking it: refused by
    ComfyUI for one of `names`, or the pack's error naming one of them, with the `declared` range or one of `says`."""
    before = _state(host)
    t0 = time.time()
    entry = host.run(prompt, timeout=120)
    took = time.time() - t0
    assert host.proc.poll() is None, "the server died"
    if "refused" in entry:
        errors = entry["refused"].get("node_errors", {}).get("5", {}).get("errors", [])
        named = [e for e in errors if e.get("extra_info", {}).get("input_name") in names]
        assert named, entry["refused"]
        how, msg = "comfyui", f"{named[0]['type']}: {named[0]['message']}"
    else:
        error = entry["error"]
        assert error is not None, f"NOT REFUSED: {entry['status']['status_str']}"
        msg, kind = error["exception_message"].strip(), error["exception_type"].rsplit(".", 1)[-1]
        assert error["node_id"] == "5" and kind in PACK_ERRORS, (error["node_id"], kind, msg)
        assert any(n in msg for n in names), (names, msg)
        if declared is not None:  # the declared range, named
            assert range_text(*declared) in msg, (declared, msg)
        assert not says or any(x in msg for x in says), (says, msg)
        assert "site-packages" not in error["traceback"][-1], error["traceback"][-1]  # raised by the pack, not deep in torch
        how = "pack"
    assert took < 60, f"{took:.0f} s"
    after = _state(host)
    assert after == before, {"new": sorted(after.keys() - before.keys()), "gone": sorted(before.keys() - after.keys()),
                             "changed": sorted(k for k in before.keys() & after.keys() if before[k] != after[k])}
    return how, msg


@pytest.mark.parametrize("node", sorted(PROMPTS))
def test_every_numeric_input_refuses_out_of_range_and_hostile_values(host, sweep, node):
    declared = numeric_inputs(host, node)
    assert len(declared) >= MIN_INPUTS.get(node, 6), declared
    make = PROMPTS[node]
    rows, t0 = [], time.time()
    for name, (kind, lo, hi) in sorted(declared.items()):
        widget, linked = attack_values(kind, lo, hi)
        for value in widget:
            rows.append((name, "widget", value, *_attack(host, make(**{name: value}), {name}, (lo, hi))))
        for value in linked:
            rows.append((name, "linked", value, *_attack(host, _linked(make(), {name: value}), {name}, (lo, hi))))
    for values, names, says in IN_RANGE.get(node, []):
        label = ",".join(v for v in values if v in declared)
        rows.append((label, "widget", tuple(values.values()), *_attack(host, make(**values), names, None, says)))
    for values, names, says in IN_RANGE_LINKED.get(node, []):
        rows.append((",".join(values), "linked", tuple(values.values()), *_attack(host, _linked(make(), values), names, None, says)))
    print(f"\n{node}: {len(rows)} attacks on {len(declared)} inputs in {time.time() - t0:.1f} s; the server's peak resident memory "
          f"{peak_rss(host) / 2**20:.0f} MiB")
    for name, path, value, how, msg in rows:
        print(f"  {name:22s} {path:6s} {value!s:28.28s} {how:7s} {msg.splitlines()[0][:150]}")
    by_how = {h: sum(r[3] == h for r in rows) for h in ("comfyui", "pack")}
    sweep["counts"][node] = (len(declared), len(rows), by_how)
    assert by_how["pack"] > 0 and by_how["comfyui"] > 0, by_how  # both paths were exercised


def test_after_the_sweep_the_users_files_are_unchanged_and_valid_runs_still_work(host, sweep):
    assert len(sweep["counts"]) == len(PROMPTS), "run the whole module: the sweep of every node comes first"
    total = sum(n for _, n, _ in sweep["counts"].values())
    print(f"\n{total} attacks: " + "; ".join(f"{k}: {n} on {i} inputs {h}" for k, (i, n, h) in sweep["counts"].items()))
    assert _user_files(host) == sweep["files"]
    grew = peak_rss(host) - sweep["peak"]
    print(f"the server's peak resident memory: {sweep['peak'] / 2**20:.0f} MiB before the sweep, {grew / 2**20:+.0f} MiB after it")
    assert grew < 2**30, f"the server's peak memory grew by {grew / 2**20:.0f} MiB during the sweep"
    t0 = time.time()
    ok(host.run(collect_prompt("sweep-after", count=2)))
    for make in (d2g_prompt, reflow_prompt, instaflow_prompt, sid_prompt):  # each resumes the run the attacks named, one step on
        ok(host.run(make(steps=3)))
    assert ok(host.run(generate_prompt(seed=2**64 - 1)))["6"]["latents"]  # the largest seed a seed widget takes
    assert ok(host.run(diff_prompt(seed=2**64 - 1, draws=3)))["5"]["text"][0].endswith("mean: 0.0000")
    print(f"valid runs after the sweep: {time.time() - t0:.1f} s")
