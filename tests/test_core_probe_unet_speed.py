"""benchmarks/probe_unet_speed.py --tiny on the CPU: the GPU probe's own code (variants in turn, each restoring what it
changed, the JSON rewritten after each, the profile's categories) on the tests' tiny UNet; the CUDA-only variants are
reported as skipped with their reason, never timed."""
from __future__ import annotations

import json

import comfy.cli_args

comfy.cli_args.args.cpu = True  # before model_management picks the device

from benchmarks import probe_unet_speed as probe  # noqa: E402


def test_tiny_probe_rows(tmp_path, capsys):
    out = tmp_path / "probe.json"
    info = probe.main(["--tiny", "--iters", "2", "--warmup", "1", "--out", str(out)])
    printed = capsys.readouterr().out
    assert json.loads(out.read_text()) == json.loads(json.dumps(info))
    rows = {r["variant"]: r for r in info["rows"]}
    assert [v.name for v in probe.variants()] == list(rows)
    for name in ("eager", "eager + channels_last", "eager + subpixel"):
        assert rows[name]["status"] == "ok" and rows[name]["ms"] > 0
    cuda_only = [r for r in info["rows"] if r["status"] == "skipped"]
    assert cuda_only and all(r["reason"] == "needs CUDA" for r in cuda_only)
    assert info["command"] in printed and "| eager |" in printed
    categories = info["profile"]["categories"]
    assert categories and abs(sum(c["share"] for c in categories.values()) - 1) < 1e-6


def test_kernel_categories():
    assert probe.category("cudnn_generated_fort_native_sdpa_sm90_flash_fprop_wgmma_f16") == "attention"
    assert probe.category("sm90_xmma_fprop_implicit_gemm_f16f16_f16f32_f32_nhwckrsc_nhwc") == "convolution"
    assert probe.category("nvjet_sm90_hsh_256x128_64x4_1x2_h_bz_coopA_bias_TNT") == "gemm/matmul"
    assert probe.category("triton_poi_fused_convolution_native_group_norm_silu_114") == probe.TRITON_FUSED
    assert probe.category("some_unknown_kernel") == "other"


def test_only_runs_the_matched_variants(tmp_path):
    info = probe.main(["--tiny", "--iters", "1", "--warmup", "0", "--only", "^eager \\+ channels_last$"])
    status = {r["variant"]: r["status"] for r in info["rows"]}
    assert status.pop("eager + channels_last") == "ok"
    assert set(status.values()) == {"skipped"}
    assert {r["reason"] for r in info["rows"] if r["variant"] != "eager + channels_last"} == {"not matched by --only"}
