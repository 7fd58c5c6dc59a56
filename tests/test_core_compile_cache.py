"""Persistent torch.compile artifacts (onestep/compile_cache.py) and their wiring into GraphCache's compile path: the
folder key, the file format's damage checks, and a real CPU compile saved, then hot-loaded into empty caches."""
import logging
import os

import pytest
import torch

from onestep import compile_cache as cc
from onestep import cuda_graph


def test_key_follows_shapes_dtypes_device_torch_and_mode(monkeypatch):
    a, b = torch.nn.Linear(8, 8), torch.nn.Linear(8, 8)
    key = cc.cache_key([a], "cpu", "default")
    assert key == cc.cache_key([b], "cpu", "default")  # values do not matter, only what the code depends on
    assert len({key, cc.cache_key([torch.nn.Linear(8, 4)], "cpu", "default"), cc.cache_key([a.half()], "cpu", "default"),
                cc.cache_key([b], "cpu", "max-autotune"), cc.cache_key([b, b], "cpu", "default")}) == 5
    monkeypatch.setattr(torch, "__version__", "0.0.0-other")
    assert cc.cache_key([b], "cpu", "default") != key


def test_file_format_refuses_damage():
    blobs = [b"one", b"", b"three" * 1000]
    data = cc.encode(blobs)
    assert cc.decode(data) == blobs
    for bad, why in ((data[:-1], "damaged"), (data[:len(cc.MAGIC) + 5], "truncated"), (b"PK" + data, "not a compile"),
                     (data.replace(b"three", b"thrEe", 1), "damaged")):
        with pytest.raises(ValueError, match=why):
            cc.decode(bad)


class Lines(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def test_damaged_or_foreign_file_is_ignored_and_rebuilt(tmp_path):
    art = cc.CompileArtifacts(str(tmp_path), "k")
    os.makedirs(os.path.dirname(art.path))
    log, lines = logging.getLogger("onestep"), Lines()
    log.addHandler(lines)
    try:
        for content in (b"garbage", cc.encode([b"not torch's serialization"])):
            with open(art.path, "wb") as f:
                f.write(content)
            art = cc.CompileArtifacts(str(tmp_path), "k")
            assert art.load() == 0 and art.load() == 0  # tried once per object
            assert len(lines.lines) == 1 and "will be rebuilt" in lines.lines[0], lines.lines
            lines.lines.clear()
    finally:
        log.removeHandler(lines)
    assert art.save() in (True, False)  # never raises; writes only when this process compiled something


def test_compile_round_trip_hits_the_cache_in_a_fresh_process_state(tmp_path, monkeypatch):
    """Compile once (an inductor cache miss) and save; then with torch's local cache empty and dynamo reset, load the
    file and compile again: an FX-graph cache hit, no recompile."""
    from torch._dynamo.utils import counters

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor-1"))
    lin = torch.nn.Linear(8, 8)
    key = cc.cache_key([lin], "cpu", "default")
    torch._dynamo.reset()
    counters.clear()
    first = cc.CompileArtifacts(str(tmp_path / "artifacts"), key)
    assert first.load() == 0
    x = torch.randn(4, 8)
    want = torch.compile(lambda x: torch.relu(lin(x)) * 2)(x)
    assert counters["inductor"]["fxgraph_cache_miss"] == 1 and first.save()
    assert len(cc.decode(open(first.path, "rb").read())) == 1

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor-2"))
    torch._dynamo.reset()
    counters.clear()
    again = cc.CompileArtifacts(str(tmp_path / "artifacts"), key)
    assert again.load() == 1
    assert torch.equal(torch.compile(lambda x: torch.relu(lin(x)) * 2)(x), want)
    assert counters["inductor"]["fxgraph_cache_hit"] == 1 and not counters["inductor"]["fxgraph_cache_miss"]
    torch._dynamo.reset()


def test_graph_cache_compile_path_uses_the_adapter_folder(tmp_path):
    lin = torch.nn.Linear(8, 8)

    def call(x):
        return lin(x)

    inputs = {"x": torch.zeros(2, 8)}
    assert cuda_graph.closure_modules(call) == [lin] and cuda_graph.closure_modules(lin.forward) == [lin]
    try:
        cuda_graph.set_compile_cache_folder(None)
        assert cuda_graph.compile_artifacts(call, inputs, "default") is None  # no folder given: nothing persists
        cuda_graph.set_compile_cache_folder(str(tmp_path))
        art = cuda_graph.compile_artifacts(call, inputs, "default")
        assert art is cuda_graph.compile_artifacts(call, inputs, "default")  # one per key: loaded once per process
        assert art.path == os.path.join(str(tmp_path), cc.cache_key([lin], "cpu", "default"), "artifacts.bin")
        assert cuda_graph.compile_artifacts(call, inputs, "max-autotune") is not art
    finally:
        cuda_graph.set_compile_cache_folder(None)
