"""Host-independent core of the one-step generation pack.

Nothing in this package imports ComfyUI: the generator file format, the one-step parameterizations,
the one-step sampler and the importers of released one-step models run in the CLI, under torchrun and
in unit tests exactly as they run inside ComfyUI, where the thin adapters in ``onestep_nodes/`` call them.
"""
