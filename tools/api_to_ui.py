"""Turn the API-format prompts in workflows/api/ into UI-format workflows (workflows/*.json) that ComfyUI's
template browser lists and the frontend loads. Widget order and slot types come from a running host's
/object_info, so the UI files always match the nodes' real schemas.

Usage: python -m tools.api_to_ui http://127.0.0.1:8188   (rewrites workflows/*.json)
"""
from __future__ import annotations

import glob
import json
import os
import sys
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}


def _inputs(info: dict) -> list[tuple[str, list]]:
    order = info.get("input_order") or {s: list(info["input"].get(s, {})) for s in ("required", "optional")}
    return [(name, info["input"][sec][name]) for sec in ("required", "optional") for name in order.get(sec, [])]


def _is_widget(spec: list) -> bool:
    return isinstance(spec[0], list) or spec[0] in WIDGET_TYPES


def convert(prompt: dict, object_info: dict) -> dict:
    """UI-format workflow for an API-format prompt."""
    ids = {key: i + 1 for i, key in enumerate(prompt)}
    depth: dict[str, int] = {}

    def level(key: str) -> int:
        if key not in depth:
            ups = [v[0] for v in prompt[key]["inputs"].values() if isinstance(v, list)]
            depth[key] = 1 + max((level(u) for u in ups), default=-1)
        return depth[key]

    nodes, links, per_column = [], [], {}
    outputs: dict[tuple[str, int], list[int]] = {}
    for key, node in prompt.items():
        info = object_info[node["class_type"]]
        ins, widgets = [], []
        for name, spec in _inputs(info):
            value = node["inputs"].get(name)
            if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
                link_id = len(links) + 1
                src_type = object_info[prompt[value[0]]["class_type"]]["output"][value[1]]
                links.append([link_id, ids[value[0]], value[1], ids[key], len(ins), src_type])
                outputs.setdefault((value[0], value[1]), []).append(link_id)
                ins.append({"name": name, "type": src_type, "link": link_id})
            elif _is_widget(spec) and value is not None:
                widgets.append(value)
                if spec[1:] and isinstance(spec[1], dict) and spec[1].get("control_after_generate"):
                    widgets.append("fixed")
            elif not _is_widget(spec):
                ins.append({"name": name, "type": spec[0], "link": None})
        col = level(key)
        row = per_column.get(col, 0)
        per_column[col] = row + 1
        nodes.append({
            "id": ids[key], "type": node["class_type"], "pos": [40 + 340 * col, 40 + 220 * row], "size": [300, 130],
            "flags": {}, "order": 0, "mode": 0, "inputs": ins,
            "outputs": [{"name": n, "type": t, "links": [], "slot_index": i} for i, (t, n) in enumerate(zip(info["output"], info["output_name"]))],
            "properties": {"Node name for S&R": node["class_type"]}, "widgets_values": widgets,
            "title": node.get("_meta", {}).get("title", info.get("display_name", node["class_type"])),
        })
    for n, key in zip(nodes, prompt):
        for out in n["outputs"]:
            out["links"] = outputs.get((key, out["slot_index"]), [])
    for i, key in enumerate(sorted(prompt, key=level)):
        nodes[list(prompt).index(key)]["order"] = i
    return {"last_node_id": len(nodes), "last_link_id": len(links), "nodes": nodes, "links": links, "groups": [],
            "config": {}, "extra": {}, "version": 0.4}


def main(url: str) -> None:
    with urllib.request.urlopen(url.rstrip("/") + "/object_info") as r:
        object_info = json.loads(r.read())
    for path in sorted(glob.glob(os.path.join(REPO, "workflows", "api", "*.json"))):
        ui = convert(json.load(open(path)), object_info)
        out = os.path.join(REPO, "workflows", os.path.basename(path))
        with open(out, "w") as f:
            json.dump(ui, f, indent=1)
        print("wrote", out)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8188")
