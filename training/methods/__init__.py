"""The training methods the engine (training/engine.py) runs, by name (TrainConfig.method). A new method is one
module defining a `Method` subclass (base.py says what it must define) and one entry here."""
from __future__ import annotations

from .base import DATA_KEYS, PAIRS, PROMPTS, Backward, ExtraNetwork, Method, Phase, Resources
from .diffusion2gan import Diffusion2GAN
from .reflow import InstaFlow, InstaFlowGAN, Reflow
from .regression import Regression
from .sid_lsg import SidLSG

METHODS: dict[str, type[Method]] = {
    Regression.name: Regression,
    Diffusion2GAN.name: Diffusion2GAN,
    SidLSG.name: SidLSG,
    Reflow.name: Reflow,
    InstaFlow.name: InstaFlow,
    InstaFlowGAN.name: InstaFlowGAN,
}


def method_class(name: str) -> type[Method]:
    """The method registered under `name`; a ValueError names the known ones."""
    if name not in METHODS:
        raise ValueError(f"unknown training method {name!r}; known: {', '.join(sorted(METHODS))}")
    return METHODS[name]


def register(cls: type[Method]) -> type[Method]:
    """Add a method under its `name` (usable as a class decorator); refuses a name already taken by another class."""
    if METHODS.get(cls.name, cls) is not cls:
        raise ValueError(f"a training method named {cls.name!r} is already registered")
    METHODS[cls.name] = cls
    return cls


__all__ = ["DATA_KEYS", "METHODS", "PAIRS", "PROMPTS", "Backward", "ExtraNetwork", "Method", "Phase", "Resources", "method_class", "register"]
