"""The headless CLI under a real torchrun launch (gloo, CPU), through the 2-GPU benchmark's own driver
(benchmarks/bench_cli_ddp.py --tiny): 2 processes end where 1 process with 2-step gradient accumulation ends, and a
run started twice from the same flags is the same run."""
from __future__ import annotations

import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_torchrun_cli_equals_accumulation_and_repeats_exactly(tmp_path):
    out = tmp_path / "result.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH", "")])), "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "benchmarks.bench_cli_ddp", "--work", str(tmp_path / "work"), "--tiny", "--gpus", "2",
                    "--steps", "4", "--items", "32", "--repeat-accum", "--out", str(out), "--", "--warmup-steps", "0"],
                   cwd=REPO, env=env, check=True, timeout=900)
    r = json.loads(out.read_text())
    runs = {x["run"]: x for x in r["runs"]}
    assert [(runs[n]["world_size"], runs[n]["global_batch"], runs[n]["grad_accumulation"]) for n in ("1gpu", "1gpu-accum", "2gpu")] == \
        [(1, 2, 1), (1, 4, 2), (2, 4, 1)]
    assert all(x["steps"] == 4 and x["ms_per_step"] > 0 for x in runs.values())
    eq, floor = r["equivalence_ngpu_vs_accumulation"], r["floor_accumulation_vs_itself"]
    assert floor["l2_diff"] == 0.0  # seeded end to end: data order, D's new layers, every random draw
    assert eq["l2_moved"] > 0 and eq["relative"] < 0.01, eq  # float rounding of the summation order only
