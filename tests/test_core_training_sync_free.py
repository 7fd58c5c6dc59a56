"""The low-memory updates without per-tensor GPU round trips (issue 5's step time): the sync-free Adafactor gives
torch.optim.Adafactor's update and state, reads no tensor value back except the CPU step counts, and is the same
whatever its chunk size; the bf16-weights optimiser and the bf16 EMA work in chunks with the same results."""
from __future__ import annotations

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from training.adafactor import SyncFreeAdafactor
from training.ema import EMA
from training.rounding import Bf16WeightsOptimizer, stochastic_round_bf16
from training.tensor_chunks import chunked

SHAPES = [(7,), (5, 3), (4, 3, 3, 3), (2, 3, 4), (64, 33), (1,), (3, 1)]  # vectors, matrices, conv kernels


def _params(seed: int = 0) -> list[torch.nn.Parameter]:
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(s, generator=g)) for s in SHAPES]


def _steps(opts_and_params, n: int = 12) -> None:
    g = torch.Generator().manual_seed(1)
    for i in range(n):
        grads = [torch.randn(s, generator=g) * (0.1 + i) for s in SHAPES]
        for opt, params in opts_and_params:
            for p, grad in zip(params, grads):
                p.grad = grad.clone()
            opt.step()


@pytest.mark.parametrize(("weight_decay", "maximize", "lr"), [(0.0, False, 1e-2), (0.1, True, 1e-2), (0.0, False, 1.0)])
def test_sync_free_adafactor_is_torchs_update(weight_decay, maximize, lr):
    ref, ours = _params(), _params()
    kw = {"lr": lr, "weight_decay": weight_decay, "maximize": maximize}
    torch_opt = torch.optim.Adafactor(ref, foreach=False, **kw)
    sync_free = SyncFreeAdafactor(ours, chunk_elements=40, **kw)  # several chunks, one tensor larger than a chunk
    _steps([(torch_opt, ref), (sync_free, ours)])
    for a, b in zip(ref, ours):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6), (a.shape, (a - b).abs().max())
    assert any(not torch.equal(a, b0) for a, b0 in zip(ours, _params()))  # and it moved
    # the state layout is torch's: a checkpoint loads into either optimiser and both continue alike
    back = torch.optim.Adafactor(_params(), foreach=False, **kw)
    back.load_state_dict(sync_free.state_dict())
    assert set(back.state[back.param_groups[0]["params"][2]]) == {"step", "row_var", "col_var"}
    assert set(back.state[back.param_groups[0]["params"][0]]) == {"step", "variance"}


def test_sync_free_adafactor_chunk_size_changes_nothing():
    one, many = _params(), _params()
    _steps([(SyncFreeAdafactor(one, lr=1e-2), one), (SyncFreeAdafactor(many, lr=1e-2, chunk_elements=1), many)])
    assert all(torch.equal(a, b) for a, b in zip(one, many))


def _scalar_reads(opt, params) -> int:
    for p in params:
        p.grad = torch.ones_like(p)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        opt.step()
    return sum(e.count for e in prof.key_averages() if e.key == "aten::_local_scalar_dense")


def test_sync_free_adafactor_reads_back_only_the_cpu_step_counts():
    # on a GPU every value read back from a device tensor waits for the GPU; torch's Adafactor reads 2 per tensor
    # (plus its CPU step counts), this one only the CPU step counts, one per tensor
    ours, ref = _params(), _params()
    assert _scalar_reads(SyncFreeAdafactor(ours), ours) <= len(SHAPES)
    assert _scalar_reads(torch.optim.Adafactor(ref, foreach=True), ref) >= 3 * len(SHAPES)  # what the test would catch


def test_chunked_keeps_order_and_budget():
    sizes = [5, 1, 7, 3, 3, 20, 2]
    parts = list(chunked(sizes, lambda n: n, 8))
    assert [x for part in parts for x in part] == sizes
    assert all(sum(part) <= 8 or len(part) == 1 for part in parts) and parts == [[5, 1], [7], [3, 3], [20], [2]]


def test_bf16_weights_optimizer_chunks_change_nothing():
    def run(chunk):
        params = [torch.nn.Parameter(p.detach().to(torch.bfloat16)) for p in _params()]
        opt = Bf16WeightsOptimizer(SyncFreeAdafactor(params, lr=1e-2), seed=5, chunk_elements=chunk)
        g = torch.Generator().manual_seed(2)
        for _ in range(6):
            for p in params:
                p.grad = torch.randn(p.shape, generator=g).to(torch.bfloat16)
            opt.step()
        assert all(p.dtype == torch.bfloat16 and p.grad is None for p in params)
        state = opt.state_dict()["inner"]["state"]
        assert all(v.dtype == torch.float32 for s in state.values() for k, v in s.items() if k != "step")  # float32 states
        return params
    whole, pieces = run(1 << 30), run(16)
    assert all(torch.equal(a, b) for a, b in zip(whole, pieces))
    assert any(not torch.equal(a, b.detach().to(torch.bfloat16)) for a, b in zip(whole, _params()))


def test_ema_float32_is_the_exact_average_and_bf16_a_neighbour_of_it():
    net = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Conv2d(2, 3, 3))
    exact, rounded = EMA(net, 0.9), EMA(net, 0.9, torch.bfloat16, seed=1, chunk_elements=20)
    start = {n: s.float().clone() for n, s in rounded.shadow.items()}
    start_exact = {n: s.clone() for n, s in exact.shadow.items()}
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p))
    exact.update(net)
    rounded.update(net)
    w = 1 - min(0.9, 2 / 11)
    for n, p in net.named_parameters():
        assert torch.allclose(exact.shadow[n], start_exact[n].lerp(p.detach(), w), rtol=0, atol=1e-6)
        target = start[n].lerp(p.detach().float(), w)
        lo = target.to(torch.bfloat16).float()  # the rounded value is one of target's two bf16 neighbours
        step = (lo.abs() * 2 ** -7).clamp_min(1e-30)
        assert ((rounded.shadow[n].float() - target).abs() <= step).all(), n


def test_ema_bf16_rounding_is_unbiased_below_bf16_resolution():
    net = torch.nn.Linear(1000, 100, bias=False)
    with torch.no_grad():
        net.weight.fill_(1.0)
    ema = EMA(net, 0.999, torch.bfloat16, seed=2, chunk_elements=30_000)
    ema.updates = 10_000  # β = decay: steps of 1e-3·(θ − s), far below a bf16 step at 1.0
    with torch.no_grad():
        net.weight.fill_(1.5)
    for _ in range(20):
        ema.update(net)
    want = 1.5 - 0.5 * 0.999 ** 20
    assert abs(ema.shadow["weight"].float().mean().item() - want) < 2e-4
    assert stochastic_round_bf16(torch.tensor([want]), torch.Generator().manual_seed(0)).dtype == torch.bfloat16
