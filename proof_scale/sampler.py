"""Deterministic multi-step sampling of the ε-prediction teacher, in k-diffusion's σ space (Karras et al.
2022; crowsonkb/k-diffusion), the convention ComfyUI samples in: x = x0 + σ·ε, σ_t = sqrt((1 − ᾱ_t)/ᾱ_t).

- `EpsDenoiser` turns the UNet into a denoiser D(x, σ) = x0: the UNet sees x/sqrt(σ² + 1) at the discrete
  timestep nearest σ in log σ (as ComfyUI's ModelSamplingDiscrete), x0 = x − σ·ε̂; classifier-free guidance
  (Ho & Salimans 2022) mixes the conditional and empty-prompt denoisers: D_u + w·(D_c − D_u).
- `sample_euler` (the pack's one Euler sampler, onestep/euler.py; Euler = DDIM for ε-models, Song et al. 2021),
  `sample_heun` (Karras et al. 2022, Alg. 1, no churn) and `sample_dpmpp_2m` (DPM-Solver++(2M), onestep/dpm_solver.py)
  have k-diffusion's sampler signature.
- `discrete_sigmas(steps)`: σ at timesteps spaced uniformly from 999 to 0 (DDIM's linspace spacing; or uniform in
  log σ, spacing="exponential"), then 0.
"""
from __future__ import annotations

import math

import torch

from onestep.cuda_graph import GraphCache
from onestep.dpm_solver import sample_dpmpp_2m
from onestep.euler import sample_euler
from onestep.schedule import SD_SCHEDULE, DiscreteSchedule, sampler_timesteps

from .data import NUM_CLASSES, SIZE, empty_row


def discrete_sigmas(steps: int, schedule: DiscreteSchedule = SD_SCHEDULE, spacing: str = "linspace") -> torch.Tensor:
    """[σ_{t_0}, ..., σ_{t_{n−1}}, 0] at onestep.schedule.sampler_timesteps (linspace: t_i = round(linspace(T−1, 0,
    steps)); steps=1 gives [σ_max, 0]; exponential: uniform in log σ, repeats dropped)."""
    ts = sampler_timesteps(schedule, steps, spacing)
    return torch.cat([schedule.sigmas()[ts], torch.zeros(1, dtype=torch.float64)]).float()


class EpsDenoiser(torch.nn.Module):
    """D(x, σ, labels, cfg) = x0 of an ε-prediction UNet conditioned by rows of a context table."""

    def __init__(self, unet: torch.nn.Module, context_table: torch.Tensor, schedule: DiscreteSchedule = SD_SCHEDULE):
        super().__init__()
        self.unet = unet
        self.context_table = context_table
        self.register_buffer("log_sigmas", schedule.sigmas().float().log(), persistent=False)

    def timestep(self, sigma: torch.Tensor) -> torch.Tensor:
        """The discrete timestep nearest each σ (in log σ)."""
        return (sigma.log()[None, :] - self.log_sigmas.to(sigma.device)[:, None]).abs().argmin(dim=0)

    def eps(self, x: torch.Tensor, sigma: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """ε̂ for k-diffusion input x at σ (per item), with context rows `rows`."""
        x_in = x / (sigma**2 + 1).sqrt().view(-1, 1, 1, 1)
        ctx = self.context_table[rows.to(self.context_table.device)].to(x.dtype)
        return self.unet(x_in, self.timestep(sigma), encoder_hidden_states=ctx).sample.to(x.dtype)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor, labels: torch.Tensor, cfg: float = 1.0) -> torch.Tensor:
        if cfg == 1.0:
            return x - sigma.view(-1, 1, 1, 1) * self.eps(x, sigma, labels)
        empty = torch.full_like(labels, empty_row(self.context_table))
        eps_c, eps_u = self.eps(torch.cat([x, x]), torch.cat([sigma, sigma]), torch.cat([labels, empty])).chunk(2)
        return x - sigma.view(-1, 1, 1, 1) * (eps_u + cfg * (eps_c - eps_u))


@torch.no_grad()
def sample_heun(model, x, sigmas, extra_args=None, callback=None, disable=None):
    """Heun's second-order method (Karras et al. 2022, Alg. 1 without churn); Euler on the last step to σ=0."""
    extra_args = {} if extra_args is None else extra_args
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        if callback is not None:
            callback({"x": x, "i": i, "sigma": sigmas[i], "sigma_hat": sigmas[i], "denoised": denoised})
        d = (x - denoised) / sigmas[i]
        dt = sigmas[i + 1] - sigmas[i]
        if sigmas[i + 1] == 0:
            x = x + d * dt
        else:
            x_2 = x + d * dt
            d_2 = (x_2 - model(x_2, sigmas[i + 1] * s_in, **extra_args)) / sigmas[i + 1]
            x = x + (d + d_2) / 2 * dt
    return x


SAMPLERS = {"euler": sample_euler, "heun": sample_heun, "dpmpp_2m": sample_dpmpp_2m}  # name → k-diffusion-signature sampler


def nfe(steps: int, cfg: float, sampler: str = "euler") -> int:
    """UNet evaluations per sample: Heun calls twice per step but once on the last (to σ = 0), Euler and DPM++(2M) once
    a step; CFG doubles each call."""
    calls = 2 * steps - 1 if sampler == "heun" else steps
    return calls * (2 if cfg != 1.0 else 1)


class GraphedDenoiser:
    """An EpsDenoiser whose calls replay CUDA graphs, one per (batch shape, CFG scale): at 32×32 a step of the small
    teacher is hundreds of short kernels, so eager sampling leaves the GPU idle between launches. The graph holds
    the autocast of the capture (bf16 when `bf16`); the result is float32."""

    def __init__(self, denoiser: EpsDenoiser, bf16: bool = True):
        self.denoiser, self.bf16, self.cache = denoiser, bf16, GraphCache(max_entries=4)

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, labels: torch.Tensor, cfg: float = 1.0) -> torch.Tensor:
        def call(x, sigma, labels):
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.bf16):
                return self.denoiser(x, sigma, labels, cfg).float()

        return self.cache.run((tuple(x.shape), float(cfg)), call, {"x": x.float(), "sigma": sigma.float(), "labels": labels})


GRAPHED_PER_CACHE = 2  # each holds its graphs' memory pools


def graphed_denoiser(unet: torch.nn.Module, context_table: torch.Tensor, schedule: DiscreteSchedule = SD_SCHEDULE,
                     bf16: bool = True, cache: list | None = None) -> GraphedDenoiser:
    """The GraphedDenoiser of this UNet, context table and schedule, taken from `cache` (a list the caller keeps, e.g.
    ProofScaleTeacher: sampling in batches calls sample_teacher_from_noise once per batch, and a fresh denoiser would
    capture its graphs again each time). Reused only while the UNet's weights are the same tensors (a reload or .to()
    makes new ones; in-place updates are read by the replay) and the table has equal values (the graph reads the copy
    the cached denoiser holds). The caller owns the cache, so the graphs go when it does (no cycle through the UNet)."""
    device = next(unet.parameters()).device
    key = (id(unet), tuple(p.data_ptr() for p in unet.parameters()), device, schedule, bool(bf16))
    cache = [] if cache is None else cache
    for k, graphed in cache:
        table = graphed.denoiser.context_table
        if k == key and graphed.denoiser.unet is unet and table.shape == context_table.shape and torch.equal(table, context_table.to(device)):
            return graphed
    graphed = GraphedDenoiser(EpsDenoiser(unet, context_table.to(device), schedule).to(device), bf16)
    cache.append((key, graphed))
    del cache[:-GRAPHED_PER_CACHE]
    return graphed


def initial_noise(count: int, seed: int) -> torch.Tensor:
    """Standard normal [count, 1, 32, 32] on the CPU from one seed (independent of batch size and device)."""
    return torch.randn(count, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def sample_teacher(
    unet: torch.nn.Module, context_table: torch.Tensor, labels: torch.Tensor, steps: int, cfg: float, seed: int = 0,
    sampler: str = "euler", batch: int = 500, schedule: DiscreteSchedule = SD_SCHEDULE, bf16: bool = True, spacing: str = "linspace",
) -> torch.Tensor:
    """Latents [N, 1, 32, 32] (on the CPU) for class labels [N]: ODE from x = sqrt(σ_max² + 1)·z to σ = 0.
    On CUDA the UNet runs under bf16 autocast unless bf16=False (the ODE state stays float32)."""
    return sample_teacher_from_noise(unet, context_table, initial_noise(len(labels), seed), labels, steps, cfg, sampler, batch, schedule, bf16,
                                     spacing=spacing)


@torch.no_grad()
def sample_teacher_from_noise(
    unet: torch.nn.Module, context_table: torch.Tensor, z: torch.Tensor, labels: torch.Tensor, steps: int, cfg: float,
    sampler: str = "euler", batch: int = 500, schedule: DiscreteSchedule = SD_SCHEDULE, bf16: bool = True, graphs: bool = True,
    graph_cache: list | None = None, spacing: str = "linspace",
) -> torch.Tensor:
    """`sample_teacher` from given standard-normal noise z [N, 1, 32, 32] (e.g. per-seed noise, `seed_noise`).
    On CUDA the denoiser calls replay CUDA graphs unless graphs=False (same arithmetic, launched at once); a caller
    sampling batch after batch passes the same `graph_cache` list to replay the graphs captured by the first."""
    device = next(unet.parameters()).device
    graphed = device.type == "cuda" and graphs
    model = graphed_denoiser(unet, context_table, schedule, bf16, graph_cache) if graphed else EpsDenoiser(unet, context_table.to(device), schedule).to(device)
    sigmas = discrete_sigmas(steps, schedule, spacing).to(device)
    out = []
    for i in range(0, len(labels), batch):
        x = z[i:i + batch].to(device) * math.sqrt(float(sigmas[0]) ** 2 + 1)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16 and device.type == "cuda" and not graphed):
            x = SAMPLERS[sampler](model, x, sigmas, {"labels": labels[i:i + batch].to(device), "cfg": cfg})
        out.append(x.float().cpu())
    return torch.cat(out)


def seed_noise(seed: int) -> torch.Tensor:
    """[1, 1, 32, 32] noise of one seed exactly as ComfyUI's KSampler makes it for a batch-1 latent
    (comfy.sample.prepare_noise: torch.manual_seed(seed); torch.randn(shape)), from a private generator."""
    return torch.randn(1, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


def class_labels(count: int, classes: int = NUM_CLASSES) -> torch.Tensor:
    """Balanced prompts: item i gets class i mod `classes`."""
    return torch.arange(count) % classes
