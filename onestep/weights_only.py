"""Why torch.load(weights_only=True) refused a file, in words fit for the pack's own error messages."""
from __future__ import annotations

import re


def refusal_reason(e: Exception) -> str:
    """What torch.load(weights_only=True) refused — the code a pickle names ("it names posix.system"), else its
    unpickler's reason — without torch's advice to rerun with weights_only=False or its terminal colour codes."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(e))
    if m := re.search(r"GLOBAL ([\w.]+)", text):
        return f"it names {m.group(1)}, which is not a tensor"
    if m := re.search(r"WeightsUnpickler error:\s*(\S[^\n]*)", text):
        return m.group(1).strip()
    lines = [line.strip() for line in text.splitlines()]
    reasons = [line for line in lines if line and not line.startswith(("Weights only load failed", "(", "Please", "Check the documentation"))]
    return reasons[0] if reasons else type(e).__name__
