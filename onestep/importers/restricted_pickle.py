"""A restricted unpickler for pickled diffusers UNets (SiD-LSG checkpoints hold {'ema': module}).

Nothing in the file is imported or run: classes under `diffusers.` and `torch.nn.` become inert stand-ins that
only record their state, tensors are rebuilt by torch's own weight-only rebuild functions (inner storages are
read with torch.load(weights_only=True)), and every other global the pickle names is refused with its name.
`extract_module` then walks the stand-ins and returns the state dict and config of the pickled module.
"""
from __future__ import annotations

import collections
import io
import pickle

import torch

ALLOWED_STUB_PREFIXES = ("diffusers.", "torch.nn.")


class PickleRefused(pickle.UnpicklingError):
    """The pickle names a global outside the allow-list."""


class Stub(dict):
    """Inert stand-in for an allowed class: keeps its pickled state, runs none of its code."""

    _qualname = "?"

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) == 2:  # (dict state, slot state)
            state = {**(state[0] or {}), **(state[1] or {})}
        self.__dict__.update(state or {})


_stub_classes: dict[str, type] = {}


def _stub(qualname: str) -> type:
    if qualname not in _stub_classes:
        _stub_classes[qualname] = type(qualname.rsplit(".", 1)[-1], (Stub,), {"_qualname": qualname})
    return _stub_classes[qualname]


def _reconstructor(cls, base, state):
    """copyreg._reconstructor without calling any base class constructor."""
    if not (isinstance(cls, type) and issubclass(cls, Stub)):
        raise PickleRefused(f"copyreg._reconstructor of {cls!r} is not allowed")
    return cls()


def _load_storage_bytes(b: bytes):
    """torch.storage._load_from_bytes, but weights-only."""
    return torch.load(io.BytesIO(b), weights_only=True)


_TORCH_FUNCS = {
    ("torch._utils", "_rebuild_tensor"): torch._utils._rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch.storage", "_load_from_bytes"): _load_storage_bytes,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("copyreg", "_reconstructor"): _reconstructor,
    ("torch", "Size"): torch.Size,
    ("torch", "device"): torch.device,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
}


class RestrictedUnpickler(pickle.Unpickler):
    """Admits torch weight rebuilding and inert diffusers/torch.nn stand-ins; refuses all else."""

    def find_class(self, module: str, name: str):
        if (module, name) in _TORCH_FUNCS:
            return _TORCH_FUNCS[(module, name)]
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        qualname = f"{module}.{name}"
        if qualname.startswith(ALLOWED_STUB_PREFIXES) and name[:1].isupper():
            return _stub(qualname)
        raise PickleRefused(f"the pickle names {qualname}, which is not a torch or diffusers class; refusing to load it")


def restricted_load(path: str):
    """Unpickle `path` with the restricted unpickler."""
    with open(path, "rb") as f:
        return RestrictedUnpickler(f).load()


def find_module(obj, class_name: str, key_hint: str = "ema"):
    """The first stand-in of `class_name` in obj (preferring obj[key_hint] when obj is a dict)."""
    if isinstance(obj, dict) and not isinstance(obj, Stub) and key_hint in obj:
        obj = obj[key_hint]
    stack = [obj]
    while stack:
        cur = stack.pop()
        if isinstance(cur, Stub) and cur._qualname.endswith("." + class_name):
            return cur
        if isinstance(cur, Stub):
            stack.extend(cur.__dict__.get("_modules", {}).values())
        elif isinstance(cur, dict):
            stack.extend(cur.values())
        elif isinstance(cur, (list, tuple)):
            stack.extend(cur)
    return None


def extract_module(module: Stub) -> tuple[dict[str, torch.Tensor], dict]:
    """(state dict, config) of a pickled nn.Module stand-in, as module.state_dict() would give."""
    sd: dict[str, torch.Tensor] = {}

    def walk(m: Stub, prefix: str) -> None:
        d = m.__dict__
        for group in ("_parameters", "_buffers"):
            for k, v in (d.get(group) or {}).items():
                if isinstance(v, torch.Tensor) and k not in d.get("_non_persistent_buffers_set", set()):
                    sd[prefix + k] = v.detach()
        for k, child in (d.get("_modules") or {}).items():
            if isinstance(child, Stub):
                walk(child, f"{prefix}{k}.")

    walk(module, "")
    config = dict(module.__dict__.get("_internal_dict") or {})
    return sd, config
