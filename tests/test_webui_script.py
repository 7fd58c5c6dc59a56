"""The A1111/Forge script (scripts/onestep_generator.py) loaded the way the apps load it, without the app.

Automatic1111 and Forge import each `scripts/*.py` of an extension from its file with the extension's folder put first
on sys.path for the duration (modules/scripts.py, load_scripts), after their own `webui` module is imported. The script
must then import the core and its adapter by their own names (`onestep`, `onestep_webui`: no package built by hand),
register its sampler, and, where Forge's backend is missing (A1111 proper), refuse to sample naming Forge. The app's
modules are small stand-ins here; the real Forge run is tests/test_forge_onestep.py (opt-in).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

LOAD = r'''
import json, os, runpy, sys, types
from collections import namedtuple

repo, models, clash = sys.argv[1], sys.argv[2], sys.argv[3]
if clash:  # another extension loaded first, with a top-level package of the same name
    saved = sys.path
    sys.path = [clash] + sys.path
    import onestep  # noqa: F401
    sys.path = saved

def stand_in(name, **attributes):
    module = types.ModuleType(name)
    module.__dict__.update(attributes)
    sys.modules[name] = module
    return module

reported = []
app = stand_in("modules")
app.errors = stand_in("modules.errors", report=lambda message, exc_info=False: reported.append(message))
app.paths = stand_in("modules.paths", models_path=models)
app.processing = stand_in("modules.processing", process_images=lambda p: "processed")
app.scripts = stand_in("modules.scripts", Script=type("Script", (), {"elem_id": lambda self, name: name}))
app.sd_samplers = stand_in("modules.sd_samplers", all_samplers=[], all_samplers_map={}, set_samplers=lambda: None)
app.sd_samplers_common = stand_in("modules.sd_samplers_common",
                                  SamplerData=namedtuple("SamplerData", "name constructor aliases options"))
stand_in("gradio")
stand_in("webui")  # the app's own webui.py: imported before any script loads

saved = sys.path
sys.path = [repo] + sys.path  # what load_scripts does around each script
try:
    script = runpy.run_path(os.path.join(repo, "scripts", "onestep_generator.py"), run_name="onestep_generator.py")
except ImportError as e:
    print(json.dumps({"import_error": str(e)}))
    raise SystemExit(0)
finally:
    sys.path = saved

out = {"format_file": sys.modules["onestep.format"].__file__, "same": script["onestep_format"] is sys.modules["onestep.format"],
       "forge": script["forge"] is not None, "forge_missing": str(script.get("FORGE_MISSING")), "reported": reported,
       "samplers": list(app.sd_samplers.all_samplers_map), "title": script["Script"]().title()}
try:
    app.sd_samplers.all_samplers_map[script["SAMPLER_NAME"]].constructor(None)
except RuntimeError as e:
    out["sampler_error"] = str(e)
os.makedirs(os.path.join(models, "onestep"), exist_ok=True)
with open(os.path.join(models, "onestep", "not-a-generator.safetensors"), "wb") as f:
    f.write(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
try:
    script["Script"]().run(types.SimpleNamespace(extra_generation_params={}), "not-a-generator.safetensors")
except Exception as e:
    out["run_error"] = f"{type(e).__name__}: {e}"
print(json.dumps(out))
'''


def _load(tmp_path, clash: str = "") -> dict:
    env = {"PATH": os.environ["PATH"]}  # neither the repository nor ComfyUI on the path: only what the app's loader adds
    r = subprocess.run([sys.executable, "-c", LOAD, REPO, str(tmp_path / "models"), clash], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_the_script_imports_the_core_by_its_own_name(tmp_path):
    out = _load(tmp_path)
    assert out["same"] and out["format_file"] == os.path.join(REPO, "onestep", "format.py")
    assert out["title"] == "One-step generator" and out["samplers"] == ["One-Step (generator file)"] and not out["reported"]
    # no Forge backend here, as in A1111 proper: the sampler is registered and refuses with the reason
    assert not out["forge"] and "backend" in out["forge_missing"]
    assert "needs Stable Diffusion WebUI Forge" in out["sampler_error"]
    assert "not-a-generator.safetensors" in out["run_error"]  # a file that is no generator is refused by name


def test_a_name_taken_by_another_extension_is_refused(tmp_path):
    other = tmp_path / "other_extension"
    (other / "onestep").mkdir(parents=True)
    (other / "onestep" / "__init__.py").write_text("")
    out = _load(tmp_path, str(other))
    assert "'onestep' resolves to" in out["import_error"] and str(other) in out["import_error"]
