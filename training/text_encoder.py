"""Prompts → training data for the headless CLI (a prompts-only method such as SiD-LSG): the teacher's CLIP text
encoder from a diffusers pipeline folder (`tokenizer/` + `text_encoder/`, transformers' CLIPTokenizer and
CLIPTextModel), each prompt padded to the encoder's positions (77) and encoded to its last hidden state, as SD1.x/2.x
pipelines condition their UNet (SD2's folder already holds the text model without its last layer). The empty prompt
is encoded the same way, for classifier-free guidance. SDXL's two encoders and pooled embedding are the node's
(ComfyUI's CLIP); the CLI refuses them by name."""
from __future__ import annotations

import os

import torch

from .prompts import PromptDataset


class TextEncoderError(ValueError):
    """A text-encoder folder that cannot encode the prompts; the message names the problem."""


def _subfolder(folder: str, name: str) -> str:
    sub = os.path.join(folder, name)
    if not os.path.isdir(sub):
        raise TextEncoderError(f"{folder} has no {name}/ folder: give a diffusers pipeline folder (tokenizer/ and text_encoder/)")
    return sub


@torch.no_grad()
def encode_prompts(folder: str, prompts: list[str], device: torch.device | str = "cpu", batch: int = 64) -> PromptDataset:
    """The prompts (and "") encoded by the pipeline folder's CLIP text encoder, as a PromptDataset (float32, CPU)."""
    from transformers import CLIPTextModel, CLIPTokenizer

    if os.path.isdir(os.path.join(folder, "text_encoder_2")):
        raise TextEncoderError(f"{folder} is an SDXL-family pipeline (two text encoders and a pooled embedding): train it from the node")
    tokenizer = CLIPTokenizer.from_pretrained(_subfolder(folder, "tokenizer"))
    model = CLIPTextModel.from_pretrained(_subfolder(folder, "text_encoder")).to(device).eval()
    length = int(model.config.max_position_embeddings)

    def encode(texts: list[str]) -> torch.Tensor:
        ids = tokenizer(texts, padding="max_length", max_length=length, truncation=True, return_tensors="pt").input_ids
        return model(ids.to(device)).last_hidden_state.float().cpu()

    context = torch.cat([encode(prompts[i:i + batch]) for i in range(0, len(prompts), batch)])
    return PromptDataset(context, {"context": encode([""])[0]})


def weights_file(folder: str) -> str:
    """The weights file of a diffusers model folder (or of its pipeline's unet/)."""
    sub = os.path.join(folder, "unet")
    folder = sub if os.path.isdir(sub) else folder
    for name in ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin", "diffusion_pytorch_model.safetensors.index.json"):
        if os.path.isfile(os.path.join(folder, name)):
            return os.path.join(folder, name)
    raise TextEncoderError(f"{folder} holds no diffusion_pytorch_model weights file")
