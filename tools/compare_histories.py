"""Two training histories side by side: each logged term both have, as means over windows of steps, and how far apart.

  python -m tools.compare_histories A/history.json B/history.json [--window 100] [--terms regression,d_real] [--json OUT]

A history is the trainer's history.json ({term: [[step, value], ...]}, as proof-scale rows keep it). For a rerun of a row
(issue 15: a pre-engine row replayed through the method engine) the first steps should agree closely and later windows
within the noise of two nondeterministic GPU runs; a term one history lacks is listed, not compared.
"""
from __future__ import annotations

import argparse
import json
import sys


def window_means(points: list, window: int) -> dict[int, float]:
    """Mean value per window start (steps s with start <= s < start + window; steps count from 1)."""
    sums: dict[int, list[float]] = {}
    for step, value in points:
        start = (int(step) - 1) // window * window + 1
        sums.setdefault(start, []).append(float(value))
    return {s: sum(v) / len(v) for s, v in sorted(sums.items())}


def compare(a: dict, b: dict, window: int, terms: list[str] | None = None) -> dict:
    """Per shared term: the first step's values, and per window both means and the relative difference |a - b| / |a|."""
    shared = [t for t in (terms or sorted(a)) if t in a and t in b]
    out = {"window": window, "only_in_a": sorted(set(a) - set(b)), "only_in_b": sorted(set(b) - set(a)), "terms": {}}
    for t in shared:
        ma, mb = window_means(a[t], window), window_means(b[t], window)
        rows = [{"start": s, "a": ma[s], "b": mb[s], "rel": abs(ma[s] - mb[s]) / max(abs(ma[s]), 1e-12)} for s in ma if s in mb]
        out["terms"][t] = {"first": [a[t][0], b[t][0]], "windows": rows, "max_rel": max((r["rel"] for r in rows), default=None)}
    return out


def markdown(result: dict) -> str:
    lines = ["| term | steps | A | B | rel. diff |", "|---|---|---|---|---|"]
    w = result["window"]
    for t, r in result["terms"].items():
        (sa, va), (sb, vb) = r["first"]
        lines.append(f"| {t} | first (A step {sa}, B step {sb}) | {va:.6g} | {vb:.6g} | {abs(va - vb) / max(abs(va), 1e-12):.2%} |")
        lines += [f"| {t} | {x['start']}–{x['start'] + w - 1} | {x['a']:.6g} | {x['b']:.6g} | {x['rel']:.2%} |" for x in r["windows"]]
    for side in ("a", "b"):
        if result[f"only_in_{side}"]:
            lines.append(f"\nonly in {side.upper()}: {', '.join(result[f'only_in_{side}'])}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.compare_histories", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--window", type=int, default=100, help="steps per window (default 100)")
    p.add_argument("--terms", default=None, help="comma-separated terms (default: every term both have)")
    p.add_argument("--json", default=None, help="also write the comparison here")
    args = p.parse_args(argv)
    if args.window < 1:
        p.error("--window must be at least 1")
    with open(args.a, encoding="utf-8") as f:
        a = json.load(f)
    with open(args.b, encoding="utf-8") as f:
        b = json.load(f)
    result = compare(a, b, args.window, args.terms.split(",") if args.terms else None)
    print(f"A: {args.a}\nB: {args.b}\n")
    print(markdown(result))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
