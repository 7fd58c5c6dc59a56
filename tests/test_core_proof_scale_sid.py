"""The proof-scale SiD-LSG rows at --tiny scale on the CPU: trained from the class prompts alone (no pairs stage, no
E-LatentLPIPS), κ from the teacher row's CFG (the LSG ablation with guidance in the teacher only), selected, exported
as `sid-lsg` generator files and scored like every row; the report lists them with their target."""
import json
import os

import pytest
import torch

from onestep.format import load_generator
from proof_scale import pipeline, rows
from proof_scale.report import markdown

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny convolutions run faster on one core


def _json(*parts: str):
    with open(os.path.join(*parts)) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    w = str(tmp_path_factory.mktemp("proof_scale_sid"))
    tiny = ["--work", w, "--tiny"]
    assert pipeline.main([*tiny, "--stage", "classifier,teacher,teacher-eval", "--teacher-seeds", "1"]) == 0
    assert pipeline.main([*tiny, "--stage", "distill-sid_lsg", "--max-seconds", "1e-9"]) == pipeline.EXIT_INCOMPLETE  # resumable stop
    assert pipeline.main([*tiny, "--stage", "distill-sid_lsg,distill-sid_lsg_teacher_cfg"]) == 0
    return w


def test_sid_rows_train_from_prompts_and_score_like_every_row(work):
    cfg = _json(work, "teacher_eval.json")["cfg"]
    assert not os.path.exists(os.path.join(work, "pairs"))  # no teacher pairs were made
    for row, kappas in (("sid_lsg", (cfg, cfg, cfg)), ("sid_lsg_teacher_cfg", (1.0, 1.0, cfg))):
        result = _json(work, "distill", row, "result.json")
        r, plan = result["row"], result["plan"]
        assert (plan["method"], plan["kappa1"], plan["kappa2"], plan["kappa4"], plan["alpha"], plan["beta1"]) == ("sid-lsg", *kappas, 1.0, 0.0)
        assert "regression" not in plan and "gan" not in plan and plan["steps"] == pipeline.TINY.row["steps"]
        assert set(pipeline.METRICS) <= set(r) and r["nfe"] == 1 and len(r["fd_seeds"]) == 2
        assert r["training_samples"] == r["selected_step"] * pipeline.TINY.row["batch"]
        assert [p["step"] for p in result["selection"]] == [2, 3] and "heldout_mse" not in result["selection"][0]
        _, meta = load_generator(result["generator"])
        assert (meta.method, meta.prediction, meta.timestep, meta.input_convention, meta.latent_format) == ("sid-lsg", "eps", 625, "sigma_z", "fmnist32")
        assert meta.guidance == cfg and meta.notes["sid_lsg"]["kappa1"] == kappas[0] and meta.notes["proof_scale_row"] == row
        assert meta.training_steps == r["selected_step"] and len(meta.teacher_hash) == 16
        history = _json(work, "distill", row, "history.json")
        assert [s for s, _ in history["fake_total"]] == [1, 2, 3] and [s for s, _ in history["sid"]] == [1, 2, 3]  # resumed once, each step once


def test_sid_plans_and_variants():
    defaults = pipeline.TINY.row
    p = rows.plan("sid_lsg@kappa=2:alpha=1.2:lr=3e-5", defaults, teacher_cfg=1.5)
    assert (p["kappa1"], p["kappa2"], p["kappa4"], p["alpha"], p["lr"]) == (2.0, 2.0, 2.0, 1.2, 3e-5)
    c = rows.train_config(p, bf16=False, save_every=0)
    assert (c.method, c.optim.betas, c.optim.grad_clip, c.sid.latent_height, c.generator.spec.timestep) == \
        ("sid-lsg", (0.0, 0.999), 0.0, 32, defaults["timestep"])
    c = rows.train_config(rows.plan("sid_lsg_teacher_cfg@ema_ramp=false:ema_select=0.999/0.9995:channels_last=true", defaults, 1.5),
                          bf16=False, save_every=0)
    plain = rows.train_config(p, bf16=False, save_every=0)
    assert (c.ema_ramp, c.ema_extra, c.channels_last, plain.ema_ramp, plain.channels_last) == (False, (0.999, 0.9995), True, True, False)
    with pytest.raises(ValueError, match="teacher-eval first"):
        rows.plan("sid_lsg", defaults)
    with pytest.raises(ValueError, match="bad setting 'gan_weight=1'"):
        rows.plan("sid_lsg@gan_weight=1", defaults, 1.5)
    assert rows.is_prompts_row("sid_lsg_teacher_cfg@seed=1") and not rows.is_prompts_row("diffusion2gan")
    assert rows.plan("diffusion2gan", defaults) == rows.plan("diffusion2gan", defaults, 1.5)  # the table's rows ignore the teacher's CFG


def test_report_lists_the_sid_rows_with_their_target():
    row = {"fd": 2.0, "fd_seeds": [1.9, 2.1], "precision": 0.5, "recall": 0.5, "class_acc": 0.8, "nfe": 1, "seconds": 1.0,
           "training_samples": 1000, "train_seconds": 5.0}
    result = {name: dict(row) for name in pipeline.ROWS}
    result["teacher"]["fd"] = 2.5
    result["sid_lsg"] = {**row, "plan": {"kappa1": 1.5, "kappa2": 1.5, "kappa4": 1.5}}
    result["variants"] = {}
    result["meta"] = {"device": "cpu", "teacher_sampling": {"steps": 2, "cfg": 1.5}, "plan": {"steps": 3, "batch": 4, "lr": 1e-4, "lr_warmup": 1,
                      "lr_decay": "cosine", "ema_decay": 0.9, "timestep": 625}, "sweep_seed": 2, "pairs": 16, "heldout_pairs": 8,
                      "eval_count": 20, "eval_seeds": [1], "commands": {"report": "x"}}
    text = markdown(result)
    assert "| sid_lsg |" in text and "SiD-LSG (prompts only, κ1 1.5" in text and "0.80× → **met**" in text


def test_a_sid_row_goes_on_in_a_new_work_folder_from_its_carried_g_and_fake_score(work, tmp_path, caplog):
    """Issue 16's long data-free row over several device sessions: its checkpoint's G (EMA) and fake score ψ packed as
    int8 deltas from the teacher (proof_scale.carried_state: 64 MiB a call do not hold both in fp16 beside the tree),
    placed into a bare work folder, and a row with init_from= starts G and ψ from them."""
    import logging
    import shutil

    from proof_scale import carried_state, init_row
    from training.checkpoint import load_checkpoint

    row_dir = os.path.join(work, "distill", "sid_lsg_teacher_cfg")
    out = str(tmp_path / "state")
    files = carried_state.pack(out, row_dir, os.path.join(work, "teacher.safetensors"), "sid_carry")
    assert [os.path.basename(f) for f in files] == ["best.q8.safetensors", "net_fake_score.q8.safetensors"]
    state = load_checkpoint(os.path.join(row_dir, "checkpoint.safetensors"))
    base = carried_state.teacher_weights(os.path.join(work, "teacher.safetensors"))
    psi = carried_state.carried_networks(out, base)["fake_score"]
    assert set(psi) == set(state["fake_score"])
    packed, meta = carried_state.read(files[1])
    assert any(v.dtype == torch.int8 for v in packed.values())  # the large tensors are deltas in int8
    for k, v in state["fake_score"].items():  # within half an int8 step of the channel's largest change
        step = (v.float() - base[k[len("unet."):]]).abs().max() / 127
        assert (psi[k] - v.float()).abs().max() <= step / 2 + 1e-6, k
    _, g_meta = carried_state.read(files[0])
    assert g_meta["row"] == "sid_carry" and g_meta["step"] == 3 and g_meta["plan"]["method"] == "sid-lsg"

    w2 = str(tmp_path / "work2")
    shutil.copytree(work, w2, ignore=lambda d, names: [n for n in names if d == work and n in {"distill", "generators", "logs"}])
    assert init_row.place(out, w2) == "sid_carry" and init_row.place(out, w2) is None  # once
    assert _json(w2, "distill", "sid_carry", "result.json")["row"] == {"selected_step": 3, "training_samples": 3 * pipeline.TINY.row["batch"],
                                                                      "finished": False}
    with caplog.at_level(logging.INFO, logger="proof_scale"):
        assert pipeline.main(["--work", w2, "--tiny", "--stage", "distill-sid_lsg_teacher_cfg@init_from=sid_carry:steps=2"]) == 0
    assert "fake_score starts from row sid_carry's carried state" in caplog.text
    assert "G starts from row sid_carry at its step 3" in caplog.text
    row = [d for d in os.listdir(os.path.join(w2, "distill")) if d != "sid_carry"]
    result = _json(w2, "distill", row[0], "result.json")["row"]
    assert result["started_from"] == {"row": "sid_carry", "step": 3, "training_samples": 3 * pipeline.TINY.row["batch"]}
    # carried on again: the next part's state counts the samples of both parts
    files = carried_state.pack(str(tmp_path / "state2"), os.path.join(w2, "distill", row[0]), os.path.join(w2, "teacher.safetensors"), "sid_carry2")
    assert carried_state.read(files[0])[1]["training_samples"] == (2 + 3) * pipeline.TINY.row["batch"]


def test_a_row_keeping_more_averages_selects_and_carries_the_best_scored(work, tmp_path):
    """`ema_select=` (TrainConfig.ema_extra): every selection point scores each average, the row exports and scores
    the lowest-FD one and says which, and its carried state holds the average its latest point scored best."""
    import shutil

    from proof_scale import carried_state
    from training.checkpoint import load_checkpoint

    w = str(tmp_path / "work")
    shutil.copytree(work, w, ignore=lambda d, names: [n for n in names if d == work and n in {"distill", "generators", "logs"}])
    row = "sid_lsg_teacher_cfg@ema_select=0.2/0.3:ema_ramp=false:steps=4"
    assert pipeline.main(["--work", w, "--tiny", "--stage", f"distill-{row}"]) == 0
    row_dir = os.path.join(w, "distill", rows.row_dir_name(row))
    result = _json(row_dir, "result.json")
    points = result["selection"]
    assert [(p["step"], p["ema"]) for p in points] == [(s, e) for s in (2, 4) for e in (0.9, 0.2, 0.3)]
    assert len({p["fd"] for p in points if p["step"] == 4}) == 3  # three different averages were scored
    best = min(points, key=lambda p: p["fd"])
    assert (result["row"]["selected_step"], result["row"]["selected_ema"]) == (best["step"], best["ema"])
    _, meta = load_generator(result["generator"])
    assert meta.notes["selected_ema"] == best["ema"]

    files = carried_state.pack(str(tmp_path / "state"), row_dir, os.path.join(w, "teacher.safetensors"), "sid_carry")
    packed, g_meta = carried_state.read(files[0])
    last = min((p for p in points if p["step"] == 4), key=lambda p: p["fd"])
    assert g_meta["ema"] == last["ema"] and g_meta["step"] == 4
    state = load_checkpoint(os.path.join(row_dir, "checkpoint.safetensors"))
    average = state["ema"] if last["ema"] == 0.9 else state["ema_extra"][repr(last["ema"])]
    base = carried_state.teacher_weights(os.path.join(w, "teacher.safetensors"))
    g = carried_state.dequantize(packed, base)
    for k, v in average.items():  # the carried G is that average, within half an int8 step of its channel's largest change
        if k.startswith("shadow."):
            name = k[len("shadow.unet."):]
            assert (g[name] - v.float()).abs().max() <= (v.float() - base[name]).abs().max() / 254 + 1e-6, name


def test_calls_of_one_row_may_differ_in_speed_settings_and_resume_each_other(work, caplog):
    """pipeline --speed: compile / cuda_graph / channels_last for this call's rows, outside their names and plans, so a
    later call can train a row faster (e.g. with the compile an earlier call warmed) and still resume its checkpoint."""
    import logging

    row = "sid_lsg_teacher_cfg@seed=3:steps=3"
    tiny = ["--work", work, "--tiny", "--stage", f"distill-{row}"]
    assert pipeline.main([*tiny, "--max-seconds", "1e-9"]) == pipeline.EXIT_INCOMPLETE  # a first call stops at once
    run_dir = os.path.join(work, "distill", rows.row_dir_name(row))
    plan = _json(run_dir, "plan.json")
    with caplog.at_level(logging.INFO, logger="proof_scale"):
        assert pipeline.main([*tiny, "--speed", "channels_last=true"]) == 0  # the next resumes it in NHWC
    assert "this call's speed settings: channels_last=True" in caplog.text
    assert _json(run_dir, "plan.json") == plan and "channels_last" not in plan  # the plan is the row's, not the call's
    assert [s for s, _ in _json(run_dir, "history.json")["sid"]] == [1, 2, 3]
    with pytest.raises(ValueError, match="bad setting 'lr=1'"):  # what the row computes is not a speed setting
        rows.parse_speed("compile=true:lr=1")
    assert rows.parse_speed("cuda_graph=true:compile_mode=default") == {"cuda_graph": True, "compile_mode": "default"}
    with pytest.raises(ValueError, match="SiD-LSG's step only"):
        rows.with_speed(rows.plan("diffusion2gan", pipeline.TINY.row), {"cuda_graph": True})


def test_the_bench_warms_the_compile_a_rows_call_then_finds_in_torchs_cache(work, tmp_path, monkeypatch):
    """run 42's WARM: bench_proof_scale_train on the work folder's teacher compiles the SiD step's blocks, and a later
    call of a row with --speed compile=true (another process on the device; here after dynamo's reset) loads every
    compiled graph from torch's cache instead of compiling it: the bench builds the step as proof_scale.distill does."""
    import torch._dynamo
    from torch._dynamo.utils import counters

    from benchmarks import bench_proof_scale_train as bench

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))  # a cold cache of this test's own
    torch._dynamo.reset()
    counters.clear()
    assert bench.main(["--device", "cpu", "--rows", "sid_lsg_teacher_cfg", "--batches", str(pipeline.TINY.row["batch"]), "--steps", "2",
                       "--warmup", "1", "--modes", "default", "--teacher", os.path.join(work, "teacher.safetensors")]) == 0
    cold = dict(counters["aot_autograd"])
    assert cold["total"] > 0 and not cold.get("autograd_cache_hit"), cold  # compiled here, first
    torch._dynamo.reset()
    counters.clear()
    row = "sid_lsg_teacher_cfg@seed=5:steps=1"
    assert pipeline.main(["--work", work, "--tiny", "--stage", f"distill-{row}", "--speed", "compile=true"]) == 0
    warm = dict(counters["aot_autograd"])
    assert warm["total"] == cold["total"] and warm.get("autograd_cache_hit") == warm["total"], (cold, warm)
    torch._dynamo.reset()


def test_a_live_gan_row_trains_d_and_carries_g_and_psi_only(work, tmp_path):
    """SiD with the live GAN at --tiny scale: D trains beside ψ on the teacher's own samples (still no pairs), and the
    carried state leaves D behind (carried_state.NOT_CARRIED: it does not fit a call's 64 MiB beside G and ψ)."""
    from proof_scale import carried_state
    from training.checkpoint import load_checkpoint

    row = "sid_lsg_teacher_cfg@live_gan=0.5:live_gan_start=1:live_anchor_items=2:live_anchor_steps=2:steps=2"
    assert pipeline.main(["--work", work, "--tiny", "--stage", f"distill-{row}"]) == 0
    row_dir = os.path.join(work, "distill", rows.row_dir_name(row))
    history = _json(row_dir, "history.json")
    assert [s for s, _ in history["d_total"]] == [1, 2] and [s for s, _ in history["gan_g"]] == [2]  # G hears D from step 1
    assert "discriminator" in load_checkpoint(os.path.join(row_dir, "checkpoint.safetensors"))
    files = carried_state.pack(str(tmp_path / "state"), row_dir, os.path.join(work, "teacher.safetensors"), "gan_carry")
    assert [os.path.basename(f) for f in files] == ["best.q8.safetensors", "net_fake_score.q8.safetensors"]
