"""onestep/subpixel.py: nearest ×2 upsampling then a 3×3 convolution, computed as one 2×2 convolution on the
low-resolution input — equal to the reference (interpolate, then conv2d) up to the order of the sums."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from onestep.subpixel import SubpixelUpsample, phase_weights, swap_modules, upsample_conv


def _reference(x, w, b):
    return F.conv2d(F.interpolate(x, scale_factor=2, mode="nearest"), w, b, padding=1)


@pytest.mark.parametrize("shape", [(2, 3, 5, 4, 7), (1, 8, 8, 1, 1), (3, 16, 4, 5, 3)])  # batch, C_in, C_out, H, W
@pytest.mark.parametrize("bias", [True, False])
def test_equals_upsample_then_convolve_in_float64(shape, bias):
    b, ci, co, h, w = shape
    g = torch.Generator().manual_seed(0)
    x = torch.randn(b, ci, h, w, generator=g, dtype=torch.float64)
    weight = torch.randn(co, ci, 3, 3, generator=g, dtype=torch.float64)
    beta = torch.randn(co, generator=g, dtype=torch.float64) if bias else None
    out = upsample_conv(x, weight, beta)
    ref = _reference(x, weight, beta)
    assert out.shape == ref.shape == (b, co, 2 * h, 2 * w)
    assert (out - ref).abs().max() < 1e-12 * ref.abs().max()  # the same sums, in another order


def test_sixteen_bit_results_are_within_their_rounding():
    g = torch.Generator().manual_seed(1)
    x, weight, beta = torch.randn(2, 32, 6, 6, generator=g), torch.randn(32, 32, 3, 3, generator=g) / 17, torch.randn(32, generator=g)
    exact = _reference(x.double(), weight.double(), beta.double())
    ours = upsample_conv(x.bfloat16(), weight.bfloat16(), beta.bfloat16()).double()
    core = _reference(x.bfloat16(), weight.bfloat16(), beta.bfloat16()).double()
    # the folded weights round once where the reference rounds each tap: no further from the exact values than core's bf16
    assert (ours - exact).abs().mean() <= 1.5 * (core - exact).abs().mean()
    assert (ours - exact).abs().max() < 0.05 * exact.abs().max()


def test_each_phase_folds_the_taps_its_pixels_see():
    w = torch.arange(9, dtype=torch.float32).reshape(1, 1, 3, 3)  # rows [0 1 2], [3 4 5], [6 7 8]
    p = phase_weights(w).reshape(2, 2, 2, 2)  # [a, b, ky, kx]
    assert torch.equal(p[0, 0], torch.tensor([[0.0, 1 + 2], [3 + 6, 4 + 5 + 7 + 8]]))  # rows {i−1: w₀, i: w₁+w₂}
    assert torch.equal(p[1, 1], torch.tensor([[0 + 1 + 3 + 4, 2 + 5], [6 + 7, 8.0]]))  # rows {i: w₀+w₁, i+1: w₂}
    assert p.sum() == 4 * w.sum()  # every tap lands once in each phase
    with pytest.raises(ValueError, match="3, 3"):
        phase_weights(torch.zeros(1, 1, 5, 5))


class _Up(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(4, 4, 1)
        self.levels = nn.ModuleList([nn.Sequential(nn.SiLU(), _Up()), nn.Sequential(nn.SiLU(), _Up())])
        self.head = nn.Conv2d(4, 2, 1)

    def forward(self, x):
        x = self.stem(x)
        for level in self.levels:
            x = level(x)
        return self.head(x)


def test_a_swapped_view_computes_the_same_and_leaves_the_model_as_it_was():
    torch.manual_seed(0)
    net = _Net().double()
    x = torch.randn(2, 4, 3, 5, dtype=torch.float64)
    before = net(x)
    swap = lambda m: SubpixelUpsample(lambda t, c=m.conv: (c.weight, c.bias), m) if isinstance(m, _Up) else None  # noqa: E731
    made = swap_modules(net, swap)
    view = made.module
    assert made.swapped == 2 and view is not net and made.current()
    assert all(isinstance(level[1], SubpixelUpsample) for level in view.levels)
    assert all(isinstance(level[1], _Up) for level in net.levels)  # the model's own modules are untouched
    assert view.stem is net.stem and view.head is net.head and view.levels[0][0] is net.levels[0][0]  # shared, not copied
    assert torch.allclose(view(x), before, rtol=0, atol=1e-12 * before.abs().max().item())
    assert torch.equal(net(x), before)
    nothing = swap_modules(net, lambda m: None)
    assert nothing.module is net and nothing.swapped == 0  # nothing to swap: the model itself
    with torch.no_grad():
        net.levels[0][1].conv.weight.mul_(2)  # the view reads the model's weights as they are now
    assert torch.allclose(view(x), net(x), rtol=0, atol=1e-12 * net(x).abs().max().item())
    assert made.current()  # weights changed in place: the view is still the model's


@pytest.mark.parametrize("change", ["child", "attribute", "swapped module"])
def test_a_view_whose_model_changed_its_children_or_attributes_is_stale(change):
    net = _Net()
    made = swap_modules(net, lambda m: SubpixelUpsample(lambda t, c=m.conv: (c.weight, c.bias), m) if isinstance(m, _Up) else None)
    if change == "child":
        net.head = nn.Conv2d(4, 2, 1)  # e.g. an object patch replacing a module on the way to a swapped one
    elif change == "attribute":
        net.levels[1].note = "patched"
    else:
        net.levels[0][1] = _Up()
    assert not made.current()


def test_other_inputs_go_to_the_fallback():
    up = _Up()
    sub = SubpixelUpsample(lambda t: (up.conv.weight, up.conv.bias), fallback=lambda x: "fallback")
    assert sub(torch.zeros(1, 4, 2, 2, 2)) == "fallback"  # e.g. a video VAE's 5-D latents


def test_it_traces_as_one_graph_with_no_host_constant():
    """The compiled fast paths trace it: one graph (no break), and nothing in it comes from the host (a compiled call
    replayed from a CUDA graph may not copy from pageable memory) — dynamo lifts a host tensor as a graph input."""
    g = torch.Generator().manual_seed(2)
    x, weight, beta = torch.randn(1, 4, 3, 5, generator=g), torch.randn(6, 4, 3, 3, generator=g), torch.randn(6, generator=g)
    inputs = []
    def backend(gm, example_inputs):  # noqa: E306
        inputs.append(len(example_inputs))
        return gm.forward
    torch._dynamo.reset()
    out = torch.compile(upsample_conv, backend=backend, fullgraph=True)(x, weight, beta)
    assert inputs == [3]  # x, weight and bias: no constant lifted from the host
    assert torch.allclose(out, _reference(x, weight, beta), atol=1e-5)
