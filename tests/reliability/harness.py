"""The fuzzers' common loop: open each mutated case, classify how it ended, and collect what the pack must never do."""
from __future__ import annotations

import json
import os
import random
import signal
import struct
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterable

import torch
from safetensors.torch import load_file, save_file

SAFETENSORS_KINDS = ("truncate", "header_flip", "body_flip", "header_length", "dtype", "shape", "metadata", "nonfinite")
WRONG_METADATA = ['"abc"', "[1, 2]", "{}", "null", "-5", "1e400", "{not json", "true", '"eps"', "999999"]


REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_driver(module: str, args: list[str], timeout: float) -> str:
    """`python -m reliability.<module> ARGS` (one driver process: torch and diffusers imported once, its cases forked
    from it) with the repo and tests/ on the path; its stderr. Fails the test with the tail when it fails."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([REPO, os.path.join(REPO, "tests")]), "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-m", f"reliability.{module}", *args], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=timeout)
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stderr


def _alarm(signum, frame):
    raise TimeoutError


def run_cases(cases: Iterable[tuple[str, str]], open_case: Callable[[str], None], error: type[Exception],
              seconds: int = 20) -> tuple[Counter, list[tuple[str, str]]]:
    """For each (kind, name): open_case(name) must return, or raise `error` with `name` in its message, within `seconds`.
    Returns (Counter of (kind, "loaded" | "refused"), [(name, what went wrong)])."""
    outcomes, bad = Counter(), []
    old = signal.signal(signal.SIGALRM, _alarm)
    try:
        for kind, name in cases:
            signal.alarm(seconds)
            try:
                open_case(name)
                outcomes[(kind, "loaded")] += 1
            except error as e:
                outcomes[(kind, "refused")] += 1
                if name not in str(e):
                    bad.append((name, f"message does not name it: {e}"))
            except TimeoutError:
                bad.append((name, "hang"))
            except Exception as e:  # noqa: BLE001 (what the fuzzers exist to catch)
                bad.append((name, f"{type(e).__name__}: {e}"[:200]))
            finally:
                signal.alarm(0)
    finally:
        signal.signal(signal.SIGALRM, old)
    return outcomes, bad


def _header(data: bytes) -> tuple[int, dict]:
    n = struct.unpack("<Q", data[:8])[0]
    return n, json.loads(data[8:8 + n])


def mutate_safetensors(kind: str, good: str, out: str, rng: random.Random, fields: list[str], values: list[str] = WRONG_METADATA,
                       keys: list[str] | None = None) -> None:
    """Write a mutation of the valid safetensors file `good` to `out`: truncated at a random offset, 1–4 bit flips in the
    header or the body, an absurd header length, one tensor (of `keys`, default all) of an integer/bool dtype, of a
    larger shape or holding NaN/inf, or one metadata field of `fields` set to one of `values`."""
    data = open(good, "rb").read()
    n, header = _header(data)
    if kind == "truncate":
        open(out, "wb").write(data[: rng.randrange(0, len(data))])
    elif kind in ("header_flip", "body_flip"):
        lo, hi = (8, 8 + n) if kind == "header_flip" else (8 + n, len(data))
        b = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(lo, hi)] ^= 1 << rng.randrange(8)
        open(out, "wb").write(bytes(b))
    elif kind == "header_length":
        value = rng.choice([2**63 - 1, 2**40, len(data), n + rng.randint(1, 64), 0, 7])
        open(out, "wb").write(struct.pack("<Q", value) + data[8:])
    else:
        sd, meta = load_file(good), header.get("__metadata__", {})
        key = rng.choice(sorted(keys if keys is not None else sd))
        if kind == "dtype":
            sd[key] = sd[key].to(rng.choice([torch.int8, torch.uint8, torch.bool, torch.int32]))  # float64 would be valid data
        elif kind == "shape":
            sd[key] = torch.zeros(*[d + rng.randint(1, 3) for d in sd[key].shape] or [2])
        elif kind == "metadata":
            meta = {**meta, rng.choice(fields): rng.choice(values)}
        elif kind == "nonfinite":
            sd[key] = sd[key].float().clone()
            sd[key].view(-1)[rng.randrange(sd[key].numel())] = rng.choice([float("nan"), float("inf"), float("-inf")])
        save_file(sd, out, metadata=meta)
