"""Teacher-pairs command line.

  python -m onestep.pairs.cli validate DIR          check a dataset and report what it holds (exit 1 if invalid)
  python -m onestep.pairs.cli collect --checkpoint CKPT --prompts FILE --out DIR [...]
  python -m onestep.pairs.cli collect --generator 2RF.safetensors --clip CLIP --scheduler simple --cfg 1 --prompts FILE --out DIR
      collect headless with ComfyUI's model loading and sampling as a library (ComfyUI tree on PYTHONPATH);
      under `torchrun --nproc_per_node N` each rank makes its own shards (k mod N = rank), same files as one process.
"""
from __future__ import annotations

import argparse
import logging
import sys

from .validate import validate

log = logging.getLogger("onestep")


def comfy_adapter():
    """The pack's ComfyUI-side collection module (ComfyUI tree on PYTHONPATH); only `collect` needs the host."""
    from onestep_nodes.headless import use_cpu_without_gpu

    use_cpu_without_gpu()
    from onestep_nodes import pair_collection

    return pair_collection


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    ap = argparse.ArgumentParser(prog="python -m onestep.pairs.cli", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("validate", help="check a dataset and report what it holds")
    v.add_argument("folder")
    c = sub.add_parser("collect", help="collect teacher pairs headless (also under torchrun)")
    c.add_argument("--checkpoint", help="checkpoint with UNet + text encoder (+ VAE), as CheckpointLoaderSimple loads it")
    c.add_argument("--unet", help="a diffusion-model file (UNETLoader) instead of --checkpoint's UNet")
    c.add_argument("--generator", help=(
        "a generator file of the pack (Load One-Step Generator) as the teacher instead of --checkpoint's UNet, e.g. a "
        "2-rectified-flow file for InstaFlow's pairs (--scheduler simple --cfg 1: its own Euler ODE)"))
    c.add_argument("--clip", help="a text-encoder file (CLIPLoader) instead of --checkpoint's")
    c.add_argument("--clip-type", default="stable_diffusion", help="CLIPLoader type of --clip (stable_diffusion, sdxl, ...)")
    c.add_argument("--prompts", help="prompt file: .txt one per line, .tsv/.csv with a prompt column")
    c.add_argument("--prompt", action="append", default=[], help="a prompt (repeatable; added before the file's)")
    c.add_argument("--column", default="prompt", help="column of a .tsv/.csv prompt file")
    c.add_argument("--negative", default="", help="negative prompt")
    c.add_argument("--sampler", default="euler", help="deterministic ODE sampler (ancestral/SDE samplers are refused)")
    c.add_argument("--scheduler", default="normal")
    c.add_argument("--steps", type=int, default=25)
    c.add_argument("--cfg", type=float, default=7.5)
    c.add_argument("--seed", type=int, default=0, help="seed of item 0; item i uses seed + i")
    c.add_argument("--count", type=int, required=True, help="number of pairs")
    c.add_argument("--width", type=int, default=512)
    c.add_argument("--height", type=int, default=512)
    c.add_argument("--batch-size", type=int, default=8)
    c.add_argument("--shard-size", type=int, default=0, help="items per shard (a multiple of the batch size; default 8 batches)")
    size = ("WIDTH", "HEIGHT", "CROP_W", "CROP_H", "TARGET_WIDTH", "TARGET_HEIGHT")
    c.add_argument("--size-conditioning", type=int, nargs=6, metavar=size, help=(
        "SDXL: the prompts' size settings, as CLIP Text Encode SDXL's inputs (default: original = target = the image size, no crop)"))
    c.add_argument("--negative-size-conditioning", type=int, nargs=6, metavar=size, help="SDXL: the negative's (default: --size-conditioning's)")
    c.add_argument("--fast-teacher", choices=("off", "cuda-graph", "compile"), default="off", help=(
        "replay the teacher's UNet calls from CUDA graphs inside core's sampling (compile: also torch.compile, artifacts "
        "cached in ComfyUI's user folder); used only where eligible (CUDA, model fully loaded, plain prompts; SD1.x/2.x or SDXL), else core's path"))
    c.add_argument("--out", required=True, help="dataset folder (resumed if it exists with the same settings)")
    args = ap.parse_args(argv)
    if args.cmd == "validate":
        report = validate(args.folder)
        print(report.text())
        return 0 if report.ok else 1
    return comfy_adapter().collect_headless(args)


if __name__ == "__main__":
    sys.exit(main())
