"""benchmarks/bench_train.py --tiny --arch sdxl on the CPU: SDXL's conditioning (2048-wide text, the pooled text through
core's encode_adm) reaches the trainer's G and D (an SDXL UNet without pooled text refuses the batch), and the
issue-20 rows are memory=low exactly as the training nodes give it (training.config.low_memory, nothing overridden)."""
from __future__ import annotations

import json

import pytest

from benchmarks import bench_train as bench

# conftest's one_thread restores the thread count afterwards: bench_train.main sets it for a CLI run, and a later test
# that compares this process with a fresh one (tests/test_core_training_resume.py) needs the process default back
pytestmark = pytest.mark.usefixtures("one_thread")


def test_tiny_sdxl_rows_are_memory_low(tmp_path, capsys):
    out = tmp_path / "train.json"
    info = bench.main(["--tiny", "--arch", "sdxl", "--rows", "lora64-b2-ckpt-low", "--steps", "1", "--warmup", "0", "--no-compile-lpips",
                       "--out", str(out)])
    printed = capsys.readouterr().out
    assert json.loads(out.read_text()) == json.loads(json.dumps(info))
    assert info["command"] in printed and "| lora64-b2-ckpt-low |" in printed
    assert [r["row"] for r in info["rows"]] == ["lora64-b2-ckpt-low"] and bench.SDXL_ROWS == ["full-b2-ckpt-low", "lora64-b2-ckpt-low"]
    assert info["arch"] == "sdxl" and info["context"] == [77, 2048] and info["latent"] == [4, 16, 16]
    lora, = info["rows"]
    assert lora["row"] == "lora64-b2-ckpt-low" and lora["status"] == "ok" and lora["per_gpu_batch"] == 2
    assert lora["ms_median_r1"] > 0 and {"regression", "gan_g", "r1"} <= set(lora["last_losses"]) and lora["trainable_g"] > 0
    P = bench.load_pack()
    for rank in (0, 64):  # the rows' configs: low_memory's own settings, not the older rows' per-row overrides
        got = bench.row_config(P, rank, 2, True, True, r1_mode=None)
        assert got == P.config.low_memory(bench.row_config(P, rank, 2, True, False, r1_mode=None))
        assert got.discriminator.r1_mode == "approx" and got.bf16 and got.generator.gradient_checkpointing
        assert got.discriminator.backbone == ("lora" if rank else "full") and (got.optim.optimizer == "adafactor") == (rank == 0)
    assert lora["config"] == json.loads(json.dumps(bench.row_config(P, 64, 2, True, True, r1_mode=None).to_dict()))


def test_the_bf16_lora_row_stores_the_trained_factors_and_the_ema_in_bf16(tmp_path):
    """Issue 20's LoRA-memory row: memory=low as the nodes give it, but G's and D's LoRA factors and G's EMA in bf16
    (stochastic-rounding updates) — it trains, and only those storage dtypes differ from the lora64-b2-ckpt-low row."""
    P = bench.load_pack()
    low = bench.row_config(P, 64, 2, True, True, r1_mode=None)
    bf16 = bench.row_config(P, 64, 2, True, True, r1_mode=None, d_storage="bfloat16")
    assert (bf16.generator.storage_dtype, bf16.discriminator.storage_dtype, bf16.ema_dtype) == ("bfloat16",) * 3
    assert (low.generator.storage_dtype, low.discriminator.storage_dtype, low.ema_dtype) == ("float32",) * 3
    assert bf16.to_dict() | {"generator": None, "discriminator": None, "ema_dtype": None} == low.to_dict() | {"generator": None, "discriminator": None, "ema_dtype": None}
    info = bench.main(["--tiny", "--arch", "sdxl", "--rows", "lora64-b2-ckpt-low-bf16", "--steps", "1", "--warmup", "0", "--no-compile-lpips",
                       "--out", str(tmp_path / "train.json")])
    row, = info["rows"]
    assert row["status"] == "ok" and row["config"]["generator"]["storage_dtype"] == "bfloat16" and row["config"]["ema_dtype"] == "bfloat16"
    assert row["config"]["discriminator"]["storage_dtype"] == "bfloat16" and row["last_losses"]["regression"] > 0
