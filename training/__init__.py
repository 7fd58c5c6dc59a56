"""Distillation of one-step generators (host-independent, like onestep/; never imports ComfyUI).

Diffusion2GAN (Kang et al., ECCV 2024): E-LatentLPIPS regression of teacher ODE pairs plus a conditional diffusion
GAN. config.py (typed settings), unet_interface.py (what the trainer needs from a UNet; diffusers_unet.py adapts
diffusers), discriminator.py, losses.py, steps.py (one G and one D step), lora.py, ema.py, data.py (resumable
order, rank split), distributed.py, checkpoint.py, trainer.py (the Trainer), cli.py (`python -m training.cli`).
Trainers write the generator format of onestep/format.py, so Load One-Step Generator lists their results at once.
"""
