"""Automatic1111-family adapter (tested in Forge): the only code that imports the WebUI's modules.

`scripts/onestep_generator.py` (the script the app loads) imports this package through the extension's own
package path; the one-step maths stays in `onestep/`.
"""
