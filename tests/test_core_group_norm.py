"""onestep/group_norm.py: GroupNorm from wide reductions equals torch's GroupNorm (fp32, and bf16 to its rounding),
with and without affine, with a large mean (the variance must not cancel), and the dispatch keeps the native kernel
off the GPU and on small maps. Its speed is measured on the GPU (benchmarks/probe_group_norm.py)."""
import pytest
import torch
import torch.nn.functional as F

from onestep.group_norm import WIDE_MIN_GROUP_ELEMENTS, WideGroupNorm, group_norm_wide, prefers_wide


def _case(shape, dtype, offset=0.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, generator=g) * 2 + offset
    w, b = torch.rand(shape[1], generator=g) + 0.5, torch.randn(shape[1], generator=g)
    return x.to(dtype), w.to(dtype), b.to(dtype)


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("normalising_pass", ["addcmul", "batch_norm"])
def test_float32_equals_torch(affine, normalising_pass):
    x, w, b = _case((2, 64, 12, 10), torch.float32)
    w, b = (w, b) if affine else (None, None)
    ours, ref = group_norm_wide(x, 32, w, b, 1e-6, normalising_pass), F.group_norm(x, 32, w, b, 1e-6)
    assert ours.dtype == ref.dtype and ours.shape == ref.shape
    assert (ours - ref).abs().max() < 1e-4


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("normalising_pass", ["addcmul", "batch_norm"])
def test_bfloat16_differs_from_torchs_own_by_at_most_one_rounding(seed, normalising_pass):
    x, w, b = _case((1, 64, 32, 32), torch.bfloat16, seed=seed)
    ref = F.group_norm(x.float(), 32, w.float(), b.float(), 1e-6)
    ours, native = group_norm_wide(x, 32, w, b, 1e-6, normalising_pass), F.group_norm(x, 32, w, b, 1e-6)
    assert ours.dtype == torch.bfloat16
    one_ulp = 2 * torch.finfo(torch.bfloat16).eps * ref.abs().clamp_min(1)  # ≥ one bf16 step at the value's size
    assert ((ours.float() - native.float()).abs() <= one_ulp).all()  # both compute in fp32 and round once
    assert (ours.float() - ref).abs().max() <= (native.float() - ref).abs().max() + one_ulp.max()


def test_a_large_mean_does_not_cancel_the_variance():
    x, w, b = _case((1, 32, 64, 64), torch.float32, offset=300.0)  # |mean| / std = 150
    ours, ref = group_norm_wide(x, 32, w, b, 1e-6), F.group_norm(x.double(), 32, w.double(), b.double(), 1e-6).float()
    assert (ours - ref).abs().max() < 2e-3  # E[x²] − mean² in fp32 would be off by ~0.3 here


def test_dispatch_keeps_the_native_kernel_off_the_gpu_and_on_small_maps(monkeypatch):
    big = torch.empty(1, 32, WIDE_MIN_GROUP_ELEMENTS, 1)
    assert not prefers_wide(big, 32)  # the CPU: torch's kernel
    norm = torch.nn.GroupNorm(32, 64, eps=1e-6)
    calls = []
    wide = WideGroupNorm(lambda x: (calls.append(1), (norm.weight, norm.bias))[1], norm)
    x = torch.randn(2, 64, 8, 8)
    assert torch.equal(wide(x), norm(x)) and not calls  # fell back to the module itself
    monkeypatch.setattr("onestep.group_norm.prefers_wide", lambda x, groups: True)
    assert torch.equal(wide(x), norm(x)) and not calls  # under autograd: the module itself too
    with torch.no_grad():
        assert (wide(x) - norm(x)).abs().max() < 1e-4 and calls == [1]  # the wide form, with the module's weights
        seen = []
        monkeypatch.setattr("onestep.group_norm.group_norm_wide", lambda *args: seen.append(args[-1]) or norm(x))
        wide.affine = "batch_norm"  # what probe_vae_decoder --wide-affine sets
        wide(x)
        assert seen == ["batch_norm"]


def test_channels_last_input_is_normalised_in_place_of_its_layout():
    x, w, b = _case((2, 64, 12, 10), torch.float32, offset=3.0)
    xl = x.contiguous(memory_format=torch.channels_last)
    ours = group_norm_wide(xl, 32, w, b, 1e-6)
    assert ours.is_contiguous(memory_format=torch.channels_last) and not ours.is_contiguous()  # no copy to NCHW
    assert (ours - F.group_norm(x, 32, w, b, 1e-6)).abs().max() < 1e-4


@pytest.mark.parametrize("batch", [1, 2])
def test_the_batch_norm_pass_keeps_the_layout_and_the_values(batch):
    """The batch-norm pass on channels_last: batch 1 normalises x as one batch-norm batch in its own layout; a larger
    batch cannot be viewed as (sample, channel) planes there and takes the addcmul pass — the same values either way."""
    x, w, b = _case((batch, 64, 12, 10), torch.float32, offset=3.0)
    xl = x.contiguous(memory_format=torch.channels_last)
    ours = group_norm_wide(xl, 32, w, b, 1e-6, "batch_norm")
    assert ours.is_contiguous(memory_format=torch.channels_last) and ours.shape == x.shape
    assert (ours - F.group_norm(x, 32, w, b, 1e-6)).abs().max() < 1e-4


@pytest.mark.parametrize("channels, expect_batch_norm", [(128, False), (256, True)])
def test_auto_takes_the_batch_norm_pass_from_eight_channels_per_group(monkeypatch, channels, expect_batch_norm):
    """"auto" follows the per-shape timing: batch norm at 8+ channels per group, addcmul at 4 (the decoder's
    128-channel maps) — and gives the same values as torch's either way."""
    calls = []
    batch_norm = F.batch_norm
    monkeypatch.setattr(F, "batch_norm", lambda *a, **k: calls.append(1) or batch_norm(*a, **k))
    x, w, b = _case((1, channels, 6, 5), torch.float32)
    ours = group_norm_wide(x, 32, w, b, 1e-6, "auto")
    assert bool(calls) == expect_batch_norm
    assert (ours - F.group_norm(x, 32, w, b, 1e-6)).abs().max() < 1e-4
