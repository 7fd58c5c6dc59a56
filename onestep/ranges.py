"""Numbers a user typed (node inputs, CLI flags, config fields) checked before anything runs, with a message that names
the input and its allowed range.

ComfyUI checks a widget's declared min/max when a prompt is queued, but not a value that arrives through a link (a
widget converted to an input and fed by a Primitive or a math node), and NaN passes every FLOAT range there (NaN < min
and NaN > max are both false). Such values reached torch (`Invalid learning rate: nan`, `zeros: Dimension size must be
non-negative`), trained for a step before a NaN loss stopped them, or were written into a generator file.
`check_declared` applies a node's own declared ranges to the values its function receives."""
from __future__ import annotations

import math
import numbers
from collections.abc import Mapping

NUMERIC = ("INT", "FLOAT")


def _number(value) -> str:
    if isinstance(value, float) and (value == 0 or 1e-4 <= abs(value) < 1e16):
        return f"{value:g}" if abs(value) < 1e6 else f"{value:,.0f}"
    return f"{value:,}" if isinstance(value, int) else f"{value:g}"


def range_text(lo=None, hi=None) -> str:
    """"from 1 to 1,000", "≥ 0", "≤ 1" or "" (no bounds)."""
    if lo is not None and hi is not None:
        return f"from {_number(lo)} to {_number(hi)}"
    if lo is not None:
        return f"≥ {_number(lo)}"
    return f"≤ {_number(hi)}" if hi is not None else ""


def check_range(name: str, value, lo=None, hi=None, integer: bool = False) -> None:
    """Refuse `value` unless it is an integer (with `integer`) or a finite number within [lo, hi]; the ValueError names
    `name` and the range."""
    kind = "an integer" if integer else "a finite number"
    if isinstance(value, bool):
        ok_type = False
    elif integer:
        ok_type = isinstance(value, numbers.Integral)
    else:
        ok_type = isinstance(value, numbers.Real) and math.isfinite(value)
    if not ok_type or (lo is not None and value < lo) or (hi is not None and value > hi):
        allowed = " ".join(filter(None, (kind, range_text(lo, hi))))
        raise ValueError(f"{name} must be {allowed}, not {value!r}")


def check_declared(inputs: Mapping[str, Mapping], values: Mapping[str, object]) -> None:
    """Check every INT and FLOAT among `values` against its declaration in a node's INPUT_TYPES() (the V1 dict, which
    V3 nodes also give): its min and max, an integer for INT, a finite number for FLOAT. Inputs not declared numeric,
    and optional inputs not given, are left alone."""
    for section in ("required", "optional"):
        for name, spec in inputs.get(section, {}).items():
            if name not in values or not isinstance(spec, (tuple, list)) or not spec or spec[0] not in NUMERIC:
                continue
            options = spec[1] if len(spec) > 1 and isinstance(spec[1], Mapping) else {}
            check_range(name, values[name], options.get("min"), options.get("max"), integer=spec[0] == "INT")


def check_choice(name: str, value, choices) -> None:
    """Refuse `value` unless it is one of `choices`; the ValueError names `name` and the choices."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, not {value!r}")
