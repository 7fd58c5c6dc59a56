"""A loss-curve picture for the training node: one panel per loss term over the steps (PIL only, no plotting
library), so a user sees whether regression falls and how the GAN terms settle."""
from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

COLOURS = [(230, 120, 40), (60, 160, 230), (120, 200, 90), (220, 80, 160), (240, 210, 70), (160, 120, 240)]


def loss_curve(history: dict[str, list[tuple[int, float]]], width: int = 768, panel_height: int = 140) -> np.ndarray:
    """[H, W, 3] float image in [0, 1]: each term's (step, value) series on its own panel with its min/max."""
    names = [n for n in sorted(history) if history[n] and not n.startswith("grad_norm")] or ["(no steps yet)"]
    img = Image.new("RGB", (width, panel_height * len(names)), (20, 20, 24))
    draw = ImageDraw.Draw(img)
    for i, name in enumerate(names):
        top = i * panel_height
        series = [(s, v) for s, v in history.get(name, []) if math.isfinite(v)]
        draw.rectangle([50, top + 18, width - 10, top + panel_height - 14], outline=(90, 90, 100))
        if not series:
            draw.text((56, top + 4), name, fill=(200, 200, 200))
            continue
        steps, values = zip(*series)
        lo, hi = min(values), max(values)
        span, s0, s1 = (hi - lo) or 1.0, min(steps), max(max(steps), min(steps) + 1)
        pts = [(50 + (s - s0) / (s1 - s0) * (width - 60), top + panel_height - 14 - (v - lo) / span * (panel_height - 32)) for s, v in series]
        if len(pts) == 1:
            pts = pts * 2
        draw.line(pts, fill=COLOURS[i % len(COLOURS)], width=2)
        draw.text((56, top + 4), f"{name}: last {values[-1]:.4g}  (min {lo:.4g}, max {hi:.4g}, steps {s0}–{max(steps)})", fill=(220, 220, 220))
        draw.text((4, top + 18), f"{hi:.3g}", fill=(150, 150, 150))
        draw.text((4, top + panel_height - 26), f"{lo:.3g}", fill=(150, 150, 150))
    return np.asarray(img, dtype=np.float32) / 255.0
