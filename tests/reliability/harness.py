"""The fuzzers' common loop: open each mutated case, classify how it ended, and collect what the pack must never do."""
from __future__ import annotations

import signal
from collections import Counter
from collections.abc import Callable, Iterable


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
