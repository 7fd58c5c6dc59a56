"""Where the SD VAE decoder's time goes (issue 20): at 1024² it takes 83.6 ms at batch 1 on an H200 — 15 % of the
bf16 peak for its 10.47 TFLOP — and caps SDXL's end-to-end ratio against the teacher (docs/benchmarks.md). This
probe times ComfyUI's own decoder (comfy.sd.VAE, random weights, the dtype ComfyUI picks) eagerly and attributes the
time to its layers, so the next lever is chosen from figures:

  python -m benchmarks.probe_vae_decoder [--size 1024] [--batch 1] [--rounds 10] [--kernels 15] [--subpixel]
      [--wide-groupnorm [--wide-affine batch_norm]] [--channels-last] [--json OUT]

--subpixel times the decoder as VAE Decode (fast)'s compiled modes run it: each nearest ×2 upsampling and its 3×3
convolution as one 2×2 convolution with four output phases (onestep/subpixel.py), listed as "subpixel" rows whose
TFLOP/s count the FLOPs that convolution runs (4/9 of the pair's).

Tables printed: (1) per layer kind and shape — each Conv2d by (in, out, kernel, output size) with its count, ms and
achieved TFLOP/s; GroupNorm, the nearest upsampling and the attention core (an AttnBlock's time less its norm and
1×1 convolutions) with ms and GB/s moved — timed with events around each module call (the decode then runs with one
sync per layer, so its total is a little above the plain decode's, which is printed beside it); (2) with CUDA, the
profiler's top kernels by GPU time (their names say whether cuDNN converts layouts around each convolution and which
attention kernel SDPA chose). Needs ComfyUI importable (PYTHONPATH) and writes nothing but --json.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict

import torch
from torch import nn

from onestep.group_norm import AFFINES

PEAK_BF16_TFLOPS = 790.0  # the H200's dense bf16 peak, the share printed beside each convolution


class LayerClock:
    """Start/end marks around module calls: CUDA events on a GPU, perf_counter (after a sync) on the CPU."""

    def __init__(self, cuda: bool):
        self.cuda, self.open, self.calls = cuda, {}, []

    def mark(self):
        if self.cuda:
            e = torch.cuda.Event(enable_timing=True)
            e.record()
            return e
        return time.perf_counter()

    def elapsed_ms(self, a, b) -> float:
        return a.elapsed_time(b) if self.cuda else 1000.0 * (b - a)

    def watch(self, module: nn.Module, kind: str) -> list:
        def pre(mod, args):
            self.open[id(mod)] = (self.mark(), args[0].shape)

        def post(mod, args, out):
            start, shape = self.open.pop(id(mod))
            self.calls.append((kind, mod, tuple(shape), tuple(out.shape), start, self.mark()))
        return [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]


def layer_kind(module: nn.Module) -> str | None:
    """What the table groups a module as (None: not timed on its own)."""
    if getattr(module, "_probe_skip", False):
        return None
    if isinstance(module, nn.Conv2d):
        return "conv"
    if isinstance(module, nn.GroupNorm):
        return "groupnorm"
    name = type(module).__name__
    return {"AttnBlock": "attnblock", "Upsample": "upsample", "SubpixelUpsample": "subpixel", "WideGroupNorm": "groupnorm"}.get(name)


def subpixel_flops(module: nn.Module, in_shape: tuple) -> float:
    """The FLOPs of a SubpixelUpsample's 2×2 convolution: 4 phases × C_out outputs over (H+1)×(W+1), 4 taps × C_in."""
    conv = module.fallback.conv
    b, c_in, h, w = in_shape
    return 2.0 * b * (h + 1) * (w + 1) * 4 * conv.out_channels * c_in * 4


def conv_flops(conv: nn.Conv2d, out_shape: tuple) -> float:
    b, c_out, h, w = out_shape
    kh, kw = conv.kernel_size
    return 2.0 * b * h * w * c_out * (conv.in_channels // conv.groups) * kh * kw


def attribute(decoder: nn.Module, z: torch.Tensor, rounds: int) -> list[dict]:
    """Per layer kind and shape, the mean over `rounds` decodes of: calls, ms, and TFLOP/s (convolutions) or GB/s
    (the rest). Upsample rows are the interpolation alone, AttnBlock rows the attention core alone."""
    clock = LayerClock(z.is_cuda)
    hooks = [*clock.watch(decoder, "decoder"), *(h for m in decoder.modules() if m is not decoder and (k := layer_kind(m)) for h in clock.watch(m, k))]
    try:
        with torch.inference_mode():
            for _ in range(rounds):
                decoder(z)
        if z.is_cuda:
            torch.cuda.synchronize()
    finally:
        for h in hooks:
            h.remove()
    rows: dict[tuple, dict] = {}
    itemsize, whole = z.element_size(), 0.0
    inside = defaultdict(float)  # a block's children's time in its current call (they end before it: calls are in end order)
    for kind, mod, shape, out, a, b in clock.calls:
        ms = clock.elapsed_ms(a, b)
        if kind == "decoder":
            whole += ms
            continue
        for parent in getattr(mod, "_probe_parents", ()):
            inside[id(parent)] += ms
        if kind in ("upsample", "attnblock"):  # its own time: less the convolutions and norms called inside it
            ms -= inside.pop(id(mod), 0.0)
        if kind == "conv":
            key = (kind, f"{mod.in_channels}→{mod.out_channels}, {mod.kernel_size[0]}×{mod.kernel_size[1]}, out {out[2]}×{out[3]}")
        elif kind == "subpixel":
            key = (kind, f"{shape[1]}→{out[1]}, 2×2 × 4 phases, {shape[2]}×{shape[3]} → {out[2]}×{out[3]}")
        else:
            key = (kind, f"{shape[1]} ch, {shape[2]}×{shape[3]}" + (f" → {out[2]}×{out[3]}" if out[2:] != shape[2:] else ""))
        r = rows.setdefault(key, {"kind": kind, "shape": key[1], "calls": 0, "ms": 0.0, "flops": 0.0, "bytes": 0.0})
        r["calls"] += 1
        r["ms"] += ms
        if kind == "conv":
            r["flops"] += conv_flops(mod, out)
        elif kind == "subpixel":
            r["flops"] += subpixel_flops(mod, shape)
        else:  # read once, written once: the least an elementwise or normalising layer moves
            r["bytes"] += (torch.Size(shape).numel() + torch.Size(out).numel()) * itemsize
    timed = sum(r["ms"] for r in rows.values())
    rows[("other", "")] = {"kind": "other", "shape": "SiLU, residual adds, the rest", "calls": rounds, "ms": whole - timed, "flops": 0.0, "bytes": 0.0}
    table = []
    for r in rows.values():
        r = {**r, "calls": r["calls"] // rounds, "ms": r["ms"] / rounds, "flops": r["flops"] / rounds, "bytes": r["bytes"] / rounds}
        r["tflops"] = r["flops"] / (r["ms"] * 1e9) if r["flops"] and r["ms"] > 0 else None
        r["gbps"] = r["bytes"] / (r["ms"] * 1e6) if r["bytes"] and r["ms"] > 0 else None
        table.append(r)
    return sorted(table, key=lambda r: -r["ms"])


def mark_parents(decoder: nn.Module) -> None:
    """Each conv/norm inside an Upsample or AttnBlock knows that block (attribute() subtracts it from the block)."""
    for m in decoder.modules():
        if layer_kind(m) in ("upsample", "attnblock"):
            for child in m.modules():
                if child is not m and layer_kind(child) in ("conv", "groupnorm"):
                    child._probe_parents = (*getattr(child, "_probe_parents", ()), m)


def plain_ms(decoder: nn.Module, z: torch.Tensor, rounds: int) -> float:
    """The decode's mean wall time with no hooks (synchronised)."""
    def sync():
        if z.is_cuda:
            torch.cuda.synchronize()
    with torch.inference_mode():
        decoder(z)
        sync()
        t = time.perf_counter()
        for _ in range(rounds):
            decoder(z)
        sync()
    return 1000.0 * (time.perf_counter() - t) / rounds


def top_kernels(decoder: nn.Module, z: torch.Tensor, n: int) -> list[dict]:
    """The profiler's top GPU kernels over two decodes: name, calls and ms per decode."""
    from torch.profiler import ProfilerActivity, profile
    with torch.inference_mode(), profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(2):
            decoder(z)
        torch.cuda.synchronize()
    totals: dict[str, list] = defaultdict(lambda: [0, 0.0])
    for e in prof.events():
        if e.device_type == torch.autograd.DeviceType.CUDA:
            totals[e.name][0] += 1
            totals[e.name][1] += e.device_time / 1000.0
    ranked = sorted(totals.items(), key=lambda kv: -kv[1][1])[:n]
    return [{"kernel": k, "calls": c // 2, "ms": ms / 2} for k, (c, ms) in ranked]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=1024, help="image size (latents size/8)")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--kernels", type=int, default=15, help="top GPU kernels listed (CUDA only)")
    p.add_argument("--subpixel", action="store_true", help="the decoder as the compiled fast modes run it (sub-pixel upsampling)")
    p.add_argument("--wide-groupnorm", action="store_true", help="the decoder as VAE Decode (fast)'s cuda-graph mode runs it "
                   "(GroupNorm on large maps from wide reductions); also prints the decode's largest difference from core's")
    p.add_argument("--wide-affine", default="auto", choices=AFFINES, help="with --wide-groupnorm: its normalising pass "
                   "(probe_group_norm times both per shape; this times them in the whole decode; auto: the default, by channels per group)")
    p.add_argument("--channels-last", action="store_true", help="the decoder's weights and latents in channels_last "
                   "(NHWC: cuDNN's layout for 16-bit convolutions, no conversions around each); with --wide-groupnorm the "
                   "difference is still against core's NCHW decode")
    p.add_argument("--json", default="")
    a = p.parse_args(argv)
    import comfy.cli_args

    comfy.cli_args.args.cpu = comfy.cli_args.args.cpu or not torch.cuda.is_available()  # before core picks its device
    import comfy.sd

    from tools import fixtures as F

    vae = comfy.sd.VAE(sd=F.vae_state_dict())
    model = vae.first_stage_model.to(vae.device)
    if a.subpixel:
        from onestep_nodes.subpixel_views import vae_view

        model = vae_view(model).module
    z = torch.randn(a.batch, 4, a.size // 8, a.size // 8, generator=torch.Generator().manual_seed(0)).to(vae.device, vae.vae_dtype)
    max_diff = None
    if a.wide_groupnorm:
        from onestep_nodes.subpixel_views import vae_graph_view

        core_decoder = model.decoder
        model = vae_graph_view(model).module
        for m in model.decoder.modules():  # a WideGroupNorm's fallback is timed as the WideGroupNorm, not twice
            if type(m).__name__ == "WideGroupNorm":
                m.fallback._probe_skip = True
                m.affine = a.wide_affine
        with torch.inference_mode():  # in 0..1 pixels, as VAE Decode's output
            core_pixels = ((core_decoder(z).float() + 1) / 2).clamp(0, 1)
    if a.channels_last:  # the weights converted in place (the probe's own model), the latents likewise
        model.to(memory_format=torch.channels_last)
        z = z.contiguous(memory_format=torch.channels_last)
    if a.wide_groupnorm:
        with torch.inference_mode():
            max_diff = (core_pixels - ((model.decoder(z).float() + 1) / 2).clamp(0, 1)).abs().max().item()
    decoder = model.decoder
    mark_parents(decoder)
    total = plain_ms(decoder, z, a.rounds)
    table = attribute(decoder, z, a.rounds)
    kernels = top_kernels(decoder, z, a.kernels) if z.is_cuda else []
    device = torch.cuda.get_device_name(vae.device) if z.is_cuda else "cpu"
    command = "python -m benchmarks.probe_vae_decoder " + " ".join(sys.argv[1:] if argv is None else argv)
    marked = sum(r["ms"] for r in table)
    print(f"device: {device}, torch {torch.__version__}, VAE {vae.vae_dtype}, {a.size}² batch {a.batch}"
          f"{', sub-pixel upsampling' if a.subpixel else ''}{f', wide GroupNorm ({a.wide_affine})' if a.wide_groupnorm else ''}{', channels_last' if a.channels_last else ''}: decode {total:.1f} ms "
          f"(with a mark around each layer: {marked:.1f} ms, the shares' whole)")
    print("\n| layer | shape | calls | ms | share | TFLOP/s (% of the H200's bf16 peak) | GB/s |\n|---|---|---|---|---|---|---|")
    for r in table:
        tf = f"{r['tflops']:.3g} ({100 * r['tflops'] / PEAK_BF16_TFLOPS:.0f} %)" if r["tflops"] else ""
        print(f"| {r['kind']} | {r['shape']} | {r['calls']} | {r['ms']:.2f} | {100 * r['ms'] / marked:.0f} % | {tf} | "
              f"{format(r['gbps'], '.0f') if r['gbps'] else ''} |")
    if kernels:
        print("\n| GPU kernel | calls | ms |\n|---|---|---|")
        for k in kernels:
            print(f"| {k['kernel'][:110]} | {k['calls']} | {k['ms']:.2f} |")
    if max_diff is not None:
        print(f"\nlargest difference from core's decode (0..1 pixels): {max_diff:.5f}")
    print(f"\ncommand: {command}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"command": command, "device": device, "torch": torch.__version__, "dtype": str(vae.vae_dtype), "size": a.size,
                       "batch": a.batch, "subpixel": a.subpixel, "wide_groupnorm": a.wide_groupnorm, "wide_affine": a.wide_affine, "channels_last": a.channels_last, "max_diff_from_core": max_diff, "decode_ms": total, "layers": table, "kernels": kernels}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
