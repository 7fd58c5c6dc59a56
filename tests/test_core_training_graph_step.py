"""The CUDA-graph step (training/graph_step.py, TrainConfig.cuda_graph): its buffers and draws, on the CPU.

A CUDA graph needs a GPU; what can go wrong around it — a step's conditioning or draws not reaching the buffers the
captured step reads, draws taken in another order than the eager step takes them, a phase's terms lost, a replay
reading the last step's inputs — is plumbing, and shows on the CPU: `eager_capture` keeps the capture's contract
(nothing runs at the capture, each replay runs the step on the buffers), so a run through GraphedStep must equal the
eager run bit for bit. The capture itself is measured on the GPU (benchmarks/bench_proof_scale_train.py --graph).
"""
from __future__ import annotations

import dataclasses

import pytest
import torch

from test_core_training_sid_lsg import engine, prompts, sid_config
from training.checkpoint import load_checkpoint, save_checkpoint
from training.config import DiscriminatorConfig, LossConfig, OptimConfig, TrainConfig
from training.engine import _plain_lr
from training.graph_step import WARMUP_STEPS, GraphedStep, eager_capture
from training.methods import method_class


def _run(config: TrainConfig, steps: int, graphed: bool, batch: int = 4) -> tuple[dict, dict, list[dict]]:
    e = engine(config)
    if graphed:
        e.graphed = GraphedStep(e, eager_capture)
    data = prompts(16)
    logs = [e.train_step({"context": data.context[(i * batch) % 16:(i * batch) % 16 + batch]}) for i in range(steps)]
    g = {n: p.detach().clone() for n, p in e.unet.named_parameters()}
    psi = {n: p.detach().clone() for n, p in e.method.fake.named_parameters()}
    if graphed:
        assert e.graphed.replay is not None and e.graphed.eager_steps == WARMUP_STEPS  # the last steps were replays
    return g, psi, logs


@pytest.mark.parametrize("setting", [
    {"kappa1": 2.0, "kappa2": 1.0, "kappa4": 2.0, "prompt_dropout": 0.5},  # the fake phase's dropout mask is a draw too
    {"kappa1": 1.0, "kappa2": 1.0, "kappa4": 1.5, "fake_steps": 2},  # one phase twice: each its own buffers
    {"kappa1": 1.0, "kappa2": 1.0, "kappa4": 1.5, "kappa4_t_min": 500},  # κ4 per item from t, on the device
    # the live anchor: its noise is one more draw, its sampler's timesteps and ᾱ device tensors made before the capture
    {"kappa1": 1.0, "kappa2": 1.0, "kappa4": 1.5, "live_anchor_weight": 0.5, "live_anchor_items": 2, "live_anchor_steps": 2},
    {"kappa1": 1.0, "kappa2": 1.0, "kappa4": 1.5, "top": {"channels_last": True}},  # run 42 part c's PICK may pair them
    # compiled blocks in the step (inductor's CPU kernels here): the warm-up steps compile, the replays run the same code
    {"kappa1": 1.0, "kappa2": 1.0, "kappa4": 1.5, "top": {"compile_blocks": True}},
])
def test_a_replayed_step_equals_the_eager_step(setting):
    steps = WARMUP_STEPS + 3
    eager = _run(sid_config(**setting), steps, graphed=False)
    graph = _run(sid_config(**setting), steps, graphed=True)
    for ours, ref in zip(graph[:2], eager[:2]):
        assert ours.keys() == ref.keys()
        assert all(torch.equal(ours[n], ref[n]) for n in ref)
    assert graph[2] == eager[2]  # every step's terms, the gradient norms included
    moved = eager[2][-1]["grad_norm_g"]
    assert moved > 0 and eager[2][-1]["sid"] != eager[2][-2]["sid"]  # the replays trained on fresh draws


LIVE_GAN = {"kappa1": 1.0, "kappa2": 1.0, "kappa4": 1.5, "live_anchor_weight": 0.5, "live_anchor_items": 2,
            "live_anchor_steps": 2, "live_gan_weight": 0.5}


SID = (("fake_score", ""),)


@pytest.mark.parametrize(("setting", "discriminator", "steps", "captures"), [
    # D from step 0, G hearing it from step 8; lazy R1 every 2nd step (exact: double backward): four lists of phases
    ({**LIVE_GAN, "live_gan_start": 8}, {"r1_every": 2}, 20,
     {SID + (("generator", g), ("discriminator", d)) for g in ("", "gan") for d in ("", "r1")}),
    # the hold: D alone for 8 steps (its lead, G and ψ still), then all three; approx R1 draws its probe noise
    ({**LIVE_GAN, "live_gan_start": 8, "live_gan_hold": True}, {"r1_every": 2, "r1_mode": "approx"}, 20,
     {(("discriminator", "lead"),), (("discriminator", "lead+r1"),)} | {SID + (("generator", "gan"), ("discriminator", d)) for d in ("", "r1")}),
    # mix-and-match's validity from the prompts' ids (a draw: the captured pairs hold none), and z-conditioning's from seeds
    ({**LIVE_GAN, "live_anchor_items": 4}, {"r1_gamma": 0.0}, WARMUP_STEPS + 3, {SID + (("generator", "gan"), ("discriminator", ""))}),
])
def test_the_live_gan_replays_as_its_eager_steps(setting, discriminator, steps, captures):
    """SiD-LSG's live GAN under the CUDA-graph step: its phases change between steps (D's R1 steps, the hold's lead,
    G hearing D from live_gan_start), each list of phases its own capture after its own warm-up, and every step equal
    to the eager run's, D's weights and every logged term included."""
    top = {"discriminator": dataclasses.replace(DiscriminatorConfig(), **discriminator)}
    config = sid_config(**setting, top=top)
    runs = []
    for graphed in (False, True):
        e = engine(config)
        if graphed:
            e.graphed = GraphedStep(e, eager_capture)
        data = prompts(16)
        logs = [e.train_step({"context": data.context[(i * 4) % 16:(i * 4) % 16 + 4], "prompt_index": torch.arange(4) % 3})
                for i in range(steps)]
        nets = [{n: p.detach().clone() for n, p in net.named_parameters()} for net in (e.unet, e.method.fake, e.method.discriminator)]
        runs.append((nets, logs, e.graphed))
    (eager_nets, eager_logs, _), (graph_nets, graph_logs, graphed) = runs
    for ours, ref in zip(graph_nets, eager_nets):
        assert ours.keys() == ref.keys() and all(torch.equal(ours[n], ref[n]) for n in ref)
    assert graph_logs == eager_logs
    assert set(graphed.captures) == captures and graphed.eager_steps == len(captures) * WARMUP_STEPS
    assert eager_logs[-1]["grad_norm_d"] > 0 and eager_logs[-1]["d_total"] != eager_logs[-2]["d_total"]


def test_the_capture_compiles_nothing_the_warm_up_steps_did_not():
    """A CUDA graph cannot hold a compile (inductor tunes kernels with host syncs: the capture is invalidated, as run
    42 part e's warm compile was on the GPU). With compiled blocks in bf16 the warm-up steps must compile every block
    variant the capture runs: the same autocast state (no cast cache, which torch.compile guards on) in both."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    e = engine(sid_config(kappa1=1.0, kappa2=1.0, kappa4=1.5, top={"compile_blocks": True, "bf16": True}))
    compiled_at_capture = []

    def capture(body, device):
        before = counters["stats"]["unique_graphs"]
        body()  # the capture's one run of the step
        compiled_at_capture.append(counters["stats"]["unique_graphs"] - before)
        return body

    e.graphed = GraphedStep(e, capture)
    data = prompts(16)
    start = counters["stats"]["unique_graphs"]  # (a process-wide count: earlier tests' compiles are in it)
    for _ in range(WARMUP_STEPS + 1):
        e.train_step({"context": data.context[:4]})
    assert counters["stats"]["unique_graphs"] > start  # the warm-up steps compiled the blocks
    assert compiled_at_capture == [0]


def test_two_micro_batches_each_get_their_own_buffers():
    config = dataclasses.replace(sid_config(batch_size=4), optim=dataclasses.replace(sid_config().optim, grad_accumulation=2))
    eager = _run(config, WARMUP_STEPS + 2, graphed=False)
    graph = _run(config, WARMUP_STEPS + 2, graphed=True)
    assert all(torch.equal(graph[0][n], eager[0][n]) for n in eager[0]) and graph[2] == eager[2]


def test_a_batch_of_another_shape_after_the_capture_is_refused():
    e = engine()
    e.graphed = GraphedStep(e, eager_capture)
    data = prompts(16)
    for _ in range(WARMUP_STEPS + 1):
        e.train_step({"context": data.context[:4]})
    with pytest.raises(ValueError, match="same batch at every step"):
        e.train_step({"context": data.context[:2]})


@pytest.mark.parametrize(("change", "message"), [
    ({"compile_blocks": True, "compile_mode": "reduce-overhead"}, "not 'reduce-overhead'"),
    ({"optim": OptimConfig(optimizer="adafactor")}, "AdamW for every network"),
    ({"ema_dtype": "bfloat16"}, "ema_dtype is 'bfloat16'"),
])
def test_what_a_graph_cannot_replay_is_refused_by_name(change, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(method="sid-lsg", cuda_graph=True, bf16=True, **change)


@pytest.mark.parametrize("mode", ["default", "max-autotune-no-cudagraphs"])
def test_compiled_blocks_without_graphs_of_their_own_may_be_captured(mode):
    c = TrainConfig(method="sid-lsg", cuda_graph=True, bf16=True, compile_blocks=True, compile_mode=mode)
    assert c.cuda_graph and c.compile_blocks


def test_the_engine_refuses_a_cpu_run_and_a_method_that_draws_for_itself():
    with pytest.raises(ValueError, match="on a CUDA GPU; this run is on cpu"):
        engine(dataclasses.replace(sid_config(), cuda_graph=True))
    e = engine(sid_config(anchor_weight=0.5, top={"loss": LossConfig(regression="mse")}))
    assert "recall anchor" in e.method.capturable()
    assert engine().method.capturable() is None
    assert engine(sid_config(live_anchor_weight=0.5)).method.capturable() is None  # prompts only, drawn like the rest
    assert engine(sid_config(live_gan_weight=0.5)).method.capturable() is None  # D's draws are phase draws too
    assert "not built for CUDA-graph replay" in method_class("diffusion2gan")(TrainConfig()).capturable()


def test_checkpoints_keep_a_float_lr():
    state = {"state": {}, "param_groups": [{"lr": torch.tensor(3e-5), "betas": (0.0, 0.999)}, {"lr": 1e-4}]}
    plain = _plain_lr(state)
    assert [g["lr"] for g in plain["param_groups"]] == [pytest.approx(3e-5), 1e-4]
    assert all(isinstance(g["lr"], float) for g in plain["param_groups"])


def test_a_cuda_graph_runs_checkpoint_resumes_eagerly(tmp_path):
    """A CUDA-graph run's AdamW is capturable (step counts on the GPU); a checkpoint of it resumes in an eager run as
    the eager form (here: its groups marked capturable, as such a run writes them, resumed on the CPU)."""
    e = engine()
    data = prompts(16)
    e.train_step({"context": data.context[:4]})
    e.save(tmp_path / "ckpt.safetensors")
    state = load_checkpoint(tmp_path / "ckpt.safetensors")
    for key in ("opt_g", "opt_fake"):
        for group in state[key]["param_groups"]:
            group["capturable"] = True
    save_checkpoint(tmp_path / "graph.safetensors", state)
    resumed = engine()
    assert resumed.load(tmp_path / "graph.safetensors") == 1
    for net in resumed.networks.values():
        assert all(not g["capturable"] for g in net.optimizer.param_groups)
        assert all(st["step"].device.type == "cpu" for st in net.optimizer.state.values())
    resumed.train_step({"context": data.context[4:8]})  # a capturable CPU AdamW would refuse this step
    assert resumed.step == 2


def test_an_lr_tensor_replaced_after_the_capture_is_refused():
    """A captured step reads each lr tensor by address: the engine fills it in place; a new tensor would leave the
    graph training at the old lr, silently — refused instead."""
    e = engine()
    e.graphed = GraphedStep(e, eager_capture)
    for net in e.networks.values():
        for group in net.optimizer.param_groups:
            group["lr"] = torch.tensor(float(group["lr"]))  # as a CUDA-graph run holds them (here on the CPU)
    e._set_learning_rates = lambda: None  # the eager engine would put floats back
    data = prompts(16)
    for _ in range(WARMUP_STEPS + 2):
        e.train_step({"context": data.context[:4]})
    e.networks["generator"].optimizer.param_groups[0]["lr"] = torch.tensor(1e-4)
    with pytest.raises(RuntimeError, match="lr tensor was replaced"):
        e.train_step({"context": data.context[:4]})


def test_the_bench_names_each_graph_mode_by_its_settings():
    from benchmarks.bench_proof_scale_train import _compiled

    base = TrainConfig(method="sid-lsg", bf16=True)
    c = _compiled(base, "graph+default+nhwc")
    assert (c.cuda_graph, c.compile_blocks, c.compile_mode, c.channels_last) == (True, True, "default", True)
    c = _compiled(base, "graph")
    assert (c.cuda_graph, c.compile_blocks, c.channels_last) == (True, False, False)
    with pytest.raises(ValueError, match="not 'reduce-overhead'"):
        _compiled(base, "graph+reduce-overhead")


def test_the_bench_trains_on_a_teacher_file_at_its_own_shapes(tmp_path, capsys):
    """bench_proof_scale_train --teacher: the file's UNet and context table (its text width, not the random table's 64),
    so a compile the bench warms is the one the run's rows find in torch's cache (run 42's WARM)."""
    from benchmarks import bench_proof_scale_train as bench
    from proof_scale.teacher import TeacherNetConfig, build_unet, load_teacher, random_context_table, save_teacher

    net = TeacherNetConfig(block_out_channels=(32, 32), attention=(False, True), layers_per_block=1, heads=2, context_dim=16)
    path = str(tmp_path / "teacher.safetensors")
    save_teacher(path, build_unet(net), net, random_context_table(4, net.context_dim))
    args = ["--device", "cpu", "--rows", "sid_lsg_teacher_cfg", "--batches", "2", "--steps", "3", "--warmup", "1", "--modes", "eager"]
    assert bench.main([*args, "--teacher", path, "--json", str(tmp_path / "speed.json")]) == 0
    assert "| sid_lsg_teacher_cfg eager | 2 |" in capsys.readouterr().out
    with pytest.raises(ValueError, match=r"the UNet takes \[L, 16\]"):  # the random table (width 64) does not fit it
        bench._sid_session("sid_lsg_teacher_cfg", 2, 2, "eager", torch.device("cpu"), torch.randn(11, 77, 64),
                            load_teacher(path)[0]).run(2, lambda s, l: False)
