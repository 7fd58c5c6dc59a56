"""Developer tools that need a ComfyUI tree on PYTHONPATH: building random-weight fixture models."""
