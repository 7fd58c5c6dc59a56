"""Automatic1111-family adapter (tested in Forge): the only code, with the script in `scripts/`, that imports the WebUI's
modules. Not named `webui`: that is the app's own top-level module (its `webui.py`), already imported when scripts load.

`scripts/onestep_generator.py` (the script the app loads) imports this package and the core (`onestep`) by their own
names, as ComfyUI and the tests do: the app puts the extension's folder first on `sys.path` while it loads the script.
The one-step maths stays in `onestep/`.
"""
