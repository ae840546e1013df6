"""The denoising loss and the trainer of denoisers.

The loss of DDPM (Ho et al. 2020, eq. 14) generalised to every parameterization:
    L = E_{x_0, t, eps} || model(x_t, t) - target(x_0, eps, t) ||^2,
    x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps,  t ~ U{0, ..., T-1},
with target eps, x0, v or velocity (param.from_x0_eps). `train_denoiser` draws batches,
optionally drops class labels for classifier-free guidance, and hands the loss to the one
optimisation loop, fit.fit.
"""
from __future__ import annotations

import torch
from torch import nn

from .._validate import (check_callable, check_index, check_int, check_output, check_positive_int, check_real,
                         check_schedule, check_tensor)
from ..param import from_x0_eps
from ..schedules import NoiseSchedule
from .fit import check_ema, fit

__all__ = ["diffusion_loss", "train_denoiser"]


def diffusion_loss(model, x0: torch.Tensor, schedule: NoiseSchedule, generator=None, cond=None,
                   prediction: str | None = None) -> torch.Tensor:
    """One Monte Carlo estimate of the denoising loss on the batch x0: (B, ...)."""
    check_callable("model", model, "model(x_t, t[, cond])")
    check_tensor("x0", x0, min_ndim=2, nonempty=True, finite=True)    # one NaN row would make the loss NaN
    check_schedule(schedule)
    prediction = prediction or getattr(model, "prediction", "eps")
    B = len(x0)
    i = torch.randint(0, len(schedule), (B,), generator=generator).to(x0.device)
    eps = torch.randn(x0.shape, generator=generator).to(x0.device, x0.dtype)
    ab = schedule.alpha_bar.to(x0.device, x0.dtype)[i].reshape((B,) + (1,) * (x0.ndim - 1))
    xt = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
    t = schedule.timesteps.to(x0.device)[i]
    out = model(xt, t) if cond is None else model(xt, t, cond)
    check_output("the model", out, xt)
    return ((out - from_x0_eps(x0, eps, ab, prediction)) ** 2).mean()


def train_denoiser(model: nn.Module, data: torch.Tensor, schedule: NoiseSchedule, steps: int = 2000,
                   batch_size: int = 256, lr: float = 2e-3, ema: float = 0.995, seed: int = 0,
                   labels: torch.Tensor | None = None, label_dropout: float = 0.0, null_label: int | None = None,
                   progress: bool = True, device=None, callback=None):
    """Train `model` on `data` (N, ...) with the denoising loss; returns (ema_model, losses).

    labels: optional (N,) class labels passed as `cond`; with label_dropout > 0 a fraction of
    them is replaced by `null_label` (default: model.num_classes), which trains the
    unconditional model of classifier-free guidance inside the conditional one.
    Learning rate: cosine decay to 0 over `steps` (stable final weights for small models).
    Under torchrun (torch.distributed initialised, world size > 1) the model is wrapped in
    DistributedDataParallel and each rank draws its own batches (seed + rank); gradients are
    averaged, so every replica (and its EMA) stays identical. callback(step, loss, ema_model)
    is called after each step.
    """
    check_tensor("data", data, min_ndim=2, nonempty=True, finite=True)
    check_schedule(schedule)
    check_positive_int("steps", steps)
    check_positive_int("batch_size", batch_size)
    seed = check_int("seed", seed, lo=0)
    ema = check_ema(ema)
    label_dropout = check_real("label_dropout", label_dropout, lo=0, hi=1)
    if labels is not None:
        labels = check_index("labels", labels)
        if labels.shape != (len(data),):
            raise ValueError(f"labels must have shape ({len(data)},), one per row of data, got {tuple(labels.shape)}")
        if labels.numel() and int(labels.min()) < 0:
            raise ValueError(f"labels must be class indices >= 0, got {int(labels.min())}")
    device = torch.device(device) if device is not None else data.device
    rank, world = dist_info()
    torch.manual_seed(seed)                        # same initial weights on every rank
    g = torch.Generator().manual_seed(seed + 1000 * rank)
    model = model.to(device).train()
    prediction = getattr(model, "prediction", "eps")
    if null_label is None:
        null_label = getattr(model, "num_classes", None)
    net = model
    if world > 1:       # DDP broadcasts rank 0's weights, so replicas start equal
        from torch.nn.parallel import DistributedDataParallel
        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    def batch_loss():
        idx = torch.randint(0, len(data), (min(batch_size, len(data)),), generator=g)
        x0, cond = data[idx].to(device), None
        if labels is not None:
            cond = labels[idx].to(device)
            if label_dropout > 0:
                drop = (torch.rand(len(cond), generator=g) < label_dropout).to(device)
                cond = torch.where(drop, torch.full_like(cond, null_label), cond)
        return diffusion_loss(net, x0, schedule, g, cond, prediction)

    return fit(model, batch_loss, steps, lr, ema, progress=progress and rank == 0, callback=callback)


def dist_info() -> tuple[int, int]:
    """(rank, world size) of torch.distributed, or (0, 1) when it is not initialised."""
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1
