"""Turn the API-format prompts in workflows/api/ into the UI-format workflows the template browser lists.

`workflows/api/<name>.json` is the source of truth (the tests queue it as it is). This tool writes
`workflows/<title>.json`, the file the frontend loads, where <title> is the workflow's title in `WORKFLOWS`: in the
frontends tested (1.32.9 and 1.35.9, both on ComfyUI 0.3.75: README, Tests) a custom-node template's title and
description are its file name, and `<title>.jpg` beside it is its thumbnail.

What the frontend queues from a UI file (`app.graphToPrompt()`) must equal the API twin. The frontend fills a node's
widgets POSITIONALLY from `widgets_values`, so this tool writes exactly what the frontend itself serialises:
- one value per widget input, in input order (required, then optional), including inputs fed by a link (the widget
  keeps its slot) and optional inputs the prompt leaves out (their default);
- after an INT widget the "control after generate" value (`fixed`) whenever the frontend adds that widget: the input
  asks for it, or it is named `seed`/`noise_seed` and does not refuse it;
- after a COMBO with `image_upload` the upload button's value (`image`);
- node inputs: the socket-only inputs first, then every widget input with `widget: {name}` (link target slots index
  this list).
Node ids are the prompt's ids, so the queued prompt has the same keys.

Layout: nodes sit on a grid in titled groups, one per step (load → prompt → generate → decode/save; collect → train →
try the result), ordered by dependency inside a group; a Note (a frontend-only node, not queued) says what to change;
`extra.ds` opens the workflow at a readable zoom. Node sizes are generous estimates of the frontend's own
(`computeSize`); tests/test_browser_workflows.py checks in the real frontend that no two nodes overlap.

Usage: python -m tools.api_to_ui http://127.0.0.1:8188   (needs the pack's host running: widget order and defaults
come from its /object_info; rewrites workflows/*.json)
"""
from __future__ import annotations

import glob
import json
import os
import sys
import urllib.request
from dataclasses import dataclass

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
SEED_NAMES = ("seed", "noise_seed")  # INT inputs the frontend gives a "control after generate" widget by name
ZOOM = 0.85  # extra.ds scale a workflow opens at


@dataclass(frozen=True)
class Workflow:
    """What the template browser and the Note show for one workflow."""

    title: str  # the UI file's name: the template's title (cards cut it after ~32 characters) and, dashes and
    # underscores as spaces, its description; no characters Windows forbids in file names
    description: str  # one line: README table and the Note's first line
    change: str  # the Note: what a user changes first
    thumbnail: str  # API node id of the SaveImage whose first image becomes the template's thumbnail


WORKFLOWS = {  # API twin name (workflows/api/<name>.json) → its UI workflow
    "fmnist_text_to_image": Workflow(
        "Fashion-MNIST, 1 step vs 50 steps",
        "The embedded trained default: the one-step student beside its 50-step teacher, from a class name.",
        "Type a class name in the Prompt: T-shirt/top, Trouser, Pullover, Dress, Coat, Sandal, Shirt, Sneaker, Bag, "
        "Ankle boot. Change the seed of both samplers to get other garments.",
        "5"),
    "text_to_image": Workflow(
        "Text to image in one step",
        "Load a one-step generator, encode a prompt, generate in one UNet call, decode and save.",
        "Pick your generator file in Load One-Step Generator (models/onestep), a CLIP and a VAE that match its base, "
        "then write the Prompt. Width/height/batch are on One-Step Generate. The default files are random-weight "
        "placeholders: their images are noise.",
        "7"),
    "text_to_image_controlnet": Workflow(
        "Text to image with ControlNet",
        "One-step generation steered by a ControlNet hint image, through core's Apply ControlNet.",
        "Load your ControlNet and hint image, set the strength on Apply ControlNet, write the Prompt. The generator "
        "ignores the negative at CFG 1, but ControlNet needs one.",
        "7"),
    "sampler_custom_onestep": Workflow(
        "One-step sampler in SamplerCustom",
        "The generator driven by core SamplerCustom with the pack's One-Step Sampler and One-Step Sigmas.",
        "Pick your generator, CLIP and VAE in step 1, write the Prompt. Keep CFG at 1 (the guidance is baked into the "
        "generator); One-Step Sigmas' denoise below 1 starts from a noised latent.",
        "7"),
    "latent_perceptual_diff": Workflow(
        "Latent perceptual diff heat map",
        "Compare two generated latents with E-LatentLPIPS: a per-item table and a heat map of where they differ.",
        "Feed any two LATENTs into Latent Perceptual Diff (a batch of 1 is compared with every item of the other). "
        "Pick E-LatentLPIPS weights for your latent space (models/latent_lpips); more draws average more augmentations.",
        "7"),
    "collect_teacher_pairs": Workflow(
        "Collect teacher pairs",
        "Record (noise, prompt, teacher latent) pairs from any ComfyUI model into a dataset for training.",
        "Load your teacher (UNet, CLIP, VAE), put one prompt per line (or a prompt file), set count, size, steps and "
        "CFG, and name the dataset (models/onestep_pairs/<name>). Running again resumes an unfinished dataset.",
        "5"),
    "distill_diffusion2gan": Workflow(
        "Distill a one-step generator",
        "Collect teacher pairs, train a one-step student on them, then compare it with the teacher.",
        "This runs in minutes on a CPU with a tiny random teacher. For a real run load your teacher, raise count and "
        "steps, set lr and batch size, and give the generator a name; running again resumes training.",
        "12"),
    "distill_instaflow": Workflow(
        "Distill InstaFlow via reflow",
        "Teacher pairs, reflow to a 2-rectified flow, its own Euler pairs, InstaFlow one-step distillation, then compare.",
        "This runs in minutes on a CPU with a tiny random teacher. For a real run load your teacher, raise count and "
        "steps; sample the 2-RF with KSampler euler + simple (1-8 steps); train InstaFlow with mse, then again with "
        "E-LatentLPIPS and init_from set to the first run's file. Running again resumes training.",
        "14"),
    "distill_sid_lsg": Workflow(
        "Distill from prompts with SiD-LSG",
        "Train a one-step student from prompts only (no pairs, no images) with SiD-LSG, then compare it with the teacher.",
        "This runs in minutes on a CPU with a tiny random teacher. For a real run load your teacher and its CLIP, put one "
        "prompt per line (or a prompt file from input/), raise steps and size, and name the generator; running again resumes. "
        "To fine-tune a Train Diffusion2GAN student instead of the teacher (the pack's best recipe), give its file in init_from.",
        "12"),
    "distill_two_stage": Workflow(
        "Distill in two stages (best)",
        "The pack's best measured recipe: teacher pairs, Diffusion2GAN, then SiD-LSG from that student with the recall anchor.",
        "This runs in minutes on a CPU with a tiny random teacher. For a real run load your teacher and its CLIP, raise count, "
        "size and both trainers' steps. Stage 2 keeps the guidance in the teacher (kappa1 = kappa2 = 1, kappa4 = the pairs' "
        "CFG) and regresses toward the pairs at anchor_weight 0.25; running again resumes each stage.",
        "14"),
}

# Steps, in pipeline order: group title and colour. A node's step comes from its class (STEP_OF_CLASS), except in a
# training workflow, where what is neither loading, collecting nor training is "try the result".
STEPS = {
    "load": ("Load models", "#3f789e"),
    "prompt": ("Prompt", "#8A8"),
    "collect": ("Collect teacher pairs", "#a1309b"),
    "train": ("Train", "#b06634"),
    "generate": ("Generate", "#88A"),
    "try": ("Try the result", "#88A"),
    "decode": ("Decode and save", "#b58b2a"),
}
STEP_OF_CLASS = {
    "prompt": {"CLIPTextEncode", "ControlNetApplyAdvanced", "ControlNetApply", "ConditioningCombine"},
    "generate": {"OneStepGenerate", "KSampler", "KSamplerAdvanced", "SamplerCustom", "SamplerCustomAdvanced",
                 "EmptyLatentImage", "OneStepSampler", "OneStepSigmas", "KSamplerSelect", "RandomNoise", "BasicGuider"},
    "decode": {"VAEDecode", "OneStepVAEDecode", "SaveImage", "PreviewImage", "SaveLatent", "OneStepLatentPerceptualDiff"},
    "collect": {"OneStepCollectTeacherPairs"},
    "train": {"OneStepTrainDiffusion2GAN", "OneStepTrainReflow", "OneStepTrainInstaFlow", "OneStepTrainSiDLSG"},
}

GAP_X, GAP_Y = 60, 70  # between nodes (a node's title bar, 30 px, sits above its pos)
GROUP_PAD, GROUP_HEAD = 20, 50  # group border and title band
ROW_WIDTH = 3000  # groups wrap to a new row past this


def _inputs(info: dict) -> list[tuple[str, list]]:
    order = info.get("input_order") or {s: list(info["input"].get(s, {})) for s in ("required", "optional")}
    return [(name, info["input"][sec][name]) for sec in ("required", "optional") for name in order.get(sec, [])]


def _opts(spec: list) -> dict:
    return spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}


def _is_widget(spec: list) -> bool:
    return (isinstance(spec[0], list) or spec[0] in WIDGET_TYPES) and not _opts(spec).get("forceInput")


def _kind(spec: list) -> str:
    return "COMBO" if isinstance(spec[0], list) else spec[0]


def _default(spec: list):
    opts = _opts(spec)
    if "default" in opts:
        return opts["default"]
    if isinstance(spec[0], list):
        return spec[0][0] if spec[0] else ""
    return opts.get("options", [""])[0] if spec[0] == "COMBO" else {"INT": 0, "FLOAT": 0.0, "STRING": "", "BOOLEAN": False}[spec[0]]


def _is_link(value) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)


def widget_values(name: str, spec: list, value) -> list:
    """The widgets_values slots the frontend gives one widget input (its value, then any control values)."""
    opts, kind = _opts(spec), _kind(spec)
    out = [value]
    if kind == "INT" and opts.get("control_after_generate", name in SEED_NAMES):
        out.append("fixed")
    if kind == "COMBO":
        if opts.get("control_after_generate"):
            raise NotImplementedError(f"{name}: a COMBO with control_after_generate (the frontend adds a filter widget too)")
        if opts.get("image_upload"):
            out.append("image")
        elif any(k.endswith("_upload") and v for k, v in opts.items()):
            raise NotImplementedError(f"{name}: upload widgets other than image_upload")
    return out


def complete(prompt: dict, object_info: dict) -> dict:
    """The prompt with every widget input the frontend would send (absent ones at their default), in input order."""
    out = {}
    for key, node in prompt.items():
        info = object_info[node["class_type"]]
        given = node["inputs"]
        inputs = {name: given[name] if name in given else _default(spec) for name, spec in _inputs(info)
                  if name in given or _is_widget(spec)}
        unknown = set(given) - set(inputs)
        if unknown:
            raise ValueError(f"node {key} ({node['class_type']}): unknown inputs {sorted(unknown)}")
        out[key] = {**node, "inputs": inputs}
    return out


def _size(info: dict, class_type: str, title: str) -> tuple[int, int]:
    """A generous estimate of the frontend's node size (body, without the 30 px title bar); a long title widens it."""
    specs = _inputs(info)
    widgets = sum(len(widget_values(n, s, None)) for n, s in specs if _is_widget(s))
    multiline = sum(1 for _, s in specs if _is_widget(s) and _opts(s).get("multiline"))
    sockets = max(sum(1 for _, s in specs if not _is_widget(s)), len(info["output"]))
    width = max(400 if multiline else 320, 8 * len(title) + 60)
    if class_type in ("SaveImage", "PreviewImage", "LoadImage"):
        return width, 340  # room for the image preview
    return width, 20 * sockets + 26 * (widgets - multiline) + 110 * multiline + 30


def _title(node: dict, object_info: dict) -> str:
    info = object_info[node["class_type"]]
    return node.get("_meta", {}).get("title", info.get("display_name", node["class_type"]))


def _steps(prompt: dict, depth: dict[str, int]) -> dict[str, str]:
    of_class = {c: step for step, classes in STEP_OF_CLASS.items() for c in classes}
    step = {k: of_class.get(n["class_type"], "load") for k, n in prompt.items()}
    trainers = [k for k, s in step.items() if s in ("collect", "train")]
    if trainers:
        ups: dict[str, set[str]] = {}

        def upstream(k: str) -> set[str]:
            if k not in ups:
                direct = {v[0] for v in prompt[k]["inputs"].values() if _is_link(v)}
                ups[k] = direct.union(*(upstream(u) for u in direct)) if direct else set()
            return ups[k]

        feeds_training = set().union(*(upstream(t) for t in trainers))
        for k, s in step.items():
            srcs = {v[0] for v in prompt[k]["inputs"].values() if _is_link(v)}
            if s in ("collect", "train", "load") or k in feeds_training:
                continue
            # a Save node of a training output (loss curve, previews) stays with the training step
            step[k] = step[next(iter(srcs))] if len(srcs) == 1 and step[next(iter(srcs))] in ("collect", "train") else "try"
    return step


def _layout(prompt: dict, object_info: dict, note_size: tuple[int, int]):
    """Node positions and sizes, the groups and the Note's position."""
    depth: dict[str, int] = {}

    def level(key: str) -> int:
        if key not in depth:
            ups = [v[0] for v in prompt[key]["inputs"].values() if _is_link(v)]
            depth[key] = 1 + max((level(u) for u in ups), default=-1)
        return depth[key]

    for k in prompt:
        level(k)
    step = _steps(prompt, depth)
    pos, size, groups = {}, {}, []
    x0, y0 = 0, 0
    note_pos = [x0, y0 + GROUP_HEAD]
    x, y, row_h = x0 + note_size[0] + GAP_X, y0, note_size[1] + GROUP_HEAD
    for s in sorted(set(step.values()), key=list(STEPS).index):
        members = [k for k in prompt if step[k] == s]
        local: dict[str, int] = {}
        for k in sorted(members, key=lambda k: depth[k]):
            ups = [v[0] for v in prompt[k]["inputs"].values() if _is_link(v) and v[0] in members]
            local[k] = 1 + max((local[u] for u in ups), default=-1)
        cols = [[k for k in members if local[k] == c] for c in range(max(local.values()) + 1)]
        for k in members:
            size[k] = _size(object_info[prompt[k]["class_type"]], prompt[k]["class_type"], _title(prompt[k], object_info))
        widths = [max(size[k][0] for k in col) for col in cols]
        heights = [sum(size[k][1] + 30 for k in col) + GAP_Y * (len(col) - 1) for col in cols]
        gw = sum(widths) + GAP_X * (len(cols) - 1) + 2 * GROUP_PAD
        gh = max(heights) + GROUP_HEAD + GROUP_PAD
        if x + gw > ROW_WIDTH and x > x0 + note_size[0] + GAP_X:
            x, y, row_h = x0 + note_size[0] + GAP_X, y + row_h + GAP_Y, 0
        cx = x + GROUP_PAD
        for col, w in zip(cols, widths):
            cy = y + GROUP_HEAD + 30  # the node's title bar sits above its pos
            for k in col:
                pos[k] = [cx, cy]
                cy += size[k][1] + 30 + GAP_Y
            cx += w + GAP_X
        groups.append({"title": STEPS[s][0], "bounding": [x, y, gw, gh], "color": STEPS[s][1], "font_size": 24, "flags": {}})
        x += gw + GAP_X
        row_h = max(row_h, gh)
    for i, g in enumerate(groups):
        g["title"] = f"{i + 1}. {g['title']}"
    return pos, size, groups, note_pos


def convert(prompt: dict, object_info: dict, doc: Workflow | None = None) -> dict:
    """UI-format workflow for an API-format prompt (ids kept), laid out in step groups with a Note."""
    prompt = complete(prompt, object_info)
    ids = {key: int(key) for key in prompt}
    note_text = f"{doc.description}\n\nWhat to change: {doc.change}" if doc else ""
    note_size = (340, 40 + 16 * (len(note_text) // 40 + 4)) if doc else (0, 0)
    pos, size, groups, note_pos = _layout(prompt, object_info, note_size)
    nodes, links = [], []
    outputs: dict[tuple[str, int], list[int]] = {}
    for key, node in prompt.items():
        info = object_info[node["class_type"]]
        sockets, widget_inputs, widgets = [], [], []
        for name, spec in _inputs(info):
            value = node["inputs"].get(name)
            entry = {"name": name, "type": _kind(spec) if _is_widget(spec) else spec[0], "link": None}
            if _is_link(value):
                link_id = len(links) + 1
                entry["link"] = link_id
                links.append([link_id, ids[value[0]], value[1], ids[key], None, object_info[prompt[value[0]]["class_type"]]["output"][value[1]]])
                outputs.setdefault((value[0], value[1]), []).append(link_id)
            if _is_widget(spec):
                entry["widget"] = {"name": name}
                widget_inputs.append(entry)
                widgets += widget_values(name, spec, _default(spec) if _is_link(value) or value is None else value)
            else:
                sockets.append(entry)
        ins = sockets + widget_inputs
        for slot, entry in enumerate(ins):
            if entry["link"] is not None:
                links[entry["link"] - 1][4] = slot
        nodes.append({
            "id": ids[key], "type": node["class_type"], "pos": pos[key], "size": list(size[key]),
            "flags": {}, "order": 0, "mode": 0, "inputs": ins,
            "outputs": [{"name": n, "type": t, "links": [], "slot_index": i} for i, (t, n) in enumerate(zip(info["output"], info["output_name"]))],
            "properties": {"Node name for S&R": node["class_type"]}, "widgets_values": widgets,
            "title": _title(node, object_info),
        })
    for n, key in zip(nodes, prompt):
        for out in n["outputs"]:
            out["links"] = outputs.get((key, out["slot_index"]), [])
    order = sorted(prompt, key=lambda k: (pos[k][0], pos[k][1]))
    for n, key in zip(nodes, prompt):
        n["order"] = order.index(key)
    last_id = max(ids.values())
    if doc:
        last_id += 1
        nodes.append({"id": last_id, "type": "Note", "pos": note_pos, "size": list(note_size), "flags": {}, "order": len(nodes),
                      "mode": 0, "inputs": [], "outputs": [], "properties": {}, "widgets_values": [note_text],
                      "title": "Note: what to change", "color": "#432", "bgcolor": "#653"})
    left = min(min(g["bounding"][0] for g in groups), note_pos[0])
    top = min(g["bounding"][1] for g in groups)
    # the top-left group lands right of the sidebar and below the menu bar and tabs (about 80 and 150 px)
    ds = {"scale": ZOOM, "offset": [round(90 / ZOOM - left, 1), round(150 / ZOOM - top, 1)]}
    return {"last_node_id": last_id, "last_link_id": len(links), "nodes": nodes, "links": links, "groups": groups,
            "config": {}, "extra": {"ds": ds}, "version": 0.4}


def ui_path(name: str) -> str:
    """The UI file of API twin `name`."""
    return os.path.join(REPO, "workflows", WORKFLOWS[name].title + ".json")


def api_paths() -> list[str]:
    return sorted(glob.glob(os.path.join(REPO, "workflows", "api", "*.json")))


def main(url: str) -> None:
    with urllib.request.urlopen(url.rstrip("/") + "/object_info") as r:
        object_info = json.loads(r.read())
    for path in api_paths():
        name = os.path.splitext(os.path.basename(path))[0]
        prompt = json.load(open(path))
        full = complete(prompt, object_info)
        if full != prompt:  # the twin lists every input the frontend sends, so the two compare input by input
            with open(path, "w") as f:
                json.dump(full, f, indent=1)
            print("completed", path)
        with open(ui_path(name), "w") as f:
            json.dump(convert(full, object_info, WORKFLOWS[name]), f, indent=1)
        print("wrote", ui_path(name))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8188")
