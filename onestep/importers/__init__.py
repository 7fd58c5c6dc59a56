"""Importers that write the pack's generator format from released one-step models.

Each importer is one function `import_<kind>(source, dest, **options) -> GeneratorMetadata`; IMPORTERS maps
the names the CLI and the node offer to them.
"""
from __future__ import annotations

from .diffusers_pipeline import import_diffusers_pipeline
from .dmd2 import import_dmd2
from .sid_lsg import import_sid_lsg

IMPORTERS = {
    "instaflow": import_diffusers_pipeline,
    "dmd2": import_dmd2,
    "sid-lsg": import_sid_lsg,
}
