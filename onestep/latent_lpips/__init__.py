"""E-LatentLPIPS: a perceptual distance computed on VAE latents, made robust by an ensemble of random
augmentations (Kang et al., "Distilling Diffusion Models into Conditional GANs", ECCV 2024, Sec. 3.2).
Host-independent: the distillation loss, the CLI tools and the ComfyUI node all use this package."""
from .encoders import ENCODERS, LatentEncoder, get_encoder
from .metric import ELatentLPIPS
from .network import LatentLPIPS, LatentVGG16BN

__all__ = ["ENCODERS", "ELatentLPIPS", "LatentEncoder", "LatentLPIPS", "LatentVGG16BN", "get_encoder"]
