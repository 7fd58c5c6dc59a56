"""Write the node help pages the ComfyUI frontend shows in its node library (`web/docs/<NodeClass>.md`).

  python -m tools.node_help [--check]      (the ComfyUI tree on PYTHONPATH)

Every page is made from what the node itself declares — DESCRIPTION, each input's type, default, range and tooltip,
each output's tooltip — plus the bundled workflows that use it (read from workflows/api/) with the screenshot of the
first (web/docs/workflows/<name>.png, made by the browser test with ONESTEP_UPDATE_DOCS=1). So the pages cannot drift
from the code: `--check` (and tests/test_core_node_help.py) fails when a page differs from what would be written.
The frontend fetches /extensions/<pack folder>/docs/<NodeClass>.md (WEB_DIRECTORY = ./web in __init__.py) and
resolves the pictures' relative paths against that folder.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from tools.api_to_ui import WORKFLOWS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(REPO, "web", "docs")
SCREENSHOTS = os.path.join(DOCS, "workflows")
API_WORKFLOWS = os.path.join(REPO, "workflows", "api")


def workflows_using(node_class: str) -> list[str]:
    """The API twins (names without .json) whose graph has a node of this class, in the README's order of the
    workflows (tools/api_to_ui.WORKFLOWS: the first is the one whose screenshot the page shows)."""
    order = {name: i for i, name in enumerate(WORKFLOWS)}
    found = []
    for name in sorted(os.listdir(API_WORKFLOWS)):
        if not name.endswith(".json"):
            continue
        with open(os.path.join(API_WORKFLOWS, name), encoding="utf-8") as f:
            graph = json.load(f)
        if any(isinstance(n, dict) and n.get("class_type") == node_class for n in graph.values()):
            found.append(name[:-5])
    return sorted(found, key=lambda n: (order.get(n, len(order)), n))


def _input_line(name: str, spec, optional: bool) -> str:
    kind, opts = spec[0], (spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {})
    if isinstance(kind, (list, tuple)):
        kind_text = "choice"  # not its values: a file list depends on the models the user has (the tooltip says what to pick)
    else:
        kind_text = str(kind)
    facts = []
    if "default" in opts and not isinstance(opts["default"], (list, dict)):
        facts.append(f"default {opts['default']!r}" if isinstance(opts["default"], str) else f"default {opts['default']}")
    if "min" in opts or "max" in opts:
        facts.append(f"range {opts.get('min', '…')}–{opts.get('max', '…')}")
    if optional:
        facts.append("optional")
    tip = " ".join(str(opts.get("tooltip", "")).split())
    return f"| `{name}` | {kind_text} | {'; '.join(facts)} | {tip} |"


def page(node_class: str, cls, display_name: str) -> str:
    """The help page of one node class."""
    lines = [f"# {display_name}", "", " ".join(str(getattr(cls, "DESCRIPTION", "")).split()), ""]
    spec = cls.INPUT_TYPES()
    rows = [_input_line(k, v, sec == "optional") for sec in ("required", "optional") for k, v in spec.get(sec, {}).items()]
    if rows:
        lines += ["## Inputs", "", "| input | type | value | what it does |", "|---|---|---|---|", *rows, ""]
    names = getattr(cls, "RETURN_NAMES", None) or cls.RETURN_TYPES
    tips = getattr(cls, "OUTPUT_TOOLTIPS", None) or [""] * len(names)
    lines += ["## Outputs", "", "| output | type | what it is |", "|---|---|---|"]
    lines += [f"| `{n}` | {t} | {' '.join(str(tip).split())} |" for n, t, tip in zip(names, cls.RETURN_TYPES, tips)]
    lines.append("")
    used = workflows_using(node_class)
    if used:
        titles = {k: w.title for k, w in WORKFLOWS.items()}
        lines += ["## In the bundled workflows", "", "Open them from the template browser (Workflow → Browse Templates → Extensions):", ""]
        lines += [f"- **{titles.get(w, w)}** — {WORKFLOWS[w].description}" if w in WORKFLOWS else f"- {w}" for w in used]
        lines.append("")
        shot = next((w for w in used if os.path.isfile(os.path.join(SCREENSHOTS, f"{w}.png"))), None)
        if shot:
            lines += [f"![{titles.get(shot, shot)} after a run](workflows/{shot}.png)", ""]
    return "\n".join(lines)


def pages(mappings: dict, display: dict) -> dict[str, str]:
    """file name → text of every node's page."""
    return {f"{k}.md": page(k, cls, display.get(k, k)) for k, cls in sorted(mappings.items())}


def _mappings() -> tuple[dict, dict]:
    """The pack's node classes and display names, as its entry point registers them (ComfyUI on the CPU)."""
    import comfy.cli_args

    comfy.cli_args.args.cpu = True
    from onestep_nodes import load_node_modules

    return load_node_modules()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.node_help", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="only compare: exit 1 when a page is missing or differs")
    args = ap.parse_args(argv)
    want = pages(*_mappings())
    stale = []
    for name, text in want.items():
        path = os.path.join(DOCS, name)
        old = open(path, encoding="utf-8").read() if os.path.isfile(path) else None
        if old != text:
            stale.append(name)
            if not args.check:
                os.makedirs(DOCS, exist_ok=True)
                with open(path, "w", encoding="utf-8") as f:
                    f.write(text)
    extra = sorted(f for f in os.listdir(DOCS) if f.endswith(".md") and f not in want) if os.path.isdir(DOCS) else []
    if args.check:
        for name in stale + extra:
            print(f"stale or extra help page: web/docs/{name} (run python -m tools.node_help)")
        return 1 if stale or extra else 0
    print(f"wrote {len(stale)} of {len(want)} help pages in {os.path.relpath(DOCS, REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
