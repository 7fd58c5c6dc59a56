"""Atomic file writes: write to a temporary file in the destination folder, then rename over the target, so a
crash or cancel never leaves a half-written model or checkpoint (the old file, if any, stays intact)."""
from __future__ import annotations

import hashlib
import os
import tempfile
from typing import Callable


def _process_umask() -> int:
    mask = os.umask(0o022)  # read it the only way POSIX offers (set and restore), once, at import (the main thread)
    os.umask(mask)
    return mask


UMASK = _process_umask()


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Call write(tmp_path), then move tmp_path to `path`; on any failure remove tmp_path and re-raise. The file gets
    the permissions a plain open() would give it (0666 less the umask), not mkstemp's private 0600: models written
    here must be readable by a ComfyUI that runs as another user."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.splitext(path)[1], dir=folder)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~UMASK)  # after writing: some writers (safetensors) replace the file with a private one
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file, streamed (identifies weights and dataset shards)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()
