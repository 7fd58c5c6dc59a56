"""Proof-scale teacher: ε-prediction training, the multi-step sampler, and the diffusers → ComfyUI (ldm) layout."""
import json
import math
import os

import pytest
import torch

from onestep.parameterization import OneStepGenerator, OneStepSpec
from onestep.schedule import SD_SCHEDULE
from proof_scale.data import load_split
from proof_scale.sampler import EpsDenoiser, discrete_sigmas, initial_noise, sample_euler, sample_heun, sample_teacher
from proof_scale.teacher import (
    TeacherNetConfig,
    TeacherTrainConfig,
    build_unet,
    ldm_state_dict,
    ldm_unet_config,
    load_teacher,
    random_context_table,
    save_teacher,
    train_teacher,
)

TINY = TeacherNetConfig(block_out_channels=(32, 32), attention=(False, True), layers_per_block=1, heads=2, context_dim=16)


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny convolutions run faster on one core


@pytest.fixture(scope="module")
def trained(one_thread):
    x, y = load_split("train", limit=512)
    x = torch.nn.functional.avg_pool2d(x, 2)  # the UNet is convolutional: train at 16×16 to keep the CPU test short
    table = random_context_table(4, TINY.context_dim)
    cfg = TeacherTrainConfig(steps=24, batch=8, lr=2e-3, warmup=5, log_every=12)
    unet, losses = train_teacher(x, y, table, cfg, TINY, device="cpu")
    return unet, table, losses


def test_training_loss_falls(trained):
    _, _, losses = trained
    assert len(losses) == 24 and all(math.isfinite(v) for v in losses)
    assert sum(losses[-6:]) / 6 < 0.6 * sum(losses[:6]) / 6


def test_sampler_returns_finite_latents_deterministically(trained):
    unet, table, _ = trained
    labels = torch.tensor([0, 9])
    a = sample_teacher(unet, table, labels, steps=2, cfg=2.0, seed=1)
    assert a.shape == (2, 1, 32, 32) and torch.isfinite(a).all()
    one = [sample_teacher(unet, table, labels, steps=1, cfg=1.0, seed=1, batch=b) for b in (1, 2)]
    assert torch.allclose(*one, atol=1e-4)  # the noise does not depend on batching
    h = sample_teacher(unet, table, labels[:1], steps=2, cfg=1.0, seed=1, sampler="heun")
    assert h.shape == (1, 1, 32, 32) and torch.isfinite(h).all()


def test_sigmas_lie_on_the_schedule():
    s = discrete_sigmas(1)
    assert s.tolist() == pytest.approx([SD_SCHEDULE.sigma(999), 0.0], rel=1e-6)
    s = discrete_sigmas(4)
    assert s[:-1].tolist() == pytest.approx([SD_SCHEDULE.sigma(t) for t in (999, 666, 333, 0)], rel=1e-6) and s[-1] == 0
    den = EpsDenoiser(torch.nn.Identity(), torch.zeros(11, 1, 1))
    assert den.timestep(s[:-1]).tolist() == [999, 666, 333, 0]


def test_heun_reaches_the_ode_solution_closer_than_euler_at_half_the_calls():
    # Gaussian data x0 ~ N(mu, s²): D(x, σ) = mu + s²/(s² + σ²)·(x − mu) and the ODE's exact end point is
    # mu + (x_T − mu)·s/sqrt(s² + σ_max²). It did not carry over to the proof-scale teacher (run 13: Heun-13 FD 21.9,
    # Euler-50 8.6), which is why the pairs stage scores the teacher at the pairs' setting.
    mu, s = 0.3, 0.5
    denoiser = lambda x, sigma: mu + s**2 / (s**2 + sigma.view(-1, 1, 1, 1) ** 2) * (x - mu)
    z = torch.randn(16, 1, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)

    def error(sampler, steps):
        sigmas = discrete_sigmas(steps).double()
        x_T = z * sigmas[0]
        exact = mu + (x_T - mu) * s / (s**2 + sigmas[0] ** 2).sqrt()
        return (sampler(denoiser, x_T, sigmas) - exact).abs().max().item()

    assert error(sample_heun, 13) < 0.6 * error(sample_euler, 50)  # 0.040 vs 0.082
    assert error(sample_euler, 100) < 0.6 * error(sample_euler, 50)  # Euler converges, at first order


def test_one_euler_step_is_the_core_one_step_generator(trained):
    unet, table, _ = trained
    labels = torch.tensor([2, 5])
    z = initial_noise(2, 3)
    sigmas = discrete_sigmas(1)
    x = sample_euler(EpsDenoiser(unet, table), z * math.sqrt(float(sigmas[0]) ** 2 + 1), sigmas, {"labels": labels, "cfg": 1.0})
    gen = OneStepGenerator(lambda x_in, t, ctx: unet(x_in, t, encoder_hidden_states=ctx).sample, OneStepSpec("eps", 999, "raw_z"))
    with torch.no_grad():
        ref = gen(z, table[labels])
    assert torch.allclose(x, ref, atol=1e-5)


def test_a_compiled_teacher_samples_as_the_eager_one(tmp_path, trained):
    # --compile-teacher (issue 14: the GPU time of pairs is GroupNorm/elementwise-bound, which inductor fuses) must not
    # change what the sampler computes; the module keeps its state_dict keys, so nothing else sees the compile
    unet, table, _ = trained
    path = str(tmp_path / "teacher.safetensors")
    save_teacher(path, unet, TINY, table)
    eager, _, _, _ = load_teacher(path)
    compiled, _, _, _ = load_teacher(path, compile_mode="default")
    assert compiled.state_dict().keys() == eager.state_dict().keys() and compiled._compiled_call_impl is not None
    labels = torch.tensor([0, 3, 7, 9])
    x = sample_teacher(eager, table, labels, steps=3, cfg=1.5, seed=5)
    y = sample_teacher(compiled, table, labels, steps=3, cfg=1.5, seed=5)
    assert torch.allclose(x, y, atol=1e-4) and not torch.equal(x, sample_teacher(eager, table, labels, steps=3, cfg=1.5, seed=6))


def test_compiled_teacher_artifacts_persist_into_a_fresh_process_state(tmp_path, trained, monkeypatch):
    """--compile-cache: what the first process compiled is saved (compile_cache.save_all, as the pipeline's exit does);
    a later one with empty caches (another device call) loads it in load_teacher and compiles nothing anew."""
    from torch._dynamo.utils import counters

    from onestep import compile_cache

    unet, table, _ = trained
    path = str(tmp_path / "teacher.safetensors")
    save_teacher(path, unet, TINY, table)
    labels = torch.tensor([1, 4])
    samples = []
    try:
        for attempt in (1, 2):
            monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / f"inductor-{attempt}"))  # torch's own cache: empty each time
            torch._dynamo.reset()
            counters.clear()
            compile_cache._OPEN.clear()  # a fresh process opens its own
            compile_cache.set_folder(str(tmp_path / "artifacts"))
            compiled, _, _, _ = load_teacher(path, compile_mode="default")
            samples.append(sample_teacher(compiled, table, labels, steps=2, cfg=1.5, seed=3))
            if attempt == 1:
                assert counters["inductor"]["fxgraph_cache_miss"] >= 1 and compile_cache.save_all() == 1
                (art,) = compile_cache._OPEN.values()
                assert art.path.startswith(str(tmp_path / "artifacts")) and os.path.isfile(art.path)
            else:
                assert counters["inductor"]["fxgraph_cache_hit"] >= 1 and not counters["inductor"]["fxgraph_cache_miss"], dict(counters["inductor"])
        assert torch.allclose(samples[0], samples[1], atol=1e-5)
    finally:
        compile_cache.set_folder(None)
        compile_cache._OPEN.clear()
        torch._dynamo.reset()


def test_teacher_file_round_trip(tmp_path, trained):
    unet, table, _ = trained
    path = str(tmp_path / "teacher.safetensors")
    save_teacher(path, unet, TINY, table, {"steps_done": 24})
    loaded, table2, net, info = load_teacher(path)
    assert net == TINY and info == {"steps_done": 24} and torch.equal(table2, table)
    x, t, ctx = torch.randn(1, 1, 32, 32), torch.tensor([500]), table[:1]
    with torch.no_grad():
        assert torch.equal(loaded(x, t, encoder_hidden_states=ctx).sample, unet(x, t, encoder_hidden_states=ctx).sample)


def test_context_table_shape_is_checked():
    x, y = load_split("train", limit=8)
    with pytest.raises(ValueError, match="context table"):
        train_teacher(x, y, torch.zeros(10, 4, TINY.context_dim), TeacherTrainConfig(steps=1), TINY, "cpu")


def test_ldm_conversion_loads_into_comfyui_unet_and_matches():
    import comfy.cli_args

    comfy.cli_args.args.cpu = True
    import comfy.model_detection
    import comfy.ops
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    torch.manual_seed(0)
    unet = build_unet(TINY).eval()
    with torch.no_grad():  # diffusers zero-initialises conv_out; give every weight some signal
        for p in unet.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    sd = ldm_state_dict(unet)
    cfg = ldm_unet_config(TINY)
    detected = comfy.model_detection.detect_unet_config(sd, "")
    assert {k: v for k, v in detected.items() if k not in ("num_heads", "num_head_channels")} == {
        k: v for k, v in cfg.items() if k in detected and k not in ("num_heads", "num_head_channels")}
    assert set(detected) - set(cfg) <= {"num_heads", "num_head_channels"}
    ldm = UNetModel(**cfg, operations=comfy.ops.disable_weight_init).eval()
    assert set(ldm.state_dict()) == set(sd)
    ldm.load_state_dict(sd, strict=True)
    x, t, ctx = torch.randn(2, 1, 32, 32), torch.tensor([10, 700]), torch.randn(2, 5, TINY.context_dim)
    with torch.no_grad():
        assert torch.allclose(ldm(x, t, context=ctx), unet(x, t, encoder_hidden_states=ctx).sample, atol=1e-4)


def test_default_config_maps_to_ldm():
    cfg = ldm_unet_config(TeacherNetConfig())
    assert (cfg["model_channels"], cfg["channel_mult"], cfg["num_res_blocks"]) == (64, [1, 2, 2], [2, 2, 2])
    assert cfg["transformer_depth"] == [0, 0, 1, 1, 1, 1] and cfg["transformer_depth_output"] == [0, 0, 0, 1, 1, 1, 1, 1, 1]


def test_cli_end_to_end(tmp_path):
    import os

    from safetensors.torch import load_file

    from onestep.latent_lpips.datasets import FASHION_MNIST_DIR

    from proof_scale.cli import main

    d = lambda name: str(tmp_path / name)
    common = ["--device", "cpu", "--limit", "200"]
    assert main([*common, "train-classifier", d("clf.safetensors"), "--width", "4", "--feature-dim", "16", "--steps", "3", "--batch", "8"]) == 0
    assert main([*common, "train-teacher", d("t.safetensors"), "--context", "random:4:16", "--block-out-channels", "32,32",
                 "--attention", "0,1", "--layers-per-block", "1", "--heads", "2", "--steps", "2", "--batch", "2"]) == 0
    assert main([*common, "sample-teacher", d("t.safetensors"), d("s.safetensors"), "--count", "20", "--steps", "1", "--cfg", "1.5"]) == 0
    assert load_file(d("s.safetensors"))["latents"].shape == (20, 1, 32, 32)
    assert main([*common, "score", d("s.safetensors"), "--classifier", d("clf.safetensors"), "--json", d("m.json")]) == 0
    with open(d("m.json")) as f:
        assert set(json.load(f)) == {"samples", "fd", "precision", "recall", "class_acc"}
    assert main(["export-ldm", d("t.safetensors"), d("ldm.safetensors")]) == 0
    assert "input_blocks.0.0.weight" in load_file(d("ldm.safetensors"))
    assert main([*common, "score", d("s.safetensors"), "--classifier", d("t.safetensors")]) == 2  # not a classifier file
    # --data: the labelled set from another folder (a device machine's carried copy), and a clear stop without it
    os.symlink(FASHION_MNIST_DIR, d("fm"))
    assert main([*common, "--data", d("fm"), "score", d("s.safetensors"), "--classifier", d("clf.safetensors"), "--reference-cache",
                 d("ref_fm.safetensors")]) == 0
    assert main([*common, "--data", d("nowhere"), "score", d("s.safetensors"), "--classifier", d("clf.safetensors"), "--reference-cache",
                 d("ref_none.safetensors")]) == 2


def test_the_shipped_teacher_imports_into_the_pipelines_unet_exactly():
    """teacher_import: the shipped ldm-layout teacher file becomes the diffusers UNet the pipeline samples, weight for weight."""
    import os

    from onestep import format as gen_format
    from onestep.unet_keys import diffusers_to_ldm
    from proof_scale.teacher import ldm_unet_config
    from proof_scale.teacher_import import import_teacher

    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "default_models", "proof_scale", "fmnist-teacher.safetensors")
    unet, net, meta = import_teacher(path)
    sd, _ = gen_format.load_generator(path)
    mine = diffusers_to_ldm(unet.state_dict())
    assert set(mine) == set(sd) and all(torch.equal(mine[k], sd[k].float()) for k in sd)
    assert ldm_unet_config(net) == {k: meta.unet_config[k] for k in ldm_unet_config(net)} and meta.method == "teacher"
    student = os.path.join(os.path.dirname(path), "fmnist-student.safetensors")
    with pytest.raises(ValueError, match="not a proof-scale teacher"):
        import_teacher(student)


def test_graphed_denoiser_survives_across_batches():
    """Batched pair collection calls sample_teacher_from_noise once per batch: the graphed denoiser (and so its captured
    graphs) in the teacher's cache is reused for the same UNet, table and settings, and rebuilt when the table or the
    weights' tensors change; the cache is the caller's (no cycle through the UNet keeps graphs alive after it)."""
    import gc
    import weakref
    from proof_scale import sampler as ps
    from proof_scale.stage_pairs import ProofScaleTeacher
    unet, table = build_unet(TINY), random_context_table(4, TINY.context_dim)
    cache = ProofScaleTeacher(unet, table, 2, 1.5).graphs
    first = ps.graphed_denoiser(unet, table, cache=cache)
    assert ps.graphed_denoiser(unet, table.clone(), cache=cache) is first  # equal values: the same graphs
    assert ps.graphed_denoiser(unet, table, cache=[]) is not first  # no cache given: a fresh one, as before
    assert ps.graphed_denoiser(unet, table, bf16=False, cache=cache) is not first
    other = ps.graphed_denoiser(unet, table + 1, cache=cache)
    assert other is not first and ps.graphed_denoiser(unet, table + 1, cache=cache) is other
    assert len(cache) == ps.GRAPHED_PER_CACHE  # bounded: the oldest entry and its graph pools go
    with torch.no_grad():
        unet.conv_in.weight = torch.nn.Parameter(unet.conv_in.weight.clone())  # a reload: new weight tensors
    g = ps.graphed_denoiser(unet, table, cache=cache)
    assert g is not first and ps.graphed_denoiser(unet, table, cache=cache) is g
    assert g.denoiser.unet is unet and torch.equal(g.denoiser.context_table, table)
    gc.disable()  # freed by reference counting alone once the cache's owner goes
    try:
        gone = weakref.ref(unet)
        del unet, cache, first, other, g
        assert gone() is None
    finally:
        gc.enable()
