"""Real data the tests use, kept in the repository (tests/data/README.md names each file's source and licence)."""
from __future__ import annotations

import os

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


def shared_data(name: str) -> str:
    """Path of a file in tests/data; a missing file is an error, not a skip."""
    path = os.path.join(DATA, name)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"test data file {name} is missing from tests/data")
    return path
