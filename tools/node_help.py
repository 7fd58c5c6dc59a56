"""Write the node help pages the ComfyUI frontend shows in its node library (`web/docs/<NodeClass>.md`).

  python -m tools.node_help [--check]      (the ComfyUI tree on PYTHONPATH)

Every page is made from what the node itself declares in its V3 schema (`define_schema()`: the description, each
input's type, default, range and tooltip, each output's name and tooltip) plus the bundled workflows that use it (read
from workflows/api/) with the screenshot of the first (web/docs/workflows/<name>.png, made by the browser test with
ONESTEP_UPDATE_DOCS=1). So the pages cannot drift from the code: `--check` (and tests/test_comfy_inprocess_node_help.py)
fails when a page differs from what would be written.
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


def _input_line(spec) -> str:
    """The table row of one V3 input (comfy_api.latest.io.Input)."""
    kind = spec.get_io_type()
    kind_text = "choice" if kind == "COMBO" else str(kind)  # not its values: a file list depends on the models the user has
    facts = []
    default = getattr(spec, "default", None)
    if default is not None and not isinstance(default, (list, dict)):
        facts.append(f"default {default!r}" if isinstance(default, str) else f"default {default}")
    low, high = getattr(spec, "min", None), getattr(spec, "max", None)
    if low is not None or high is not None:
        facts.append(f"range {'…' if low is None else low}–{'…' if high is None else high}")
    if spec.optional:
        facts.append("optional")
    tip = " ".join(str(spec.tooltip or "").split())
    return f"| `{spec.id}` | {kind_text} | {'; '.join(facts)} | {tip} |"


def page(node) -> str:
    """The help page of one node class (io.ComfyNode), from its V3 schema."""
    schema = node.define_schema()
    lines = [f"# {schema.display_name or schema.node_id}", "", " ".join(str(schema.description or "").split()), ""]
    inputs = sorted(schema.inputs or [], key=lambda i: bool(i.optional))  # as the frontend shows them: required, then optional
    if inputs:
        lines += ["## Inputs", "", "| input | type | value | what it does |", "|---|---|---|---|", *map(_input_line, inputs), ""]
    lines += ["## Outputs", "", "| output | type | what it is |", "|---|---|---|"]
    for out in schema.outputs or []:
        lines.append(f"| `{out.display_name or out.io_type}` | {out.io_type} | {' '.join(str(out.tooltip or '').split())} |")
    lines.append("")
    used = workflows_using(schema.node_id)
    if used:
        titles = {k: w.title for k, w in WORKFLOWS.items()}
        lines += ["## In the bundled workflows", "", "Open them from the template browser (Workflow → Browse Templates → Extensions):", ""]
        lines += [f"- **{titles.get(w, w)}** — {WORKFLOWS[w].description}" if w in WORKFLOWS else f"- {w}" for w in used]
        lines.append("")
        shot = next((w for w in used if os.path.isfile(os.path.join(SCREENSHOTS, f"{w}.png"))), None)
        if shot:
            lines += [f"![{titles.get(shot, shot)} after a run](workflows/{shot}.png)", ""]
    return "\n".join(lines)


def pages(node_list: list) -> dict[str, str]:
    """file name (<node id>.md) → text of every node's page, by file name."""
    return dict(sorted((f"{node.define_schema().node_id}.md", page(node)) for node in node_list))


def _nodes() -> list:
    """The pack's node classes, as its entry point registers them (ComfyUI on the CPU)."""
    import comfy.cli_args

    comfy.cli_args.args.cpu = True
    from onestep_nodes import load_node_modules

    return load_node_modules()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.node_help", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="only compare: exit 1 when a page is missing or differs")
    args = ap.parse_args(argv)
    want = pages(_nodes())
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
