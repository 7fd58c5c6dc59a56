"""benchmarks/probe_vae_decoder.py on ComfyUI's own SD VAE decoder (random weights) on the CPU at 64²: every layer
kind gets its rows, each convolution shape its number of calls, and the convolutions' FLOPs add up to torch's own count
of the decoder's (the TFLOP/s the GPU run prints rest on them)."""
import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_the_decoder_probe_attributes_every_layer_and_counts_the_convolutions_flops(tmp_path):
    out = str(tmp_path / "probe.json")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.path.join(REPO, ".host", "ComfyUI"), REPO, os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([sys.executable, "-m", "benchmarks.probe_vae_decoder", "--size", "64", "--rounds", "1", "--json", out],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "| conv | 512→512, 3×3, out 8×8 | 10 |" in run.stdout  # conv_in's 512 ch at the latents: mid (4) + up[3] (6)
    with open(out) as f:
        probe = json.load(f)
    layers = probe["layers"]
    assert {r["kind"] for r in layers} == {"conv", "groupnorm", "upsample", "attnblock", "other"}
    assert all(r["ms"] >= 0 for r in layers if r["kind"] != "other") and probe["kernels"] == []  # no CUDA: no kernel table

    code = ("import torch, comfy.cli_args; comfy.cli_args.args.cpu = True; import comfy.sd; from tools import fixtures as F; "
            "from torch.utils.flop_counter import FlopCounterMode; vae = comfy.sd.VAE(sd=F.vae_state_dict()); "
            "d = vae.first_stage_model.decoder; z = torch.zeros(1, 4, 8, 8, dtype=vae.vae_dtype)\n"
            "with torch.inference_mode(), FlopCounterMode(display=False) as c: d(z)\n"
            "print(sum(v for op, v in c.get_flop_counts()['Global'].items() if 'convolution' in str(op)))")
    counted = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert counted.returncode == 0, counted.stderr[-2000:]
    assert sum(r["flops"] for r in layers) == float(counted.stdout.split()[-1])


def test_the_subpixel_decoder_is_probed_with_the_flops_it_runs(tmp_path):
    out = str(tmp_path / "probe.json")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.path.join(REPO, ".host", "ComfyUI"), REPO, os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([sys.executable, "-m", "benchmarks.probe_vae_decoder", "--size", "64", "--rounds", "1", "--subpixel", "--json", out],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    with open(out) as f:
        probe = json.load(f)
    layers = probe["layers"]
    assert probe["subpixel"] and {r["kind"] for r in layers} == {"conv", "groupnorm", "subpixel", "attnblock", "other"}
    sub = sorted((r["shape"], r["calls"]) for r in layers if r["kind"] == "subpixel")
    assert sub == [("256→256, 2×2 × 4 phases, 32×32 → 64×64", 1), ("512→512, 2×2 × 4 phases, 16×16 → 32×32", 1),
                   ("512→512, 2×2 × 4 phases, 8×8 → 16×16", 1)]
    code = ("import torch, comfy.cli_args; comfy.cli_args.args.cpu = True; import comfy.sd; from tools import fixtures as F; "
            "from comfy_host import REPO, pack_nodes; pack_nodes(REPO); from onestep_nodes.subpixel_views import vae_view; "
            "from torch.utils.flop_counter import FlopCounterMode; vae = comfy.sd.VAE(sd=F.vae_state_dict()); "
            "d = vae_view(vae.first_stage_model).module.decoder; z = torch.zeros(1, 4, 8, 8, dtype=vae.vae_dtype)\n"
            "with torch.inference_mode(), FlopCounterMode(display=False) as c: d(z)\n"
            "print(sum(v for op, v in c.get_flop_counts()['Global'].items() if 'convolution' in str(op)))")
    env["PYTHONPATH"] = os.pathsep.join([os.path.join(REPO, "tests"), env["PYTHONPATH"]])
    counted = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert counted.returncode == 0, counted.stderr[-2000:]
    assert sum(r["flops"] for r in layers) == float(counted.stdout.split()[-1])
    plain = 2.0 * 9 * (256 * 256 * 64 * 64 + 512 * 512 * 32 * 32 + 512 * 512 * 16 * 16)  # the three pairs' 3×3 convolutions
    ran = sum(r["flops"] for r in layers if r["kind"] == "subpixel")
    assert 0.4 * plain < ran < 0.6 * plain  # 4/9 of the pairs' work, plus the (H+1)×(W+1) border of small inputs


def test_the_wide_groupnorm_decoder_is_probed_once_per_norm_and_compared_with_cores(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.path.join(REPO, ".host", "ComfyUI"), REPO, os.environ.get("PYTHONPATH", "")])}
    probes = {}
    for name, flags in (("plain", []), ("wide", ["--wide-groupnorm", "--wide-affine", "batch_norm"])):
        out = str(tmp_path / f"{name}.json")
        run = subprocess.run([sys.executable, "-m", "benchmarks.probe_vae_decoder", "--size", "64", "--rounds", "1", *flags, "--json", out],
                             cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, run.stderr[-2000:]
        with open(out) as f:
            probes[name] = json.load(f)
    norms = {n: sorted((r["shape"], r["calls"]) for r in p["layers"] if r["kind"] == "groupnorm") for n, p in probes.items()}
    assert norms["wide"] == norms["plain"] and sum(c for _, c in norms["wide"]) == 30  # each of the 30 norms once, not twice
    assert probes["wide"]["wide_groupnorm"] and probes["wide"]["max_diff_from_core"] == 0.0  # the CPU: core's kernel
    assert probes["wide"]["wide_affine"] == "batch_norm"
    assert "largest difference from core's decode" in run.stdout
