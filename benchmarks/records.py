"""The tail every proof-scale benchmark shares: print the command that made the table, and keep the rows as JSON."""
from __future__ import annotations

import json
import shlex

import torch


def finish(module: str, argv: list[str], rows: list[dict], json_path: str | None, device: torch.device) -> None:
    """Print `python -m MODULE ARGS`; with json_path, write {rows, command, device, torch} there."""
    command = f"python -m {module} " + " ".join(shlex.quote(a) for a in argv)
    print(f"\n{command}")
    if json_path:
        with open(json_path, "w", encoding="utf-8") as f:
            json.dump({"rows": rows, "command": command, "device": torch.cuda.get_device_name(device) if device.type == "cuda" else str(device), "torch": torch.__version__}, f, indent=2)
