"""Proof-scale quality benchmark on Fashion-MNIST (issue 6): a small text-conditioned diffusion teacher on
32×32 single-channel "latents" (images padded 28→32 and scaled to [−1, 1]; identity VAE), a multi-step
sampler for it, and an evaluator trained by the project that scores teacher and one-step students with
honestly named metrics (Fréchet distance in the classifier's feature space, k-NN precision/recall, class
accuracy) — not FID, which needs an Inception network on natural images. Host-independent: never imports
`comfy`; run from the repository root (`python -m proof_scale.cli ...`)."""
