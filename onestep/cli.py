"""Command line: `python -m onestep.cli import KIND SOURCE DEST` and `python -m onestep.cli info FILE`."""
from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict

from .atomic import DiskFullError
from .format import GeneratorFileError, read_metadata
from .importers import IMPORTERS
from .importers.common import ImportSourceError

log = logging.getLogger("onestep")


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    p = argparse.ArgumentParser(prog="python -m onestep.cli", description="One-step generator files: import and inspect.")
    sub = p.add_subparsers(dest="cmd", required=True)
    imp = sub.add_parser("import", help="write a generator file from a released one-step model")
    imp.add_argument("kind", choices=sorted(IMPORTERS), help="layout of the source")
    imp.add_argument("source", help="pipeline folder (instaflow), UNet state dict (dmd2) or pickle (sid-lsg)")
    imp.add_argument("dest", help="output .safetensors path")
    imp.add_argument("--base", default="auto", help="base architecture (default: detected from the weights)")
    imp.add_argument("--timestep", type=float, default=None, help="override the method's evaluation timestep")
    imp.add_argument("--guidance", type=float, default=None, help="CFG baked into the model, recorded as metadata")
    imp.add_argument("--method", default=None, help="instaflow or 2-rectified-flow (pipeline folders only)")
    imp.add_argument("--allow-pickle", action="store_true", help="opt in to reading pickles (sid-lsg) with the restricted unpickler")
    info = sub.add_parser("info", help="print a generator's metadata")
    info.add_argument("file")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.cmd == "info":
            print(json.dumps(asdict(read_metadata(args.file)), indent=2))
            return 0
        if not args.dest.endswith(".safetensors"):
            raise ImportSourceError("the output must be a .safetensors file")
        options = {"base": args.base, "guidance": args.guidance, "allow_pickle": args.allow_pickle}
        if args.timestep is not None:
            options["timestep"] = args.timestep
        if args.method:
            options["method"] = args.method
        meta = IMPORTERS[args.kind](args.source, args.dest, **options)
        log.info("wrote %s: %s", args.dest, json.dumps(asdict(meta)))
        return 0
    except (ImportSourceError, GeneratorFileError) as e:
        log.error("error: %s", e)
        return 2
    except DiskFullError as e:
        log.error("error: %s", e.strerror)
        return 2


if __name__ == "__main__":
    sys.exit(main())
