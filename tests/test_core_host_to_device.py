"""training/host_to_device.to_device: the copy the training steps make of their CPU-drawn noise, timesteps and masks
(non-blocking through pinned memory on a GPU) gives what x.to(device, dtype) gives."""
import torch

from training.host_to_device import to_device


def test_to_device_is_to_with_the_cast_on_the_device():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 1, 4, 4, generator=g, dtype=torch.float64)
    for dtype in (None, torch.float32, torch.bfloat16):
        y = to_device(x, "cpu", dtype)
        assert y.dtype == (dtype or torch.float64) and y.device.type == "cpu" and torch.equal(y, x.to("cpu", dtype))
    t = torch.randint(20, 980, (5,), generator=g)
    assert torch.equal(to_device(t, torch.device("cpu"), torch.float32), t.float())
    mask = torch.rand(5, generator=g) < 0.5
    assert torch.equal(to_device(mask, "cpu"), mask) and to_device(mask, "cpu").dtype == torch.bool
