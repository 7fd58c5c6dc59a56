"""Atomic file writes: write to a temporary file in the destination folder, then rename over the target, so a
crash or cancel never leaves a half-written model or checkpoint (the old file, if any, stays intact).

The temporary file lives in a private folder `.tmp-<target>.<pid>-…` next to the target, together with anything its
writer makes on the way (safetensors writes its own `.tmpXXXXXX` next to the path it is given, then renames). A write
killed part-way leaves only that folder; the next write into the same folder (or remove_abandoned, which a resume
calls) removes it once its process is gone."""
from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
import tempfile
from typing import Callable

TEMP_PREFIX = ".tmp-"
FULL = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}  # no space, over the process's file-size limit, over the quota


class DiskFullError(OSError):
    """A write that ran out of space (disk full, quota, file-size limit); the previous file under its name is unchanged."""


def _disk_full(e: BaseException) -> bool:
    """An OSError of FULL, or a writer's own error wrapping one (safetensors: "... (os error 28)")."""
    if isinstance(e, OSError):
        return e.errno in FULL
    m = re.search(r"os error (\d+)", str(e))
    return bool(m) and int(m.group(1)) in FULL


def _process_umask() -> int:
    mask = os.umask(0o022)  # read it the only way POSIX offers (set and restore), once, at import (the main thread)
    os.umask(mask)
    return mask


UMASK = _process_umask()


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Call write(tmp_path), then move tmp_path to `path`; on any failure remove the temporary folder and re-raise
    (running out of space as DiskFullError).
    tmp_path has the target's name (and extension) inside a private folder beside it. The file gets the permissions a
    plain open() would give it (0666 less the umask): models written here must be readable by a ComfyUI that runs as
    another user."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    remove_abandoned(folder)
    work = tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{os.path.basename(path)[:120]}.{os.getpid()}-", dir=folder)
    tmp = os.path.join(work, os.path.basename(path))
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~UMASK)  # after writing: some writers (safetensors) replace the file with a private one
        os.replace(tmp, path)
    except Exception as e:
        if _disk_full(e) and not isinstance(e, DiskFullError):
            raise DiskFullError(errno.ENOSPC, f"the disk is full: {path} could not be written ({e}); the previous "
                                f"{os.path.basename(path)}, if there was one, is unchanged — free some space and run again") from None
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_abandoned(folder: str | os.PathLike) -> None:
    """Remove what writes into `folder` left when their process was killed part-way, or between the rename and the
    clean-up (a checkpoint-sized file per kill otherwise); a live process's temporary folder is left alone."""
    for name in os.listdir(folder):
        head, _, rand = name.rpartition("-")  # .tmp-<target>.<pid>-<random: letters, digits, _>
        pid = head.rpartition(".")[2]
        if name.startswith(TEMP_PREFIX) and rand and pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            remove_temporary(os.path.join(folder, name))


def remove_temporary(path: str) -> None:
    """Remove a temporary file or folder atomic_write made (for callers that clear a whole folder's unfinished writes)."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.remove(path)


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file, streamed (identifies weights and dataset shards)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()
