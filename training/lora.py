"""LoRA (Hu et al. 2021, "Low-Rank Adaptation"): W x + (α/r) · B A x with A ∈ R^{r×in}, B ∈ R^{out×r}, B = 0 at
the start, the base W frozen. Wrappers for nn.Linear and nn.Conv2d (A is a conv of the base's kernel, B a 1×1
conv, as kohya's LoCon). peft is not a dependency of the pack, so this is the small module itself.

Export: `lora_state_dict` gives `<module name>.lora_down.weight` (A), `.lora_up.weight` (B) and `.alpha` per
wrapped module, names as in the wrapped model (the ComfyUI node maps them to its LoRA key format);
`merged_state_dict` folds B A into W under the original key names.
"""
from __future__ import annotations

import math

import torch
from torch import nn


class LoRALayer(nn.Module):
    """A frozen base layer plus a trainable low-rank update."""

    def __init__(self, base: nn.Linear | nn.Conv2d, rank: int, alpha: float = 0.0):
        super().__init__()
        self.base = base
        self.rank = rank
        self.alpha = float(alpha or rank)
        for p in base.parameters():
            p.requires_grad_(False)
        if isinstance(base, nn.Linear):
            self.lora_down = nn.Linear(base.in_features, rank, bias=False)
            self.lora_up = nn.Linear(rank, base.out_features, bias=False)
        elif isinstance(base, nn.Conv2d):
            self.lora_down = nn.Conv2d(base.in_channels, rank, base.kernel_size, base.stride, base.padding, base.dilation, bias=False)
            self.lora_up = nn.Conv2d(rank, base.out_channels, 1, bias=False)
        else:
            raise TypeError(f"LoRA wraps nn.Linear or nn.Conv2d, not {type(base).__name__}")
        self.lora_down.to(base.weight.device, base.weight.dtype)
        self.lora_up.to(base.weight.device, base.weight.dtype)
        nn.init.kaiming_uniform_(self.lora_down.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_up.weight)

    @property
    def scale(self) -> float:
        return self.alpha / self.rank

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        return self.base(x, *args, **kwargs) + self.lora_up(self.lora_down(x)) * self.scale

    def delta_weight(self, down: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
        """B A · scale for given A (down) and B (up) weights, shaped like the base weight (float32)."""
        down, up = down.float(), up.float()
        if isinstance(self.base, nn.Linear):
            return (up @ down) * self.scale
        return torch.einsum("or,rihw->oihw", up.flatten(1), down) * self.scale


def add_lora(model: nn.Module, targets: list[str], rank: int, alpha: float = 0.0, generator: torch.Generator | None = None) -> list[str]:
    """Freeze all of `model` and replace each named target layer by a LoRALayer; the names wrapped."""
    for p in model.parameters():
        p.requires_grad_(False)
    wrapped = []
    for name in targets:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        layer = LoRALayer(getattr(parent, child), rank, alpha)
        if generator is not None:  # a seeded init, independent of the global RNG
            with torch.no_grad():
                bound = 1.0 / math.sqrt(layer.lora_down.weight[0].numel())
                w = (torch.rand(layer.lora_down.weight.shape, generator=generator) * 2 - 1) * bound
                layer.lora_down.weight.copy_(w)
        setattr(parent, child, layer)
        wrapped.append(name)
    if not wrapped:
        raise ValueError("no layers to wrap with LoRA: the model has no attention/feed-forward layers by those names")
    return wrapped


def lora_layers(model: nn.Module) -> dict[str, LoRALayer]:
    """The LoRA layers of a model by module name."""
    return {n: m for n, m in model.named_modules() if isinstance(m, LoRALayer)}


def lora_state_dict(model: nn.Module, params: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """`<name>.lora_down.weight`, `<name>.lora_up.weight`, `<name>.alpha` for every LoRA layer (float32, CPU);
    `params` (e.g. the EMA weights, keyed like model.named_parameters) replaces the live weights."""
    params = params or {}
    out = {}
    for name, layer in lora_layers(model).items():
        for part in ("lora_down", "lora_up"):
            key = f"{name}.{part}.weight"
            out[key] = params.get(key, getattr(layer, part).weight).detach().float().cpu().contiguous()
        out[f"{name}.alpha"] = torch.tensor(layer.alpha)
    return out


def merged_state_dict(model: nn.Module, params: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """The model's state dict with every LoRA update folded into its base weight, under the original names."""
    params = params or {}
    sd = {k: params.get(k, v).detach() for k, v in model.state_dict().items()}
    for name, layer in lora_layers(model).items():
        delta = layer.delta_weight(sd.pop(f"{name}.lora_down.weight"), sd.pop(f"{name}.lora_up.weight"))
        w = sd.pop(f"{name}.base.weight")
        # a base stored in 16 bits (frozen_dtype) gets the update in float32: rounding W + ΔW to bf16 would lose most of ΔW
        sd[f"{name}.weight"] = (w.float() + delta).to(torch.promote_types(w.dtype, torch.float32))
        if f"{name}.base.bias" in sd:
            sd[f"{name}.bias"] = sd.pop(f"{name}.base.bias")
    return sd
