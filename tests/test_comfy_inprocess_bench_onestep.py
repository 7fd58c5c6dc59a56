"""benchmarks/bench_onestep.py --tiny on the CPU, in process with the real ComfyUI: the SDXL rows' code paths (the pack's
One-Step Generate, the fast path's call run eagerly, core's SamplerCustom path, the raw UNet, core's KSampler teacher,
core VAE Decode, the decoder in both memory layouts), the checks (the eager fast call equals fast=off), the table and command printed, the JSON written,
and --time-budget skipping the teacher; plus the full-size SDXL config being what core's own detection reads."""
from __future__ import annotations

import json

import pytest
from test_comfy_inprocess import pack  # noqa: F401  (fixture: ComfyUI on CPU, the pack's nodes registered)

from benchmarks import bench_onestep as bench

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny convolutions run faster on one core
TINY = ["--tiny", "--arch", "sdxl", "--size", "32", "--teacher-steps", "2"]


def test_tiny_sdxl_run(pack, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "onestep.json"
    info = bench.main([*TINY, "--batches", "1", "2", "--out", str(out), "--time-budget", "1e9"])  # a loaded CPU must not skip
    printed = capsys.readouterr().out
    assert json.loads(out.read_text()) == json.loads(json.dumps(info))
    assert info["command"] in printed and "| 2 | fast path's call, eager (no graph) |" in printed
    assert info["arch"] == "sdxl" and info["device"] == "cpu" and not info["skipped"]
    for b in (1, 2):
        paths = {r["path"]: r for r in info["rows"] if r["batch"] == b}
        assert {"One-Step Generate, fast=off (core machinery)", "fast path's call, eager (no graph)", "raw UNet call, eager",
                "core SamplerCustom node path, 1 euler step from σ_max", "core VAE Decode",
                "teacher, 2 euler steps CFG 7.5 (core KSampler)", "teacher, 2 euler steps CFG 7.5 + core VAE Decode"} <= set(paths)
        assert not any("cuda" in p.lower() for p in paths)  # no CUDA rows on the CPU
        assert all(r["ms"] > 0 and r["x_vs_teacher"] > 0 for r in paths.values())
        assert paths["teacher, 2 euler steps CFG 7.5 + core VAE Decode"]["x_vs_teacher"] == 1.0
        # the decoder layout probe (NHWC on a copy of the decoder) decodes what the default layout does
        assert {"raw decoder, eager (NCHW)", "raw decoder, eager, channels_last (NHWC)", "raw decoder, eager, cuDNN autotuned (NCHW)",
                "raw decoder, eager, cuDNN autotuned, channels_last (NHWC)"} <= set(paths)
        for what in ("channels_last", "cuDNN autotuned", "cuDNN autotuned channels_last"):
            assert info["checks"][f"batch {b}: decoder {what} vs NCHW, max |Δ| (-1..1 pixels)"] <= 1e-4
        # the fast path's call (core's y from the pooled text and size keys) gives fast=off's latents
        assert info["checks"][f"batch {b}: fast path's call run eagerly vs fast=off, max |Δ| / max |x|"] <= 1e-5
        assert all(r["tflop_s"] > 0 for r in paths.values())
    # model FLOPs, counted on real calls: the UNet's and decoder's work doubles with the batch; the SD VAE decoder is
    # 10.47 TFLOP per image at 1024² (docs/benchmarks.md), of which the 128²-token attention is 4·16384²·512 FLOPs and the
    # rest scales with the pixels (1/1024 of it at 32², where the attention's 16 tokens are nothing); the teacher adds
    # 2 × steps UNet calls
    f1, f2 = info["model_flops"]["batch 1"], info["model_flops"]["batch 2"]
    assert f2["unet"] == pytest.approx(2 * f1["unet"]) and f2["decoder"] == pytest.approx(2 * f1["decoder"])
    assert f1["decoder"] == pytest.approx((10.47e12 - 4 * 16384**2 * 512) / 1024, rel=0.01) and f1["unet"] > 0
    assert bench.row_flops("teacher, 2 euler steps CFG 7.5 + core VAE Decode", f1, 2) == 4 * f1["unet"] + f1["decoder"]
    assert bench.row_flops("end to end: core SamplerCustom + core VAE Decode", f1, 2) == f1["unet"] + f1["decoder"]
    assert "| model TFLOP/s |" in printed


def test_time_budget_skips_the_teacher(pack, capsys):  # noqa: F811
    info = bench.main([*TINY, "--time-budget", "0", "--rounds", "1"])
    assert [s["what"] for s in info["skipped"]] == ["teacher, 2 steps"] and "--time-budget 0" in info["skipped"][0]["reason"]
    assert not any(r["path"].startswith("teacher") for r in info["rows"])
    assert "| 1 | teacher, 2 steps | skipped:" in capsys.readouterr().out


def test_profile_reports_each_end_to_end_path(pack, capsys):  # noqa: F811
    """--profile: after the timings, each end-to-end path's calls under torch.profiler (on the CPU only core's path has
    an end-to-end row, and there are no GPU kernels to count), printed per call."""
    info = bench.main([*TINY, "--time-budget", "0", "--rounds", "1", "--profile"])
    printed = capsys.readouterr().out
    end_to_end = [r["path"] for r in info["rows"] if r["path"].startswith("end to end")]
    assert end_to_end and [p["path"] for p in info["profiles"]] == end_to_end
    for p in info["profiles"]:
        assert p["calls"] == bench.PROFILE_CALLS and p["wall_s"] > 0 and p["gpu_idle_share"] is None and not p["gpu_categories_s"]
        assert p["top_host_ops"] and all(op["self_ms"] >= 0 for op in p["top_host_ops"])
        assert f"profile batch 1 {p['path']}: " in printed and "ms per call under the profiler" in printed


def test_sdxl_unet_is_cores_own_sdxl():
    """Core's model detection, on the state dict of a UNet built from fixtures.SDXL_UNET (on the meta device: shapes
    only), finds SDXL and exactly this config: the benchmark times ComfyUI's SDXL architecture."""
    import comfy.model_detection
    import comfy.ops
    import comfy.supported_models
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    from tools import fixtures as F

    sd = UNetModel(**F.SDXL_UNET, device="meta", operations=comfy.ops.disable_weight_init).state_dict()
    assert 2.5e9 < sum(v.numel() for v in sd.values()) < 2.6e9
    config = comfy.model_detection.model_config_from_unet(sd, "")
    assert type(config) is comfy.supported_models.SDXL and config.unet_config == F.SDXL_UNET
