"""Persistent torch.compile artifacts, so a compile mode's minutes are paid once per machine, not at every start.

torch ≥ 2.7 can serialize the inductor/AOTAutograd cache entries a process made (torch.compiler.save_cache_artifacts)
and hot-load them into a later process (load_cache_artifacts); torch still checks every entry against its own cache
key, so a loaded entry that does not match the code being compiled is simply not used. On top of that, files live in
a folder named by a digest of what the compiled code depends on: the weights' names, shapes and dtypes, the GPU's
name and capability, the torch version and the compile mode; a file from another model, GPU or torch is never read.

File format (no pickle of ours): MAGIC, then blobs, each a 8-byte length, the blob's sha256 and the blob. A file that
does not parse or whose digests do not match is ignored (with a log line) and rewritten after the next compile.
Several blobs: one per process that compiled something new (a process's own save holds only what it compiled, not
what it loaded), the last MAX_BLOBS kept. The blobs hold compiled code: the folder must be one the user owns
(the ComfyUI adapter uses its user folder), as torch's own inductor cache in /tmp is.
"""
from __future__ import annotations

import hashlib
import logging
import os
import struct

import torch

from .atomic import atomic_write

log = logging.getLogger("onestep")
MAGIC = b"ONESTEP-COMPILE-ARTIFACTS-1\n"
MAX_BLOBS = 8
_HEADER = struct.Struct("<Q32s")


def device_signature(device: torch.device | str | None = None) -> str:
    """The GPU's name and compute capability (code is compiled per architecture), or the CPU's arch."""
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}|sm{''.join(map(str, torch.cuda.get_device_capability(device)))}"
    return f"{device.type}|{os.uname().machine}"


def weights_signature(modules) -> str:
    """Names, shapes and dtypes of every parameter and buffer of the modules (never their values: code does not
    depend on them, and reading them would sync the GPU)."""
    h = hashlib.sha256()
    for i, module in enumerate(modules):
        for name, t in module.state_dict(keep_vars=True).items():
            h.update(f"{i}.{name}{tuple(t.shape)}{t.dtype}\n".encode())
    return h.hexdigest()


def cache_key(modules, device, mode: str) -> str:
    """The artifacts folder's name for these weights on this device, torch version and compile mode."""
    parts = (weights_signature(modules), device_signature(device), torch.__version__, str(mode))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


def encode(blobs: list[bytes]) -> bytes:
    return MAGIC + b"".join(_HEADER.pack(len(b), hashlib.sha256(b).digest()) + b for b in blobs)


def decode(data: bytes) -> list[bytes]:
    """The blobs of a file; ValueError if it is not one of ours or any blob is damaged."""
    if not data.startswith(MAGIC):
        raise ValueError("not a compile-artifacts file")
    blobs, pos = [], len(MAGIC)
    while pos < len(data):
        if pos + _HEADER.size > len(data):
            raise ValueError("truncated header")
        size, digest = _HEADER.unpack_from(data, pos)
        blob = data[pos + _HEADER.size: pos + _HEADER.size + size]
        if len(blob) != size or hashlib.sha256(blob).digest() != digest:
            raise ValueError("damaged blob (truncated or changed)")
        blobs.append(blob)
        pos += _HEADER.size + size
    return blobs


_FOLDER: list[str | None] = [None]
_OPEN: dict[str, "CompileArtifacts"] = {}


def set_folder(folder: str | None) -> None:
    """Where this process's compile artifacts persist (None: nowhere): a host adapter's user folder, or the proof-scale
    pipeline's --compile-cache (a folder carried from one device call into the next)."""
    _FOLDER[0] = folder


def artifacts_for(modules, device, mode: str) -> "CompileArtifacts | None":
    """This process's one artifacts object for compiling `modules` in `mode` on `device` (so it loads once), or None
    without a folder or a mode."""
    if _FOLDER[0] is None or not mode:
        return None
    key = cache_key(modules, device, mode)
    return _OPEN.setdefault(key, CompileArtifacts(_FOLDER[0], key))


def save_all() -> int:
    """Save every artifacts object this process opened (what it compiled, with what it loaded); how many were written.
    For code that compiles lazily, at the end of the work (a process that exits by its deadline included)."""
    return sum(art.save() for art in list(_OPEN.values()))


class CompileArtifacts:
    """One key's artifacts file: `load()` before compiling, `save()` after. Never raises: a cache only saves time."""

    def __init__(self, folder: str, key: str):
        self.path = os.path.join(folder, key, "artifacts.bin")
        self._loaded: list[bytes] = []
        self._tried = False

    def load(self) -> int:
        """Hot-load the file's artifacts into torch's caches (once per object); the number of blobs loaded."""
        if self._tried:
            return len(self._loaded)
        self._tried = True
        if not os.path.exists(self.path):
            return 0
        try:
            with open(self.path, "rb") as f:
                blobs = decode(f.read())
            for blob in blobs:
                if torch.compiler.load_cache_artifacts(blob) is None:  # torch logs its own reason and returns None
                    raise ValueError("torch could not read the artifacts (another torch version?)")
        except Exception as e:  # damaged, foreign or from an incompatible torch: rebuild rather than trust it
            log.warning("[onestep] compile cache %s unusable (%s); it will be rebuilt", self.path, str(e).splitlines()[0] if str(e) else type(e).__name__)
            return 0
        self._loaded = blobs
        log.info("[onestep] loaded %d compile-artifact set(s) from %s", len(blobs), self.path)
        return len(blobs)

    def save(self) -> bool:
        """Write what this process compiled (with what was loaded) atomically; False when there was nothing new."""
        try:
            saved = torch.compiler.save_cache_artifacts()
            if saved is None:
                return False
            blobs = [b for b in self._loaded if b != saved[0]][-(MAX_BLOBS - 1):] + [saved[0]]
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            atomic_write(self.path, lambda tmp: _write(tmp, encode(blobs)))
        except Exception as e:
            log.warning("[onestep] could not save the compile cache %s (%s)", self.path, e)
            return False
        log.info("[onestep] saved compile artifacts to %s", self.path)
        return True


def _write(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
