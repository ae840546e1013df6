"""The forward (noising) process q (survey 2.1).

    q(x_t | x_0)       = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I)
    q(x_{t-1} | x_t, x_0) = N(mu~, beta~ I), with (Ho et al. 2020, eq. 7)
        mu~   = sqrt(alpha_bar_{t-1}) beta_t / (1 - alpha_bar_t) x_0
              + sqrt(alpha_t) (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) x_t
        beta~ = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) beta_t
Indices i refer to entries of the schedule (see schedules.py), so the same code serves a
respaced schedule, where "t-1" is the previous kept entry.
"""
from __future__ import annotations

import torch

from ._validate import check_index, check_schedule, check_tensor
from .schedules import NoiseSchedule


def _index(i, x: torch.Tensor, schedule: NoiseSchedule) -> torch.Tensor:
    check_schedule(schedule)
    i = check_index("i", i, len(x), of="x0").cpu()
    if i.numel() and (bool((i < 0).any()) or bool((i >= len(schedule)).any())):
        raise ValueError(f"schedule index i must lie in [0, {len(schedule) - 1}], got {i.min().item()}..{i.max().item()}")
    return i


def q_sample(x0: torch.Tensor, i, schedule: NoiseSchedule, eps: torch.Tensor | None = None,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """Sample x_t ~ q(x_t | x_0). x0: (B, ...); i: int or (B,) schedule indices; eps: like x0."""
    check_tensor("x0", x0, min_ndim=1)
    i = _index(i, x0, schedule)
    if eps is None:
        eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
    elif check_tensor("eps", eps).shape != x0.shape:
        raise ValueError(f"eps must have the shape of x0 {tuple(x0.shape)}, got {tuple(eps.shape)}")
    ab = schedule._at(i, x0)
    return ab.sqrt() * x0 + (1 - ab).sqrt() * eps


def q_posterior(x0: torch.Tensor, xt: torch.Tensor, i, schedule: NoiseSchedule):
    """Mean and variance of q(x_{i-1} | x_i, x_0) for i >= 1 (eq. 7 of DDPM).
    x0, xt: (B, ...). Returns (mean (B, ...), var (B, 1, ..., 1))."""
    check_tensor("x0", x0, min_ndim=1)
    check_tensor("xt", xt, min_ndim=1)
    if x0.shape != xt.shape:
        raise ValueError(f"x0 and xt must have the same shape, got {tuple(x0.shape)} and {tuple(xt.shape)}")
    i = _index(i, x0, schedule)
    if (i < 1).any():
        raise ValueError("q_posterior needs i >= 1 (there is no step before the first entry)")
    ab_t, ab_prev = schedule._at(i, x0), schedule._at(i - 1, x0)
    beta_t = 1 - ab_t / ab_prev
    mean = (ab_prev.sqrt() * beta_t / (1 - ab_t)) * x0 + ((1 - beta_t).sqrt() * (1 - ab_prev) / (1 - ab_t)) * xt
    var = (1 - ab_prev) / (1 - ab_t) * beta_t
    return mean, var


def forward_trajectory(x0: torch.Tensor, schedule: NoiseSchedule,
                       generator: torch.Generator | None = None) -> torch.Tensor:
    """Run the Markov chain x_i = sqrt(alpha_i) x_{i-1} + sqrt(beta_i) eps_i from x_0 through every
    entry of the schedule. x0: (B, ...). Returns (N+1, B, ...): x_0, x_1, ..., x_N."""
    check_tensor("x0", x0, min_ndim=1)
    check_schedule(schedule)
    alphas = schedule.alphas.to(x0.dtype)
    xs = [x0]
    for a in alphas:
        z = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
        xs.append(a.sqrt() * xs[-1] + (1 - a).sqrt() * z)
    return torch.stack(xs)
