"""Distillation of one-step generators (host-independent, like onestep/).

Planned by the issues that follow the foundation: Diffusion2GAN (E-LatentLPIPS regression + conditional
diffusion GAN), then SiD-LSG and InstaFlow reflow. Trainers will write the generator format of
onestep/format.py, so Load One-Step Generator lists their results at once. Nothing is implemented here yet.
"""
