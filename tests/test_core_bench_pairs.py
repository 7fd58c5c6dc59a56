"""benchmarks/bench_pairs.py --tiny on the CPU: the same code as the GPU run (collector per path side by side, raw UNet,
latent comparison, breakdown), rows per batch and path, the command printed and the JSON written. On the CPU no graph
can be captured, so every UNet call of every path takes core's path and the fast paths' latents are core's, bit for bit."""
from __future__ import annotations

import json

import comfy.cli_args

comfy.cli_args.args.cpu = True  # before model_management picks the device

from benchmarks import bench_pairs as bench  # noqa: E402


def test_tiny_run_rows(tmp_path, capsys):
    out = tmp_path / "pairs.json"
    info = bench.main(["--tiny", "--rounds", "1", "--breakdown", "--out", str(out)])
    printed = capsys.readouterr().out
    assert json.loads(out.read_text()) == json.loads(json.dumps(info))
    assert info["command"] in printed and "| 2 | graph |" in printed and info["device"] == "cpu"
    assert [(r["batch"], r["path"]) for r in info["rows"]] == [(2, "core"), (2, "graph"), (2, "compile")]
    core, graph, comp = info["rows"]
    for r in info["rows"]:
        assert r["s_per_batch"] > 0 and r["pairs_per_s"] == 2 / r["s_per_batch"] and r["first_round_s"] > 0
        assert r["graph_calls"] == 0 and r["core_calls"] == info["steps"]  # one round, one cond+uncond call per step
    # and the run says why: a GPU run that replayed nothing (issue 20's first one) must name its reason
    assert core["core_reasons"] == {"fast_teacher off": info["steps"]}
    assert graph["core_reasons"] == comp["core_reasons"] == {"not a CUDA device": info["steps"]}
    assert f"| 0 / {info['steps']} ({info['steps']}: not a CUDA device) |" in printed
    for r in (graph, comp):
        assert r["bit_equal_to_core"] and r["max_abs_diff_vs_core"] == 0.0 and r["latent_abs_mean"] > 0
    assert core["speedup_vs_core"] == 1.0 and set(core["per_batch_s"]) == {"encode", "sample", "write", "raw_unet"}


def test_profile_names_the_host_ops_of_a_round(capsys):
    info = bench.main(["--tiny", "--rounds", "1", "--paths", "core", "compile", "--profile"])
    printed = capsys.readouterr().out
    for r in info["rows"]:
        p = r["profile"]
        assert p["wall_s"] > 0 and p["gpu_idle_share"] is None  # no GPU here: nothing to be idle
        assert p["top_host_ops"] and all(o["count"] > 0 and o["self_ms"] >= 0 for o in p["top_host_ops"])
        assert set(p["host_waits"]) <= set(bench.SYNC_OPS)
        assert f"profile batch 2 {r['path']}:" in printed


def test_long_collection_is_timed_whole(capsys):
    info = bench.main(["--tiny", "--rounds", "1", "--paths", "core", "graph", "--long", "3"])
    printed = capsys.readouterr().out
    for r in info["rows"]:
        assert r["long_batches"] == 3 and r["long_shard_size"] == 6 and r["long_pairs_per_s"] == 6 / r["long_s"] > 0
        assert f"long collection batch 2 {r['path']}: 3 batches in" in printed


def test_node_shard_size_is_a_multiple_of_the_batch():
    assert bench.node_shard_size(8, 8000) == 64 and bench.node_shard_size(6, 8000) == 60
    assert bench.node_shard_size(100, 8000) == 100 and bench.node_shard_size(8, 24) == 24 and bench.node_shard_size(8, 20) == 24
