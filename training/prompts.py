"""Prompts-only training data (a prompts method such as SiD-LSG, training/methods/sid_lsg.py): the encoded prompts,
one item each ("context" [L, D], optional "pooled" [P], optional "size" [6]: SDXL size/crop conditioning, "prompt_index"),
and the empty prompt's conditioning for
classifier-free guidance. The node and the CLI encode the prompts (and "") with the teacher's text encoder
(training/text_encoder.py for the CLI); the proof-scale rows take rows of their context table."""
from __future__ import annotations

import torch


class PromptDataset(torch.utils.data.Dataset):
    """Encoded prompts as training items, plus `unconditional()`: the empty prompt's conditioning."""

    def __init__(self, context: torch.Tensor, unconditional: dict[str, torch.Tensor], pooled: torch.Tensor | None = None,
                 prompt_index: torch.Tensor | None = None, size: torch.Tensor | None = None):
        if context.ndim != 3:
            raise ValueError(f"prompt contexts must be [N, L, D], not {tuple(context.shape)}")
        if pooled is not None and len(pooled) != len(context):
            raise ValueError(f"{len(pooled)} pooled embeddings for {len(context)} prompts")
        if size is not None and size.shape != (len(context), 6):
            raise ValueError(f"size conditioning {tuple(size.shape)} for {len(context)} prompts: needs [{len(context)}, 6]")
        self.context, self.pooled, self.size = context, pooled, size
        self.prompt_index = torch.arange(len(context)) if prompt_index is None else prompt_index
        self._unconditional = dict(unconditional)

    def __len__(self) -> int:
        return len(self.context)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        item = {"context": self.context[i], "prompt_index": self.prompt_index[i]}
        if self.pooled is not None:
            item["pooled"] = self.pooled[i]
        if self.size is not None:
            item["size"] = self.size[i]
        return item

    def unconditional(self) -> dict[str, torch.Tensor]:
        """The empty prompt's conditioning {"context": [L, D], optional "pooled": [P], optional "size": [6]}."""
        return dict(self._unconditional)

    def repeated(self, count: int) -> PromptDataset:
        """The prompts cycled to `count` items (item i is prompt i mod N), e.g. to fill a batch larger than the list."""
        idx = torch.arange(count) % len(self)
        return PromptDataset(self.context[idx], self._unconditional, None if self.pooled is None else self.pooled[idx], self.prompt_index[idx],
                             None if self.size is None else self.size[idx])
