"""Every bundled UI workflow in the REAL ComfyUI frontend, in a real browser, as a new user meets it.

Debian's chromium (/usr/bin/chromium, installed by scripts/bootstrap.sh; never a downloaded browser) driven by
playwright opens the session's real host (tests/conftest.py: fresh base and user directory, so the first-visit
Templates dialog opens). For every workflow: the template browser lists it with its title and its thumbnail; it loads
with no missing node; what Run queues (`app.graphToPrompt()`) equals its API twin input by input (a widget value
shifted by one slot fails here); no two nodes overlap, every node sits in a step group, it opens at a readable zoom;
queued from the UI (`app.queuePrompt`, what the Run button calls) it passes validation and produces its images.

ONESTEP_UPDATE_DOCS=1 also writes what the runs make: each template's thumbnail (workflows/<title>.jpg, from its
output) and a screenshot of each workflow after its run (web/docs/workflows/<name>.png, shown by the README and the
node help pages). For one workflow, select the template test with it (`-k "template_browser or NAME"`): it closes the
first visit's Templates dialog, which Escape does not, and which would otherwise cover the screenshot.
Another frontend: COMFYUI_EXTRA_ARGS="--front-end-root DIR" (README, "Tests").
"""
from __future__ import annotations

import io
import json
import os
import shutil
import time
from urllib.parse import unquote, urlsplit

import pytest
from PIL import Image

from comfy_host import PACK_FOLDER_NAME, REPO
from tools.api_to_ui import WORKFLOWS, ui_path

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
UPDATE_DOCS = os.environ.get("ONESTEP_UPDATE_DOCS") == "1"
VIEWPORT = {"width": 1600, "height": 1000}
RUN_TIMEOUT = 900.0


@pytest.fixture(scope="module")
def page(host):
    """One browser tab on the host's frontend, opened as a first visit."""
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"no Chromium at {CHROMIUM}: install the Debian package chromium (scripts/bootstrap.sh does) or set CHROMIUM")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        tab = browser.new_page(viewport=VIEWPORT)
        tab.template_files = {}  # URL path under /api/workflow_templates/ → HTTP status, as the frontend fetched them
        tab.on("response", lambda r: "/workflow_templates/" in r.url and tab.template_files.__setitem__(unquote(urlsplit(r.url).path), r.status))
        tab.goto(host.url)
        tab.wait_for_function("window.app && window.app.graph && window.LiteGraph", timeout=180_000)
        yield tab
        browser.close()


def api_twin(name: str) -> dict:
    with open(os.path.join(REPO, "workflows", "api", f"{name}.json")) as f:
        return json.load(f)


def ui_workflow(name: str) -> dict:
    with open(ui_path(name)) as f:
        return json.load(f)


def test_template_browser_lists_every_workflow_with_title_and_thumbnail(page, host):
    dialog = page.get_by_role("dialog").filter(has_text="Templates")
    dialog.wait_for(timeout=60_000)  # a first visit opens the Templates dialog
    dialog.get_by_text(PACK_FOLDER_NAME, exact=True).first.click()
    titles = [doc.title for doc in WORKFLOWS.values()]
    for title in titles:  # the frontend fetches each thumbnail (a missing one would show its generic picture)
        path = f"/api/workflow_templates/{PACK_FOLDER_NAME}/{title}.jpg"
        page.wait_for_function("(t) => document.querySelector('[role=dialog]').innerText.includes(t)", arg=title, timeout=30_000)
        # the frontend loads a card's thumbnail lazily, when the card scrolls into view (ten cards overflow the dialog)
        dialog.get_by_text(title, exact=True).first.scroll_into_view_if_needed()
        deadline = time.time() + 30
        while path not in page.template_files and time.time() < deadline:
            page.wait_for_timeout(200)
        assert page.template_files.get(path) == 200, f"thumbnail {path}: {page.template_files.get(path)}"
    for title in titles:  # each card: its picture, the title, then the description (the title's words)
        dialog.get_by_text(title, exact=True).first.scroll_into_view_if_needed()  # a card gets its picture once in view
        page.wait_for_function("(t) => Array.from(document.querySelectorAll('[role=dialog] img')).some(i => i.alt === t && i.complete)",
                               arg=title, timeout=30_000)
        cards = page.evaluate("""() => Array.from(document.querySelectorAll('[role=dialog] img')).map(i => {
                let card = i; while (card && !(card.innerText || '').trim()) card = card.parentElement;
                return {loaded: i.naturalWidth > 0, lines: card ? card.innerText.split('\\n').map(t => t.trim()).filter(t => t) : []} })""")
        card = [c for c in cards if c["lines"][:1] == [title]]
        assert card, f"no card titled {title!r}: {[c['lines'] for c in cards]}"
        assert card[0]["loaded"], f"the picture of {title!r} did not load"
        assert card[0]["lines"][1:2] == [title.replace("-", " ").replace("_", " ")], card[0]["lines"]
    # Opening a card loads that workflow (the file the server serves under the pack's folder name).
    name = "text_to_image"
    dialog.get_by_text(WORKFLOWS[name].title, exact=True).first.click()
    page.wait_for_function("(n) => window.app.graph._nodes.length === n", arg=len(ui_workflow(name)["nodes"]), timeout=60_000)
    assert page.evaluate("() => window.app.canvas.ds.scale") == pytest.approx(ui_workflow(name)["extra"]["ds"]["scale"])
    page.keyboard.press("Escape")


def load(page, name: str) -> dict:
    """Load the UI file as the frontend does; return what it shows and what Run would queue."""
    page.evaluate("async (w) => { await window.app.loadGraphData(w) }", ui_workflow(name))
    return page.evaluate("""async () => {
        const g = window.app.graph;
        const nodes = g._nodes.map(n => ({id: n.id, type: n.type, rect: Array.from(n.boundingRect)}));
        const registered = window.LiteGraph.registered_node_types;
        return {
            nodes, missing: nodes.filter(n => !registered[n.type]).map(n => n.type),
            groups: g._groups.map(gr => ({title: gr.title, rect: Array.from(gr._bounding || gr.bounding)})),
            scale: window.app.canvas.ds.scale,
            prompt: (await window.app.graphToPrompt()).output,
        } }""")


def overlaps(a, b) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def queue_from_ui(page) -> dict:
    """app.queuePrompt (the Run button): the server's answer, or its refusal."""
    return page.evaluate("""async () => {
        const api = window.app.api, orig = api.queuePrompt;
        let answer = null, refused = null;
        api.queuePrompt = async function (...args) {
            try { answer = await orig.apply(this, args); return answer }
            catch (e) { refused = e.response || String(e); throw e }
        };
        try { await window.app.queuePrompt(0, 1) } finally { api.queuePrompt = orig }
        return {answer, refused} }""")


def wait_history(host, prompt_id: str) -> dict:
    deadline = time.time() + RUN_TIMEOUT
    while time.time() < deadline:
        hist = host.get(f"/history/{prompt_id}")
        if prompt_id in hist and hist[prompt_id].get("status", {}).get("completed") is not None:
            return hist[prompt_id]
        time.sleep(1.0)
    raise TimeoutError(f"{prompt_id} did not finish in {RUN_TIMEOUT:.0f} s:\n{host.log_tail()}")


def drop_cache(host) -> None:
    """Make the next prompt compute, not replay, its outputs (an earlier test may have run the API twin).

    ComfyUI reads /free's flag after its next prompt, so a small prompt carries it.
    """
    host.post("/free", {"free_memory": True})
    flush = {"1": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
             "2": {"class_type": "SaveLatent", "inputs": {"samples": ["1", 0], "filename_prefix": f"flush/{time.time_ns()}"}}}
    assert "refused" not in host.run(flush)


def fresh_training_outputs(host, prompt: dict) -> None:
    """A first run, as a new user's: no dataset or training run left by an earlier test to resume from."""
    models = os.path.join(host.base_dir, "models")
    for node in prompt.values():
        inputs = node["inputs"]
        if node["class_type"] == "OneStepCollectTeacherPairs":
            shutil.rmtree(os.path.join(models, "onestep_pairs", inputs["dataset_name"]), ignore_errors=True)
        if node["class_type"] in ("OneStepTrainDiffusion2GAN", "OneStepTrainSiDLSG"):
            shutil.rmtree(os.path.join(models, "onestep_runs", inputs["generator_name"]), ignore_errors=True)
            for folder in ("onestep", "loras"):  # the exported generator (and LoRA) of an earlier run
                path = os.path.join(models, folder, inputs["generator_name"] + ".safetensors")
                if os.path.exists(path):
                    os.remove(path)


@pytest.mark.parametrize("name", list(WORKFLOWS))
def test_ui_workflow_runs_from_the_frontend(page, host, name):
    twin = api_twin(name)
    shown = load(page, name)
    assert not shown["missing"], f"missing nodes: {shown['missing']}"

    queued = {k: {"class_type": v["class_type"], "inputs": v["inputs"]} for k, v in shown["prompt"].items()}
    expected = {k: {"class_type": v["class_type"], "inputs": v["inputs"]} for k, v in twin.items()}
    assert set(queued) == set(expected), f"nodes queued {sorted(queued)} != API twin {sorted(expected)}"
    for key, node in expected.items():
        for inp, value in node["inputs"].items():
            assert queued[key]["inputs"].get(inp) == value, f"node {key} ({node['class_type']}) input {inp!r}: UI queues {queued[key]['inputs'].get(inp)!r}, API twin {value!r}"
        assert queued[key] == node, f"node {key}: extra inputs {set(queued[key]['inputs']) - set(node['inputs'])}"

    nodes, groups = shown["nodes"], shown["groups"]
    assert any(n["type"] == "Note" for n in nodes), "no Note saying what to change"
    for i, a in enumerate(nodes):
        for b in nodes[i + 1:]:
            assert not overlaps(a["rect"], b["rect"]), f"nodes {a['id']} ({a['type']}) and {b['id']} ({b['type']}) overlap"
    for n in nodes:
        if n["type"] != "Note":
            x, y, w, h = n["rect"]
            assert any(gx <= x and gy <= y and x + w <= gx + gw and y + h <= gy + gh for gx, gy, gw, gh in (g["rect"] for g in groups)), \
                f"node {n['id']} ({n['type']}) is in no group"
    assert [g["title"].split(". ", 1)[0] for g in groups] == [str(i + 1) for i in range(len(groups))], [g["title"] for g in groups]
    assert shown["scale"] >= 0.8, f"opens at {shown['scale']:.0%} zoom"

    fresh_training_outputs(host, twin)
    drop_cache(host)
    result = queue_from_ui(page)
    assert result["refused"] is None, f"the server refused what the UI queued: {result['refused']}"
    page.evaluate("() => { window.app.canvas.pause_rendering = true }")  # the canvas redraws ~40 times a second: let
    try:  # the 2 CPU cores run the workflow instead
        entry = wait_history(host, result["answer"]["prompt_id"])
    finally:
        page.evaluate("() => { window.app.canvas.pause_rendering = false }")
    assert entry["status"]["status_str"] == "success", entry["status"]
    images = [img for out in entry["outputs"].values() for img in out.get("images", [])]
    assert images, "the workflow saved no image"
    for img in images:
        assert os.path.getsize(os.path.join(host.base_dir, "output", img["subfolder"], img["filename"])) > 0
    thumb = entry["outputs"][WORKFLOWS[name].thumbnail]["images"][0]
    if UPDATE_DOCS:
        write_docs(page, host, name, thumb)
    assert os.path.exists(ui_path(name)[:-5] + ".jpg"), "no thumbnail: run this test with ONESTEP_UPDATE_DOCS=1"


def write_docs(page, host, name: str, thumb: dict) -> None:
    """The template's thumbnail from the run's output, and a screenshot of the whole workflow after the run."""
    src = Image.open(os.path.join(host.base_dir, "output", thumb["subfolder"], thumb["filename"])).convert("RGB")
    scale = 384 / max(src.size)  # small outputs scaled up by whole pixels, as the pixel images they are
    src = src.resize((round(src.width * scale), round(src.height * scale)), Image.NEAREST if scale > 1 else Image.LANCZOS)
    side = max(src.size)
    square = Image.new("RGB", (side, side), (24, 24, 24))
    square.paste(src, ((side - src.width) // 2, (side - src.height) // 2))
    square.save(ui_path(name)[:-5] + ".jpg", quality=85)
    for _ in range(3):  # a dialog left open (the first visit's Templates) would hide the canvas
        if not page.get_by_role("dialog").count():
            break
        page.keyboard.press("Escape")
        page.wait_for_timeout(300)
    bounds = page.evaluate("""() => {
        const g = window.app.graph;
        const rects = g._nodes.map(n => n.boundingRect).concat(g._groups.map(gr => gr._bounding || gr.bounding));
        const x0 = Math.min(...rects.map(r => r[0])), y0 = Math.min(...rects.map(r => r[1]));
        return [x0, y0, Math.max(...rects.map(r => r[0] + r[2])) - x0, Math.max(...rects.map(r => r[1] + r[3])) - y0] }""")
    scale = 0.65  # the canvas drops text below 60 %: the window grows to show the whole workflow at 65 %
    page.set_viewport_size({"width": max(VIEWPORT["width"], int(bounds[2] * scale) + 160), "height": max(VIEWPORT["height"], int(bounds[3] * scale) + 220)})
    page.wait_for_timeout(500)
    page.evaluate("""([x0, y0, s]) => { const c = window.app.canvas;
        c.ds.scale = s; c.ds.offset = [90 / s - x0, 170 / s - y0]; c.setDirty(true, true); c.draw(true, true) }""", [bounds[0], bounds[1], scale])
    page.wait_for_timeout(1500)  # image previews load
    png = page.screenshot()
    page.set_viewport_size(VIEWPORT)
    out = os.path.join(REPO, "web", "docs", "workflows", f"{name}.png")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    Image.open(io.BytesIO(png)).convert("RGB").quantize(colors=128).save(out, optimize=True)
