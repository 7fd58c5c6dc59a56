"""A long row's training state carried from one device session to the next (issue 16's data-free SiD-LSG row needs
more steps than one session's device time): G's EMA and the method's own trained networks (SiD-LSG's fake score ψ)
from the row's checkpoint, each stored as its difference from the teacher in int8 with one scale per output channel.

Why int8 deltas: a call carries at most 64 MiB with the tree (~21 MB, the teacher included) and .devdata/ps (~22 MB),
so G and ψ in fp16 (2 × 19.8 MB) do not fit; their deltas from the teacher in int8 (2 × ~10 MB) do. The rounding error
of a delta is at most half its channel's largest |delta| / 127, far below one training step's change; the carried
state is where the next session's training goes on (optimiser moments start afresh, behind a learning-rate warm-up),
never a scored result — rows are scored from full weights on the device.

  python -m proof_scale.carried_state pack OUT --row-dir WORK/distill/ROWDIR --teacher WORK/teacher.safetensors --row NAME

writes OUT/best.q8.safetensors (G; its metadata holds the row's name, plan and step) and OUT/net_<name>.q8.safetensors
per trained network; proof_scale.init_row place puts such a folder into a work folder as row NAME, and a row with
`init_from=NAME` starts G and those networks from it (proof_scale.distill).
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import sys

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from onestep.atomic import atomic_write
from training.checkpoint import load_checkpoint
from training.ema import ema_key

from .common import read_json
from .rows import row_dir_name
from .teacher import load_teacher

SMALL = 4096  # tensors with fewer elements (norms, biases) are kept whole in float32: they cost nothing
G_FILE = "best.q8.safetensors"
NET_PREFIX, NET_SUFFIX = "net_", ".q8.safetensors"
# Trained networks left behind: SiD-LSG's live-GAN D (4.3 M parameters at proof scale, ~4.4 MB as int8 deltas) does not
# fit beside G and ψ in a call's 64 MiB; the next part trains a fresh D, which G hears from live_gan_start on.
NOT_CARRIED = ("discriminator",)


def quantize(weights: dict[str, torch.Tensor], base: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Each tensor as int8 `name.q` and float32 `name.s` (one scale per output channel) of its difference from `base`;
    small or 1-D tensors, and any the base lacks or shapes otherwise, whole in float32 under their own name."""
    out = {}
    for name, w in weights.items():
        w = w.detach().float().cpu()
        b = base.get(name)
        if w.ndim < 2 or w.numel() < SMALL or b is None or b.shape != w.shape:
            out[name] = w.contiguous()
            continue
        d = (w - b.float()).reshape(w.shape[0], -1)
        scale = d.abs().amax(dim=1).clamp_min(1e-12) / 127.0
        out[f"{name}.q"] = torch.round(d / scale[:, None]).clamp(-127, 127).to(torch.int8).reshape(w.shape).contiguous()
        out[f"{name}.s"] = scale.contiguous()
    return out


def dequantize(packed: dict[str, torch.Tensor], base: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The float32 weights quantize() stored."""
    out = {}
    for key, t in packed.items():
        if key.endswith(".s"):
            continue
        if key.endswith(".q"):
            name = key[:-2]
            if name not in base:
                raise ValueError(f"{name} is stored as a difference from the teacher, which has no such tensor")
            scale = packed[f"{name}.s"]
            out[name] = base[name].float() + (t.float().reshape(t.shape[0], -1) * scale[:, None]).reshape(t.shape)
        else:
            out[key] = t.float()
    return out


def _strip(weights: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in weights.items()}


def _save(path: str, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata={k: json.dumps(v) for k, v in meta.items()}))


def teacher_weights(teacher_path: str) -> dict[str, torch.Tensor]:
    """The teacher UNet's state dict (diffusers names): the base every delta is taken from."""
    return {k: v.float() for k, v in load_teacher(teacher_path)[0].state_dict().items()}


def _earlier_samples(row_dir: str, plan: dict) -> int:
    """The training samples of the row this one started from (init_from, a sibling in the work folder): a row carried
    over several sessions counts all of them, not only its last part's."""
    base = plan.get("init_from")
    result = os.path.join(os.path.dirname(os.path.normpath(row_dir)), row_dir_name(base), "result.json") if base else ""
    return int(read_json(result)["row"]["training_samples"]) if result and os.path.isfile(result) else 0


def carried_average(row_dir: str, state: dict) -> tuple[dict, float | None]:
    """The EMA state to carry on from and its decay (None: the main average's). A row that keeps more averages (plan
    ema_select, TrainConfig.ema_extra) carries the one its latest selection point at or before the checkpoint's step
    scored lowest (validation FD); else the main one."""
    extra, path = state.get("ema_extra") or {}, os.path.join(row_dir, "selection.json")
    points = [p for p in read_json(path)["points"] if p["step"] <= int(state["step"])] if extra and os.path.isfile(path) else []
    if not points:
        return state["ema"], None
    last = max(p["step"] for p in points)
    decay = min((p for p in points if p["step"] == last), key=lambda p: p["fd"]).get("ema")
    if decay is None or ema_key(decay) not in extra:
        return state["ema"], None
    return extra[ema_key(decay)], decay


def pack(out: str, row_dir: str, teacher_path: str, row: str, prefix: str = "unet.") -> list[str]:
    """The row's checkpoint (its latest step) → OUT/best.q8.safetensors (G's EMA — the best scored of several, see
    carried_average — or G where EMA is off) and OUT/net_<name>.q8.safetensors for each network the method trains
    beside G. Returns the files written."""
    state = load_checkpoint(os.path.join(row_dir, "checkpoint.safetensors"))
    plan = read_json(os.path.join(row_dir, "plan.json"))
    base = teacher_weights(teacher_path)
    average, decay = carried_average(row_dir, state)
    ema = {k[len("shadow."):]: v for k, v in average.items() if k.startswith("shadow.")}
    g = _strip(ema or state["generator"], prefix)
    if set(g) != set(base):
        raise ValueError(f"G's weights in {row_dir} are not the teacher UNet's tensors (a LoRA run, or another architecture)")
    step = int(state["step"])
    os.makedirs(out, exist_ok=True)
    samples = step * int(plan["batch"]) + _earlier_samples(row_dir, plan)
    meta = {"row": row, "plan": plan, "step": step, "training_samples": samples, "prefix": prefix,
            "ema": plan.get("ema_decay") if decay is None else decay}
    written = [os.path.join(out, G_FILE)]
    _save(written[0], quantize(g, base), meta)
    skip = {"version", "method", "step", "config", "generator", "ema", "ema_extra", "rng", "data"}
    for name, tensors in state.items():
        if name in skip or name in NOT_CARRIED or name.startswith("opt_") or not isinstance(tensors, dict) or not tensors:
            continue
        path = os.path.join(out, f"{NET_PREFIX}{name}{NET_SUFFIX}")
        _save(path, quantize(_strip(tensors, prefix), base), {"network": name, "prefix": prefix})
        written.append(path)
    return written


def read(path: str) -> tuple[dict[str, torch.Tensor], dict]:
    """A packed file's tensors and its metadata (JSON values decoded)."""
    with safe_open(path, "pt") as f:
        meta = {k: json.loads(v) for k, v in (f.metadata() or {}).items()}
        return {k: f.get_tensor(k) for k in f.keys()}, meta  # noqa: SIM118 (safe_open is not iterable)


def carried_networks(folder: str, base: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    """The networks a carried folder holds beside G: {network name: its weights under the trainer's names}."""
    nets = {}
    for path in sorted(glob.glob(os.path.join(folder, f"{NET_PREFIX}*{NET_SUFFIX}"))):
        tensors, meta = read(path)
        nets[meta["network"]] = {meta.get("prefix", "") + k: v for k, v in dequantize(tensors, base).items()}
    return nets


def roundtrip(parts: list[str], teacher_file: str) -> int:
    """Print what carrying `parts` as int8 deltas costs: the file's size, the deltas' rms error and the change of the
    UNet's output at t = 999 on 64 fixed noises and random contexts, beside the change training made."""
    import tempfile

    from safetensors.torch import load_file

    from .teacher_import import import_teacher

    unet = import_teacher(teacher_file)[0]
    base = {k: v.float().clone() for k, v in unet.state_dict().items()}
    w = {k: v for part in parts for k, v in load_file(part).items()}
    q = quantize(w, base)
    with tempfile.TemporaryDirectory() as tmp:
        save_file(q, os.path.join(tmp, "q8.safetensors"))
        size = os.path.getsize(os.path.join(tmp, "q8.safetensors"))
    back = dequantize(q, base)
    err = sum(float(((back[k] - w[k].float()) ** 2).sum()) for k in w) ** 0.5
    moved = sum(float(((w[k].float() - base[k]) ** 2).sum()) for k in w) ** 0.5
    g = torch.Generator().manual_seed(0)
    x, ctx = torch.randn(64, unet.config.in_channels, 32, 32, generator=g), 0.5 * torch.randn(64, 77, unet.config.cross_attention_dim, generator=g)

    def out(sd):
        unet.load_state_dict({k: v.float() for k, v in sd.items()})
        with torch.no_grad():
            return unet(x, torch.full((64,), 999.0), encoder_hidden_states=ctx).sample.clone()

    ref, rms = out(w), lambda t: float(t.pow(2).mean().sqrt())
    print(f"int8 deltas: {size} bytes ({size / 2**20:.2f} MiB); delta rms error / delta rms {err / moved:.4f}; output rms "
          f"{rms(ref):.4f}, change from int8 {rms(ref - out(back)):.5f}, change from the teacher {rms(ref - out(base)):.4f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m proof_scale.carried_state", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    pk = sub.add_parser("pack", help="a row's checkpoint → int8 deltas from the teacher, to carry")
    pk.add_argument("out")
    pk.add_argument("--row-dir", required=True, help="the row's folder in the work folder (distill/ROWDIR: checkpoint and plan)")
    pk.add_argument("--teacher", required=True, help="the work folder's teacher.safetensors")
    pk.add_argument("--row", required=True, help="the row it becomes in the next work folder (rows start from it with init_from=ROW)")
    rt = sub.add_parser("roundtrip", help="how much int8 deltas change given weights: file size, weight and output error")
    rt.add_argument("--weights", nargs="+", required=True, help="a UNet's diffusers state dict (parts are joined)")
    rt.add_argument("--teacher-file", required=True, help="the teacher generator file (default_models/proof_scale/fmnist-teacher.safetensors)")
    a = p.parse_args(argv)
    if a.command == "roundtrip":
        return roundtrip(a.weights, a.teacher_file)
    for path in pack(a.out, a.row_dir, a.teacher, a.row):
        print(f"state: {path} ({os.path.getsize(path) / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
