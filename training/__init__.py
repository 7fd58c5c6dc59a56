"""Distillation of one-step generators (host-independent, like onestep/; never imports ComfyUI).

engine.py runs every method (networks, optimisers, EMA, low-memory storage, accumulation, DDP, checkpoints, exact
resume, NaN stop); methods/ holds the methods as small classes (regression.py, diffusion2gan.py: Kang et al., ECCV
2024 — E-LatentLPIPS regression of teacher ODE pairs plus a conditional diffusion GAN); steps.py runs one phase.
config.py (typed settings), unet_interface.py (what the engine needs from a UNet; diffusers_unet.py adapts
diffusers), discriminator.py, losses.py, lora.py, ema.py, data.py (resumable order, rank split), distributed.py,
checkpoint.py, session.py (one run, as the node, the CLI and the proof-scale rows drive it), export.py (the generator
file), trainer.py (the engine under its old name), cli.py (`python -m training.cli`). Runs write the generator format
of onestep/format.py, so Load One-Step Generator lists their results at once.
"""
