"""The project's shared real data (../shared/data next to the checkout, as the developers' guide places it)."""
from __future__ import annotations

import os

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def shared_data(name: str) -> str:
    """Path of a file in shared/data: $ONESTEP_SHARED_DATA, else ../shared/data of the checkout or of a parent
    folder, else the workplace's /work/shared/data (a clone made elsewhere); a missing file is an error, not a skip."""
    folders = [os.environ.get("ONESTEP_SHARED_DATA", "")]
    parent = REPO
    while os.path.dirname(parent) != parent:
        parent = os.path.dirname(parent)
        folders.append(os.path.join(parent, "shared", "data"))
    folders.append("/work/shared/data")
    for folder in folders:
        if folder and os.path.isfile(os.path.join(folder, name)):
            return os.path.join(folder, name)
    raise FileNotFoundError(f"shared data file {name} not found in ../shared/data (set ONESTEP_SHARED_DATA to its folder)")
