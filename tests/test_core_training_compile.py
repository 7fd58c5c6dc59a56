"""TrainConfig.compile_blocks (training/compile.py): every UNet block the engine calls is compiled once, in place, and
a GAN run computes what the eager run computes; exact R1 (a double backward inductor cannot take) is refused."""
from __future__ import annotations

import pytest
import torch
from test_core_training_fixtures import PairsDataset, batch_of, config, tiny_unet

from training.trainer import Trainer


def _run(compile_blocks: bool):
    cfg = config(loss={"regression": "mse"}, discriminator={"r1_gamma": 0.0}, compile_blocks=compile_blocks)
    trainer = Trainer(tiny_unet(), cfg)
    logs = [trainer.train_step(batch_of(PairsDataset())) for _ in range(2)]
    return trainer, logs


def test_a_compiled_gan_run_computes_what_the_eager_run_computes():
    eager, eager_logs = _run(False)
    compiled, compiled_logs = _run(True)
    # G's 2 down, middle and 2 up blocks and D's copy of the 2 down and middle blocks, each compiled in place
    blocks = [*compiled.unet.blocks(), *compiled.discriminator.encoder.blocks()]
    assert len(blocks) == 8 and all(b._compiled_call_impl is not None for b in blocks)
    assert all(b._compiled_call_impl is None for b in eager.unet.blocks())
    assert compiled.unet.state_dict().keys() == eager.unet.state_dict().keys()  # checkpoints and exports unchanged
    for a, b in zip(eager_logs, compiled_logs):
        assert a.keys() == b.keys() and {"gan_g", "d_real"} <= a.keys()
        assert all(abs(a[k] - b[k]) <= 1e-4 * max(1.0, abs(a[k])) for k in a), (a, b)
    # two optimiser steps of G went the same way: Adam's normalised steps (lr 1e-3) may differ where a gradient is
    # near zero, so the runs are compared by how far G moved, not element by element
    start = dict(tiny_unet().named_parameters())
    moved = torch.cat([(p - start[n]).flatten() for n, p in eager.unet.named_parameters()]).abs().mean()
    apart = torch.cat([(p - q).flatten() for p, q in zip(eager.unet.parameters(), compiled.unet.parameters())]).abs().mean()
    assert moved > 1e-4 and apart < 0.05 * moved, (moved, apart)


def test_exact_r1_with_compiled_blocks_is_refused():
    with pytest.raises(ValueError, match="double backward"):
        config(discriminator={"r1_gamma": 1.0}, compile_blocks=True)
    with pytest.raises(ValueError, match="double backward"):  # InstaFlow's optional GAN term has the same D
        config(method="instaflow-gan", discriminator={"r1_gamma": 1.0}, compile_blocks=True)
    config(discriminator={"r1_gamma": 1.0, "r1_mode": "approx"}, compile_blocks=True)  # finite differences: fine
    config(method="instaflow", discriminator={"r1_gamma": 1.0}, compile_blocks=True)  # no D: nothing to refuse


def test_reduce_overhead_reaches_the_compile_and_marks_each_step(monkeypatch):
    # the mode's CUDA graphs need a GPU (benchmarks/bench_proof_scale_train.py measures them); here: the plumbing
    import training.engine as engine_module

    modes, marks = [], []
    monkeypatch.setattr(engine_module, "compile_unet_blocks", lambda roots, mode: modes.append(mode) or 0)
    monkeypatch.setattr(torch.compiler, "cudagraph_mark_step_begin", lambda: marks.append(1))
    cfg = config(loss={"regression": "mse"}, discriminator={"r1_gamma": 0.0}, compile_blocks=True, compile_mode="reduce-overhead")
    trainer = Trainer(tiny_unet(), cfg)
    for _ in range(2):
        trainer.train_step(batch_of(PairsDataset()))
    assert modes == ["reduce-overhead"] and len(marks) == 2
    Trainer(tiny_unet(), config(loss={"regression": "mse"}, discriminator={"r1_gamma": 0.0}, compile_blocks=True)).train_step(batch_of(PairsDataset()))
    assert modes == ["reduce-overhead", "default"] and len(marks) == 2  # the default mode: no step marks
    with pytest.raises(ValueError, match="compile_mode"):
        config(compile_mode="fastest")


def _guided_sid_step_warnings(monkeypatch, limit: int) -> list[str]:
    """Two steps of the proof-scale SiD-LSG row with guidance in ψ and φ (κ 1.5 everywhere), its blocks traced by
    dynamo (the eager backend: no code generated); the recompile-limit warnings dynamo gave."""
    import torch._dynamo

    from training import compile as compile_module

    torch._dynamo.reset()  # the caches are per block class, process-wide: other tests' variants must not count
    monkeypatch.setattr(compile_module, "RECOMPILE_LIMIT", limit)
    # torch's default limit, restored after: by torch's own patch (monkeypatch's undo leaves torch 2.14's config key hidden,
    # and the next compile in the process fails on it)
    with torch._dynamo.config.patch(recompile_limit=8):
        return _traced_sid_step_warnings()


def _traced_sid_step_warnings() -> list[str]:
    import logging

    import torch._dynamo

    from proof_scale import rows
    from proof_scale.distill import class_prompts
    from proof_scale.teacher import TeacherNetConfig, build_unet
    from training import compile as compile_module
    from training.diffusers_unet import DiffusersUNet
    from training.session import TrainingSession

    torch.manual_seed(0)
    table = torch.randn(11, 77, 64)
    plan = rows.plan("sid_lsg", {**rows.ROW_DEFAULTS, "batch": 2, "steps": 2}, teacher_cfg=1.5)
    session = TrainingSession(DiffusersUNet(build_unet(TeacherNetConfig(context_dim=64)), 1.0, 0.0),
                              rows.train_config(plan, bf16=False, save_every=0), class_prompts(table, 2), None)
    e = session.trainer
    compile_module.compile_unet_blocks([e.unet, *(n.module for n in e.networks.values()), e.method.teacher], backend="eager")
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    dynamo_log = logging.getLogger("torch._dynamo")
    dynamo_log.addHandler(handler)
    try:
        session.run(2)
    finally:
        dynamo_log.removeHandler(handler)
        torch._dynamo.reset()
    return [m for m in seen if "recompile_limit" in m]


def test_every_variant_of_a_guided_sid_step_is_compiled(monkeypatch):
    # torch's limit of 8 leaves the cross-attention blocks' 9th and 10th variants eager; the raised limit compiles them all
    assert _guided_sid_step_warnings(monkeypatch, 8)
    assert _guided_sid_step_warnings(monkeypatch, 32) == []
