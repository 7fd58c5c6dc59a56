"""benchmarks/device/proof_scale_bundle.sh and scripts/device_bundle.sh aside / restore (scripts/aside.sh), on a clone
of this repository: a device call's tree loses what it does not need (and keeps the run script named), and restore
brings every tracked file back — with the edits made while they were aside (a run's "as run" notes) kept, not
overwritten."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = "benchmarks/device/proof_scale_bundle.sh"
HELPER = "scripts/aside.sh"  # the aside / restore both bundle scripts share
DEVICE_BUNDLE = "scripts/device_bundle.sh"
KEEP = "benchmarks/results/proof_scale_h200_run20/run.sh"


def _git(repo, *args) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def clone(tmp_path):
    repo = str(tmp_path / "clone")
    subprocess.run(["git", "clone", "-q", "--shared", ROOT, repo], check=True)
    for script in (SCRIPT, HELPER, DEVICE_BUNDLE):  # the scripts as they are here, committed or not
        shutil.copy(os.path.join(ROOT, script), os.path.join(repo, script))
    return repo


def test_aside_keeps_the_named_run_script_and_restore_brings_everything_back(clone):
    tracked = set(_git(clone, "ls-files").split("\n")) - {""}
    before = set(_git(clone, "status", "--porcelain").splitlines())
    subprocess.run(["bash", SCRIPT, "aside", KEEP], cwd=clone, check=True, capture_output=True)
    present = {f for f in tracked if os.path.exists(os.path.join(clone, f))}
    gone = tracked - present
    assert KEEP in present and "README.md" in present and "default_models/proof_scale/fmnist-teacher.safetensors" in present
    assert {"tests/conftest.py", "docs/benchmarks.md", "default_models/proof_scale/fmnist-student.safetensors",
            "default_models/proof_scale/fmnist-text-encoder.safetensors"} <= gone
    assert not any(f.startswith(("benchmarks/results/", "tests/", "web/", "workflows/", "docs/")) for f in present - {KEEP})
    assert "benchmarks/device/proof_scale_run.sh" in present and "proof_scale/pipeline.py" in present
    size = sum(os.path.getsize(os.path.join(clone, f)) for f in present)
    assert size < 32 * 2**20, size  # what travels of the tree, beside .devdata/ps (64 MiB in all)
    assert subprocess.run(["bash", SCRIPT, "aside"], cwd=clone, capture_output=True).returncode == 1  # twice: refused

    with open(os.path.join(clone, KEEP), "a") as f:  # notes written while the rest is aside
        f.write("# as run: noted while aside\n")
    subprocess.run(["bash", SCRIPT, "restore"], cwd=clone, check=True, capture_output=True)
    assert set(_git(clone, "status", "--porcelain").splitlines()) == before | {f" M {KEEP}"}
    with open(os.path.join(clone, KEEP)) as f:
        assert f.read().endswith("# as run: noted while aside\n")
    assert not os.path.exists(os.path.join(clone, ".devdata", "aside_ps"))


def test_the_device_bundle_moves_models_and_results_aside_and_back(clone):
    before = set(_git(clone, "status", "--porcelain").splitlines())
    subprocess.run(["bash", DEVICE_BUNDLE, "aside"], cwd=clone, check=True, capture_output=True)
    assert not os.path.exists(os.path.join(clone, "default_models")) and not os.path.exists(os.path.join(clone, "benchmarks", "results"))
    assert os.path.isfile(os.path.join(clone, ".devdata", "aside", "benchmarks", "results", "proof_scale.json"))
    assert subprocess.run(["bash", DEVICE_BUNDLE, "aside"], cwd=clone, capture_output=True).returncode == 1  # twice: refused
    os.makedirs(os.path.join(clone, "benchmarks", "results"))  # a device call's records copied in meanwhile
    with open(os.path.join(clone, "benchmarks", "results", "new.json"), "w") as f:
        f.write("{}")
    subprocess.run(["bash", DEVICE_BUNDLE, "restore"], cwd=clone, check=True, capture_output=True)
    assert set(_git(clone, "status", "--porcelain").splitlines()) == before | {"?? benchmarks/results/new.json"}
    assert not os.path.exists(os.path.join(clone, ".devdata", "aside"))
