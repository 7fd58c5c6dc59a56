"""proof_scale.common.peak_memory: a row's peak GPU memory in its timing record (whether two rows fit one GPU)."""
import torch

from proof_scale.common import peak_memory


def test_off_cuda_there_is_nothing_to_record():
    assert peak_memory(torch.device("cpu"), {"peak_reserved_gib": 3.0}) == {}


def test_a_rows_peak_is_the_largest_over_its_calls(monkeypatch):
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: 20 * 2**30)
    monkeypatch.setattr(torch.cuda, "max_memory_reserved", lambda device=None: 30.004 * 2**30)
    cuda = torch.device("cuda")
    assert peak_memory(cuda) == {"peak_allocated_gib": 20.0, "peak_reserved_gib": 30.0}
    earlier = {"train_seconds": 5.0, "peak_allocated_gib": 25.5, "peak_reserved_gib": 28.0}
    assert peak_memory(cuda, earlier) == {"peak_allocated_gib": 25.5, "peak_reserved_gib": 30.0}
