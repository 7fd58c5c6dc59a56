"""benchmarks/bench_sid_lsg.py --tiny on the CPU: the same code paths as the GPU run (diffusers UNet behind
DiffusersUNet, the engine's SiD-LSG, every memory recipe), rows in the order asked, an out-of-memory row recorded and
the run going on, the records' figures consistent with the recipes, and the JSON written."""
from __future__ import annotations

import json

from benchmarks import bench_sid_lsg as bench

ROWS = ["ref-fp32-b1", "full-lowmem-b2", "full-lowmem-b1", "lora64-b1"]


def test_tiny_run_records(tmp_path, capsys):
    out = tmp_path / "sid_mem.json"
    info = bench.main(["--tiny", "--rows", *ROWS, "--steps", "1", "--warmup", "0", "--fake-oom", "full-lowmem-b2", "--out", str(out),
                       "--time-budget", "1e9"])  # a loaded CPU must not skip rows
    printed = capsys.readouterr().out
    assert json.loads(out.read_text()) == json.loads(json.dumps(info))  # the file holds what was measured
    assert info["command"] in printed and "| full-lowmem-b2 |" in printed
    rows = {r["row"]: r for r in info["rows"]}
    assert [r["row"] for r in info["rows"]] == ROWS
    assert rows["full-lowmem-b2"]["status"] == "OOM" and all(rows[n]["status"] == "ok" for n in ROWS if n != "full-lowmem-b2")
    ref, full, lora = rows["ref-fp32-b1"], rows["full-lowmem-b1"], rows["lora64-b1"]
    for r in (ref, full, lora):
        assert r["ms_per_step"] > 0 and r["timed_steps"] == 1 and r["peak_alloc_gib"] == 0.0  # no CUDA memory on the CPU
        assert {"fake_score", "sid", "grad_norm_g", "grad_norm_fake"} <= set(r["last_losses"])
        assert r["config"]["method"] == "sid-lsg"
    # the recipes: the reference trains everything in float32 with an EMA; the low-memory row the same parameters
    assert ref["trainable"] == full["trainable"] == 2 * ref["trainable_g"] and 0 < lora["trainable"] < full["trainable"]
    assert (ref["storage"], ref["ema"], ref["bf16_autocast"]) == ({"g": "float32", "fake": "float32", "frozen": "float32"}, "0.999 float32", False)
    assert (full["storage"], full["ema"], full["optimizer"]) == ({"g": "bfloat16", "fake": "bfloat16", "frozen": "bfloat16"}, "none", "adafactor")
    assert full["gradient_checkpointing"] and lora["fake_lora_rank"] == lora["lora_rank"] == 64
    s_ref, s_full, s_lora = (r["counted_state_bytes"] for r in (ref, full, lora))
    n = ref["trainable_g"]  # G's = ψ's = φ's parameter count in a full fine-tune
    assert (s_ref["weights_g"], s_ref["weights_fake"], s_ref["weights_teacher"]) == (4 * n, 4 * n, 4 * n)
    assert (s_full["weights_g"], s_full["weights_fake"], s_full["weights_teacher"]) == (2 * n, 2 * n, 2 * n)  # all in bf16
    assert s_ref["ema"] == 4 * n and s_full["ema"] == 0
    assert s_ref["optimizer_g"] >= 2 * 4 * n > s_full["optimizer_g"] > 0  # AdamW: two float32 moments (+ step counts); Adafactor: factored
    # LoRA: one frozen copy of the teacher (G's base, in bf16) that ψ and φ share; ψ adds only its float32 factors
    assert s_lora["weights_fake"] == 4 * lora["trainable_fake"] and s_lora["weights_teacher"] == 0
    assert s_ref["total"] > s_full["total"] > 0 and s_ref["total"] > s_lora["total"] > 0


def test_rows_past_the_time_budget_are_skipped(capsys):
    args = ["--tiny", "--rows", "lora64-b1", "ref-fp32-b1", "--steps", "1", "--warmup", "0", "--time-budget", "0", "--fake-oom", "lora64-b1"]
    first, second = bench.main(args)["rows"]
    assert first["status"] == "OOM"  # the first row always runs (here: out of memory at once)
    assert second["status"] == "skipped" and "--time-budget 0" in second["error"]
    assert "| ref-fp32-b1 | | 1 | | | | | skipped |" in capsys.readouterr().out
