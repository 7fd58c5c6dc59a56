"""Where a resumed proof-scale row levels off: a + b·exp(−s/τ) fitted to its validation points over several parts.

  python -m tools.fit_selection_curve RUN/distill/k_a32 RUN/distill/l_a32 [--ema 0.99] [--metric fd] [--from-step 0]

Each folder is one part of a row (a session's calls, resumed from the part before): its selection.json holds the
validation points (step counted from the part's start, one per kept EMA decay) and its timing.json the steps the part
trained, so part i's points sit at the steps of parts 1..i−1 plus their own. The fit is least squares in (a, b, τ):
for each τ on a log grid the best a and b are linear, then τ is refined around the best grid point; the standard
errors come from the Jacobian at the optimum (σ² (JᵀJ)⁻¹, σ² from the residuals) — with few points and a τ longer
than the steps seen they are optimistic, so read `a` as where the curve heads, not where the row will stop.

Why: a part costs a session's GPU budget; whether the next one should repeat the row or change it depends on whether
the row is still falling toward the target or bending toward a level above it (docs/benchmarks.md, issue 16).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def chained_points(parts: list[Path], ema: float, metric: str) -> list[tuple[int, float]]:
    """(step since the first part's start, value) for the points at EMA decay `ema`, parts in the order given."""
    points, offset = [], 0
    for part in parts:
        selection = json.loads((part / "selection.json").read_text())
        for p in selection["points"]:
            if abs(float(p["ema"]) - ema) < 1e-9:
                points.append((offset + int(p["step"]), float(p[metric])))
        offset += int(json.loads((part / "timing.json").read_text())["steps"])
    if not points:
        raise ValueError(f"no validation points at EMA {ema:g} in {', '.join(map(str, parts))}")
    return points


def _linear_fit(steps: np.ndarray, values: np.ndarray, tau: float) -> tuple[float, float, float]:
    """The best a, b for a fixed τ and the sum of squared residuals."""
    design = np.stack([np.ones_like(steps), np.exp(-steps / tau)], axis=1)
    (a, b), *_ = np.linalg.lstsq(design, values, rcond=None)
    return float(a), float(b), float(np.sum((design @ np.array([a, b]) - values) ** 2))


def fit_exponential(points: list[tuple[int, float]], tau_range: tuple[float, float] = (50.0, 1e6)) -> dict:
    """a + b·exp(−s/τ) by least squares; needs at least 4 points (3 parameters and a residual)."""
    if len(points) < 4:
        raise ValueError(f"{len(points)} points: a three-parameter curve needs at least 4")
    steps = np.array([s for s, _ in points], dtype=np.float64)
    values = np.array([v for _, v in points], dtype=np.float64)
    grid = np.geomspace(*tau_range, 400)
    best = min(grid, key=lambda t: _linear_fit(steps, values, t)[2])
    # the grid's ratio is ~1.035: this brackets the optimum (inside the range, so an edge stays an edge)
    fine = np.geomspace(max(best / 1.05, tau_range[0]), min(best * 1.05, tau_range[1]), 200)
    tau = float(min(fine, key=lambda t: _linear_fit(steps, values, t)[2]))
    a, b, sse = _linear_fit(steps, values, tau)
    e = np.exp(-steps / tau)
    jacobian = np.stack([np.ones_like(steps), e, b * steps / tau ** 2 * e], axis=1)
    dof = len(points) - 3
    sigma2 = sse / dof if dof > 0 else float("nan")
    try:
        errors = np.sqrt(np.diag(sigma2 * np.linalg.inv(jacobian.T @ jacobian)))
    except np.linalg.LinAlgError:  # τ at the grid's end: the curve is a line or a step, a has no finite error
        errors = np.full(3, float("nan"))
    at_edge = tau <= tau_range[0] * 1.05 or tau >= tau_range[1] / 1.05
    return {"a": a, "a_se": float(errors[0]), "b": b, "tau": tau, "tau_se": float(errors[2]),
            "rms": float(np.sqrt(sse / len(points))), "points": len(points), "tau_at_grid_edge": bool(at_edge)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("parts", nargs="+", type=Path, help="the row's part folders (selection.json, timing.json), in order")
    p.add_argument("--ema", type=float, default=0.99, help="which kept EMA decay's points to fit")
    p.add_argument("--metric", default="fd", help="fd, recall, precision or class_acc")
    p.add_argument("--from-step", type=int, default=0, help="leave out points before this step (a warm-up)")
    a = p.parse_args(argv)
    try:
        points = [pt for pt in chained_points(a.parts, a.ema, a.metric) if pt[0] >= a.from_step]
        fit = fit_exponential(points)
    except (OSError, KeyError, ValueError) as e:
        print(f"fit_selection_curve: {e}", file=sys.stderr)
        return 2
    for step, value in points:
        print(f"  step {step:>6}  {a.metric} {value:.3f}")
    edge = "  (τ at the grid's end: no bend seen)" if fit["tau_at_grid_edge"] else ""
    print(f"{a.metric} ≈ {fit['a']:.2f} ± {fit['a_se']:.2f} + {fit['b']:.2f}·exp(−s/{fit['tau']:.0f}), "
          f"rms {fit['rms']:.3f} over {fit['points']} points{edge}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
