"""Command line: `python -m latent_lpips.cli convert SRC DEST [--encoder sd15]` and `... info FILE`."""
from __future__ import annotations

import argparse
import json
import logging
import sys

from .weights import WeightsFileError, convert, load

log = logging.getLogger("latent_lpips")


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    p = argparse.ArgumentParser(prog="python -m latent_lpips.cli", description="E-LatentLPIPS weight files.")
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("convert", help="published .pth / .pth.tar → safetensors")
    c.add_argument("src")
    c.add_argument("dest")
    c.add_argument("--encoder", default=None, help="sd15|sd21|sdxl|sd3|flux (default: from the file name, else custom-<C>)")
    i = sub.add_parser("info", help="what a weights file holds")
    i.add_argument("file")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.cmd == "convert":
            if not args.dest.endswith(".safetensors"):
                raise WeightsFileError("the output must be a .safetensors file")
            log.info("wrote %s: %s", args.dest, json.dumps(convert(args.src, args.dest, args.encoder)))
        else:
            print(json.dumps(load(args.file)[2], indent=2))
        return 0
    except WeightsFileError as e:
        log.error("error: %s", e)
        return 2


if __name__ == "__main__":
    sys.exit(main())
