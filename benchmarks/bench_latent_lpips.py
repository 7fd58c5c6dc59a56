"""GPU benchmark: E-LatentLPIPS vs pixel LPIPS (VGG16) as a training loss, forward + backward.

Batch 8 of 64×64×4 SD latents (random), the prediction side requiring grad as a generator's output would:
  - E-LatentLPIPS (latent VGG16-BN trunk, 5 heads, bg augmentation, L1), on the latents directly;
  - pixel LPIPS-VGG on the same latents decoded to 512² by an SD-architecture VAE decoder (random weights),
    the gradient flowing back through the decoder, as a pixel-space loss would need.
Both under bf16 autocast (fp32 rows too); median step time and peak GPU memory of the step.
Usage (ComfyUI tree on PYTHONPATH, repo root): python -m benchmarks.bench_latent_lpips [--out results.json]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torchvision

from onestep.latent_lpips import ELatentLPIPS, LatentLPIPS, get_encoder
from onestep.latent_lpips.network import LinearHead, unit_normalize
from tools import fixtures as F


class PixelLPIPSVGG(torch.nn.Module):
    """LPIPS-VGG (Zhang et al. 2018) layout: torchvision VGG16 taps relu1_2..relu5_3, 1×1 heads (random weights here)."""

    TAPS = (3, 8, 15, 22, 29)

    def __init__(self):
        super().__init__()
        self.features = torchvision.models.vgg16(weights=None).features[:30]
        self.heads = torch.nn.ModuleList(LinearHead(c) for c in (64, 128, 256, 512, 512))
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))

    def taps(self, x):
        x = (x - self.shift) / self.scale
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.TAPS:
                out.append(x)
        return out

    def forward(self, a, b):
        return sum(h((unit_normalize(x) - unit_normalize(y)) ** 2).mean(dim=(1, 2, 3)) for h, x, y in zip(self.heads, self.taps(a), self.taps(b)))


def measure(step, reps: int = 10, warmup: int = 3) -> tuple[float, float]:
    """(median ms, peak GiB) of a training step."""
    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        step()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), (torch.cuda.max_memory_allocated() - base) / 2**30


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    dev = "cuda"
    torch.backends.cudnn.benchmark = True
    elpips = ELatentLPIPS(LatentLPIPS(4).eval(), get_encoder("sd15"), "bg").to(dev)
    elpips_cl = ELatentLPIPS(LatentLPIPS(4).eval(), get_encoder("sd15"), "bg").to(dev).to(memory_format=torch.channels_last)
    elpips_compiled = ELatentLPIPS(LatentLPIPS(4).eval(), get_encoder("sd15"), "bg").to(dev)
    elpips_compiled.lpips.net.compile(mode="reduce-overhead")  # trunk fwd+bwd compiled and replayed as CUDA graphs
    pixel = PixelLPIPSVGG().eval().to(dev)
    for p in list(elpips.parameters()) + list(elpips_cl.parameters()) + list(elpips_compiled.parameters()) + list(pixel.parameters()):
        p.requires_grad_(False)
    vae = F.AutoencoderKL(ddconfig=dict(F.SD_VAE), embed_dim=4)
    F.randomize(vae, 2, gain=0.5)
    vae = vae.to(dev).eval().requires_grad_(False)
    g = torch.Generator(device=dev).manual_seed(0)
    pred = torch.randn(args.batch, 4, 64, 64, device=dev, generator=g)
    target = torch.randn(args.batch, 4, 64, 64, device=dev, generator=g)
    rows = []
    for dtype in (torch.bfloat16, torch.float32):
        def latent_step():
            x = pred.clone().requires_grad_()
            with torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32):
                loss = elpips(x, target).mean()
            loss.backward()

        def pixel_step():
            x = pred.clone().requires_grad_()
            with torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32):
                with torch.no_grad():
                    img_t = vae.decode(target / 0.18215)
                img = vae.decode(x / 0.18215)
                loss = pixel(img, img_t).mean()
            loss.backward()

        def bare_step():
            x = pred.clone().requires_grad_()
            with torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32):
                loss = elpips.lpips(x, target).mean()
            loss.backward()

        def channels_last_step():
            x = pred.clone().contiguous(memory_format=torch.channels_last).requires_grad_()
            with torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32):
                loss = elpips_cl(x, target.contiguous(memory_format=torch.channels_last)).mean()
            loss.backward()

        def compiled_step():
            x = pred.clone().requires_grad_()
            with torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32):
                loss = elpips_compiled(x, target).mean()
            loss.backward()

        for name, step in (("E-LatentLPIPS (bg augmentation + L1) on 64×64×4 latents", latent_step),
                           ("E-LatentLPIPS, trunk torch.compile(mode='reduce-overhead')", compiled_step),
                           ("E-LatentLPIPS, channels_last", channels_last_step),
                           ("LatentLPIPS trunk + heads only (no augmentation, no L1)", bare_step),
                           ("pixel LPIPS-VGG on VAE-decoded 512² images (decode + backprop through decoder)", pixel_step)):
            try:
                ms, gib = measure(step)
            except Exception as e:  # a compile mode that cannot run here is reported, not fatal
                print(f"{name}: failed: {str(e).splitlines()[0][:200]}")
                continue
            rows.append({"dtype": str(dtype).replace("torch.", ""), "loss": name, "ms": round(ms, 2), "peak_gib": round(gib, 3)})
    for dt in ("bfloat16", "float32"):
        *lat, pix = [r for r in rows if r["dtype"] == dt]
        for r in lat:
            r["speedup"], r["memory_ratio"] = round(pix["ms"] / r["ms"], 1), round(r["peak_gib"] / pix["peak_gib"], 4)
    info = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "batch": args.batch, "rows": rows}
    print(f"device: {info['device']}, torch {info['torch']}, batch {args.batch}, forward+backward")
    print("| precision | loss | ms / step | peak GiB | × faster than pixel | memory vs pixel |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['dtype']} | {r['loss']} | {r['ms']:.1f} | {r['peak_gib']:.2f} | {r.get('speedup', '')} | {r.get('memory_ratio', '')} |")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(info, f, indent=1)


if __name__ == "__main__":
    main()
