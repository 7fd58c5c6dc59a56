"""torch.optim.Adafactor's update without reading values back to the CPU, in bounded chunks.

torch's implementation (2.5+) asks the GPU for two numbers per tensor in every step (the weight's RMS for the
relative step size and the update's RMS for update clipping, `.item()` each): 1,700 synchronisations a step for
SD1.5's 686 tensors plus D's, which left the GPU idle for most of the optimiser step (390 ms of a 1.5 s step on
an H100, docs/benchmarks.md). It also forms the factored second-moment estimate of a conv weight [o, i, kh, kw] as
o·i batched 1×1 matrix products, the step's largest GPU cost. Here those per-tensor scales stay on the GPU, the
estimate is a broadcast product (the same numbers: an outer product with an inner dimension of 1), and the
tensors are updated a chunk of at most `chunk_elements` at a time, so the full-size temporaries (the second-moment
estimate, the update) never exceed one chunk instead of one copy of all the weights.

The hyper-parameters, the update and the state layout (step, row_var/col_var or variance per tensor) are
torch's, so checkpoints move between the two and the result matches torch's to float32 rounding.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .tensor_chunks import CHUNK_ELEMENTS, chunked


class SyncFreeAdafactor(torch.optim.Adafactor):
    """torch.optim.Adafactor (same arguments, less `foreach`) whose step never synchronises with the GPU."""

    def __init__(self, params, lr: float = 1e-2, beta2_decay: float = -0.8, eps: tuple[float | None, float] = (None, 1e-3),
                 d: float = 1.0, weight_decay: float = 0.0, *, maximize: bool = False, chunk_elements: int = CHUNK_ELEMENTS):
        super().__init__(params, lr=lr, beta2_decay=beta2_decay, eps=eps, d=d, weight_decay=weight_decay, foreach=True, maximize=maximize)
        self.chunk_elements = chunk_elements

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params, grads, row_vars, col_vars, variances, steps = [], [], [], [], [], []
            self._init_group(group, params, grads, row_vars, col_vars, variances, steps)
            lists = list(zip(params, grads, row_vars, col_vars, variances, steps))
            for factored in (True, False):  # matrices (and conv kernels) get factored moments, vectors a full one
                same = [t for t in lists if (t[1].dim() > 1) == factored]
                for chunk in chunked(same, lambda t: t[0].numel(), self.chunk_elements):
                    _update(*map(list, zip(*chunk)), group=group)
        return loss


def _update(params: list[Tensor], grads: list[Tensor], row_vars: list, col_vars: list, variances: list, steps: list[Tensor],
            group: dict) -> None:
    """One Adafactor update of tensors that are all factored or all vectors (torch's algorithm, see the module doc)."""
    lr = float(group["lr"])
    eps1, eps2 = group["eps"]
    beta2_decay, d, weight_decay = group["beta2_decay"], group["d"], group["weight_decay"]
    device = params[0].device
    if group["maximize"]:
        grads = torch._foreach_neg(grads)
    torch._foreach_add_(steps, 1.0)  # the step counts live on the CPU: reading them costs no synchronisation
    counts = [float(s) for s in steps]
    one_minus_beta2 = [c ** beta2_decay for c in counts]
    rho = torch.tensor([min(lr, c ** -0.5) for c in counts], device=device)
    root_numel = torch.tensor([p.numel() ** 0.5 for p in params], device=device)
    eps1 = torch.finfo(params[0].dtype).eps if eps1 is None else eps1
    # relative step size α = max(ε2, RMS(θ)) · ρ, from the weights before the decay (as torch)
    alpha = (torch.stack(torch._foreach_norm(params)).float() / root_numel).clamp_(min=eps2) * rho
    if weight_decay != 0:
        torch._foreach_mul_(params, 1 - lr * weight_decay)
    if row_vars[0] is not None:
        row_means = [torch.linalg.vector_norm(g, dim=-1, keepdim=True) for g in grads]  # √Σg² per row
        torch._foreach_mul_(row_means, row_means)
        torch._foreach_div_(row_means, [g.size(-1) for g in grads])
        torch._foreach_lerp_(row_vars, row_means, one_minus_beta2)
        del row_means
        col_means = [torch.linalg.vector_norm(g, dim=-2, keepdim=True) for g in grads]
        torch._foreach_mul_(col_means, col_means)
        torch._foreach_div_(col_means, [g.size(-2) for g in grads])
        torch._foreach_lerp_(col_vars, col_means, one_minus_beta2)
        del col_means
        estimates = [r * c for r, c in zip(row_vars, col_vars)]  # the outer product row ⊗ col, broadcast
        row_var_means = [r.mean(dim=-2, keepdim=True) for r in row_vars]
        torch._foreach_clamp_min_(row_var_means, eps1)
        torch._foreach_div_(estimates, row_var_means)
        del row_var_means
        torch._foreach_clamp_min_(estimates, eps1 * eps1)
    else:
        squares = torch._foreach_mul(grads, grads)
        torch._foreach_lerp_(variances, squares, one_minus_beta2)
        del squares
        estimates = torch._foreach_clamp_min(variances, eps1 * eps1)  # a new list: the variances stay as they are
    torch._foreach_rsqrt_(estimates)
    torch._foreach_mul_(estimates, grads)
    updates = estimates
    # update clipping: divide by max(1, RMS(update)/d); then the step −α·update
    scale = -alpha / (torch.stack(torch._foreach_norm(updates)).float() / (root_numel * d)).clamp_(min=1.0)
    for u, s in zip(updates, scale.unbind(0)):  # a per-tensor factor from the GPU: no foreach form without a sync
        u.mul_(s.to(u.dtype))
    torch._foreach_add_(params, updates)
