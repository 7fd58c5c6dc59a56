"""Kill anywhere (issue 21): pair collection SIGKILLed at every write event of a seeded schedule — after each
temporary file is written and before its rename, and right after the rename — then resumed. After every kill no
file under a final name is partial (every listed shard loads, the manifest parses), and the resumed dataset is
identical to an uninterrupted run's: the same files, every shard's tensors and metadata equal, the manifest equal but for
the shards' sha256 (safetensors writes its header map in a per-process order, so equal content need not be equal bytes)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

from safetensors.torch import load_file

from onestep.pairs.validate import validate

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def _run(folder: str, kill_at: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "KILL_AT": str(kill_at), "PYTHONPATH": REPO, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, os.path.join(HERE, "kill_child.py"), folder], env=env, capture_output=True, text=True, timeout=300)


def _content(folder: str) -> dict:
    """Every file's content: shards as (metadata, tensors), the manifest without the shards' byte hashes."""
    from safetensors import safe_open

    out = {}
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if name == "manifest.json":
            m = json.load(open(path, encoding="utf-8"))
            for entry in m["shards"]:
                entry.pop("sha256")
            out[name] = m
        elif name.endswith(".safetensors"):
            with safe_open(path, "pt") as f:
                out[name] = (f.metadata(), {k: f.get_tensor(k).tolist() for k in f.keys()})
        else:
            out[name] = open(path, "rb").read()
    return out


def test_pair_collection_survives_a_kill_at_every_write(tmp_path):
    ref = str(tmp_path / "reference")
    done = _run(ref, 0)
    assert done.returncode == 0, done.stderr
    events = int(done.stdout.split()[-1])
    want = _content(ref)
    assert events >= 20 and validate(ref).ok  # 5 shards + a manifest after each: ≥ 20 kill points
    survived = 0
    for kill_at in range(1, events + 1):
        folder = str(tmp_path / f"kill-{kill_at}")
        killed = _run(folder, kill_at)
        assert killed.returncode == -signal.SIGKILL, (kill_at, killed.returncode, killed.stderr[-500:])
        for name in os.listdir(folder):  # what carries a final name is whole
            path = os.path.join(folder, name)
            if name == "manifest.json":
                json.load(open(path, encoding="utf-8"))
            elif name.startswith("shard-"):
                load_file(path)
        resumed = _run(folder, 0)
        assert resumed.returncode == 0, (kill_at, resumed.stderr[-500:])
        assert _content(folder) == want, f"killed at write event {kill_at}: the resumed dataset differs from an uninterrupted run"
        assert validate(folder).ok
        survived += 1
    print(f"pair collection: {survived} kill points, {survived} survived (identical content after resume)")
