"""TrainConfig.channels_last (speed only): every network a SiD-LSG step runs — G, the fake score ψ, the frozen teacher
φ — holds its 4-D weights in NHWC, the run trains as the NCHW run does (up to the kernels' summation order), and what
leaves the trainer (the generator's weights, the checkpoint) is in the usual layout."""
from __future__ import annotations

import torch
from test_core_training_sid_lsg import engine, prompts, sid_config

from training.checkpoint import load_checkpoint


def _trained(channels_last: bool, steps: int = 3):
    e = engine(sid_config(kappa1=1.0, kappa2=1.0, kappa4=1.5, top={"channels_last": channels_last}))
    data = prompts(16)
    logs = [e.train_step({"context": data.context[4 * i:4 * i + 4]}) for i in range(steps)]
    return e, logs


def _four_d(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p for p in module.parameters() if p.ndim == 4]


def test_every_network_of_the_step_runs_in_nhwc_and_trains_as_in_nchw(tmp_path):
    nchw, ref = _trained(False)
    nhwc, logs = _trained(True)
    for net in (nhwc.unet, nhwc.method.fake, nhwc.method.teacher):
        weights = _four_d(net)
        assert weights and all(w.is_contiguous(memory_format=torch.channels_last) for w in weights)
        assert any(not w.is_contiguous() for w in weights)  # (1×1 kernels and one input channel are both layouts at once)
    assert all(w.is_contiguous() for w in _four_d(nchw.unet))
    # every step's losses and gradient norms: the first step's (the same weights) up to the summation order; after
    # Adam's first updates (±lr per weight whatever its gradient's size, so a sign the order flips moves a weight the
    # other way) the later steps' drift to ~1.5e-4 (torch 2.14.1, CPU); a layout mix-up is O(1) at the first step
    for i, (a, b) in enumerate(zip(logs, ref)):
        tol = 1e-5 if i == 0 else 1e-3
        assert a.keys() == b.keys() and all(abs(a[k] - b[k]) <= tol * max(1.0, abs(b[k])) for k in b), (i, a, b)
    mine, theirs = (e.generator_state_dict(ema=False, layout="native") for e in (nhwc, nchw))
    assert all(v.is_contiguous() for v in mine.values())
    start = _trained(True, steps=0)[0].generator_state_dict(ema=False, layout="native")
    flat = lambda sd: torch.cat([sd[k].flatten() for k in sorted(sd)])  # noqa: E731
    # Adam's first steps move each weight by ±lr whatever its gradient's size, so a near-zero gradient whose sign the
    # summation order flips moves its weight the other way: measured 11 % of the change in norm; a layout mix-up is O(1)
    assert (flat(mine) - flat(theirs)).norm() <= 0.25 * (flat(theirs) - flat(start)).norm()
    path = str(tmp_path / "state.safetensors")
    nhwc.save(path)
    state = load_checkpoint(path)
    assert all(t.is_contiguous() for t in state["generator"].values())
    again, _ = _trained(True, steps=0)
    assert again.load(path) == 3
    assert all(torch.equal(p, nhwc_p) for p, nhwc_p in zip(again.unet.parameters(), nhwc.unet.parameters()))
