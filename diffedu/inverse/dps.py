"""Diffusion posterior sampling (DPS; Chung, Kim, McCann, Klasky & Ye, ICLR 2023).

Scope: Algorithm 1 of the paper (Gaussian measurement noise): a DDPM ancestral step with
the prior's denoiser, followed by a gradient step on the measurement residual of the
denoised estimate. Works for any differentiable A, linear or not (phase retrieval).
Also holds the small checks and the trajectory recorder that the other posterior samplers
(DDRM, RePaint, DiffPIR) share.

Notation (DPS, Algorithm 1; entries i = N-1 .. 0 of a possibly respaced schedule)
    ab_i, ab_prev     alpha_bar at entry i and i - 1 (ab_prev = 1 after the last step)
    x0_hat(x_i)       the denoiser D(x_i, t_i) = E[x_0 | x_i]  (Tweedie, DPS eq. 10)
    x'_{i-1}          the DDPM ancestral step from x_i towards x0_hat (DPS Alg. 1, line 6)
    r(x_i)            y - A(x0_hat(x_i)),  residual of the denoised estimate
    zeta_i            zeta / ||r(x_i)||   (the step size the paper uses in its experiments)
    x_{i-1} = x'_{i-1} - zeta_i grad_{x_i} ||r(x_i)||^2          (Alg. 1, line 7)
Since grad ||r||^2 = 2 ||r|| grad ||r||, the update is x' - 2 zeta grad ||r||: the
official code steps `scale * grad ||r||`, so its `scale` equals 2 zeta here.
The norm is taken per sample, so the samples of a batch do not interact.
`dps_denoiser` writes the same update as a guided denoiser (the package's convention that
posterior sampling wraps a denoiser): the DDPM mean is c_i x0_hat + (...) x_i with
c_i = sqrt(ab_prev) (1 - ab_i / ab_prev) / (1 - ab_i), so shifting x0_hat by
-zeta_i grad ||r||^2 / c_i reproduces Algorithm 1 inside diffedu.samplers.ddpm.
"""
from __future__ import annotations

import math
import numbers

import torch

from ..samplers import Trace as _Trace, ddpm_step
from ..schedules import NoiseSchedule
from .operators import LinearOperator, Operator

__all__ = ["dps", "dps_step", "dps_denoiser"]


# ----------------------------------------------------------------------------- shared helpers

def _check_operator(operator, linear=False, svd=False, who="this sampler"):
    if not isinstance(operator, Operator):
        raise TypeError(f"operator must be a diffedu.inverse Operator (e.g. Dense, Inpainting), "
                        f"got {type(operator).__name__}")
    if (linear or svd) and not isinstance(operator, LinearOperator):
        raise TypeError(f"{who} needs a linear operator, got the nonlinear "
                        f"{type(operator).__name__}; use diffedu.inverse.dps for nonlinear A")
    if svd and not operator.has_svd:
        raise TypeError(f"{who} needs an operator with an SVD (V_T, V, U_T, U, singular_values), "
                        f"and {type(operator).__name__} has none; use dps, diffpir or repaint")
    return operator


def _check_nonneg(name, v, upper=None):
    if isinstance(v, torch.Tensor) and v.numel() == 1:
        v = v.item()
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or math.isnan(v) or math.isinf(v):
        raise ValueError(f"{name} must be a finite number, got {v!r}")
    if v < 0 or (upper is not None and v > upper):
        rng = f"in [0, {upper}]" if upper is not None else ">= 0"
        raise ValueError(f"{name} must be {rng}, got {v!r}")
    return float(v)


def _randn(shape, like, generator):
    """Standard normal noise of `shape` in like's dtype/device, drawn from a CPU generator."""
    return torch.randn(shape, generator=generator, dtype=like.dtype).to(like.device)


def _setup(y, operator, schedule, steps, x_T, generator):
    """Checks y against the operator, respaces the schedule and draws x_T ~ N(0, I) if needed.
    Returns (y, schedule, x_T); x_T: (B, *in_shape) with B = len(y)."""
    y = operator._check_y(y)
    if not isinstance(schedule, NoiseSchedule):
        raise TypeError(f"schedule must be a NoiseSchedule (see diffedu.schedules), got {type(schedule).__name__}")
    if steps is not None:
        schedule = schedule.respace(steps)
    if x_T is None:
        if operator.in_shape is None:
            raise ValueError(f"{type(operator).__name__} has no fixed input shape: pass x_T, "
                             f"the starting noise (B, C, H, W)")
        x_T = _randn((len(y),) + tuple(operator.in_shape), y, generator)
    else:
        x_T = operator._check_x(x_T, "x_T")
        if len(x_T) != len(y):
            raise ValueError(f"x_T and y must have the same batch size, got {len(x_T)} and {len(y)} "
                             f"(repeat y, e.g. y.expand(n, ...), for n samples of one measurement)")
    return y, schedule, x_T


def _timesteps(schedule, i, x):
    return torch.full((len(x),), int(schedule.timesteps[i]), dtype=torch.long, device=x.device)


# ----------------------------------------------------------------------------- DPS

def dps_step(x: torch.Tensor, t: torch.Tensor, ab_t: float, ab_prev: float, y: torch.Tensor,
             operator: Operator, denoiser, zeta: float, noise: torch.Tensor | None = None):
    """One DPS update x_i -> x_{i-1} (Chung et al. 2023, Algorithm 1, lines 3-7).
    x: (B, ...) at timesteps t: (B,); y: (B, *out_shape). Returns (x_prev, x0_hat, ||r||: (B,)),
    where ||r|| = ||y - A(x0_hat(x_i))|| is the residual before the step."""
    # 1. denoise with the graph kept: x0_hat depends on x_i (DPS eq. 10, Tweedie)
    with torch.enable_grad():
        xi = x.detach().requires_grad_(True)
        x0 = denoiser(xi, t)
        r2 = (y - operator.A(x0)).reshape(len(x), -1).pow(2).sum(1)        # ||r||^2 per sample
        (grad,) = torch.autograd.grad(r2.sum(), xi)                        # grad_{x_i} ||r||^2
    x0, rnorm = x0.detach(), r2.detach().sqrt()
    # 2. DDPM ancestral step from x_i with x0_hat (Alg. 1, line 6; DDPM eq. 6-7)
    x_prev = ddpm_step(x.detach(), x0, ab_t, ab_prev, noise)
    # 3. measurement step with zeta_i = zeta / ||r|| (Alg. 1, line 7)
    zeta_i = (zeta / rnorm.clamp_min(1e-12)).reshape((-1,) + (1,) * (x.ndim - 1)).to(x.dtype)
    return x_prev - zeta_i * grad, x0, rnorm


def dps(y: torch.Tensor, operator: Operator, denoiser, schedule: NoiseSchedule, zeta: float = 0.5,
        steps: int | None = None, x_T: torch.Tensor | None = None,
        generator: torch.Generator | None = None, return_trajectory: bool = False, callback=None):
    """Diffusion posterior sampling (Chung et al. 2023, Algorithm 1, Gaussian noise).

    y: (B, *out_shape) measurements (one sample per row; repeat y for several samples of one
    measurement); operator: any diffedu.inverse Operator whose A is differentiable, linear or
    not; denoiser: D(x_t, t) -> x0_hat for the original timesteps of `schedule`, differentiable
    in x_t; zeta: step size scale (zeta_i = zeta / ||y - A(x0_hat)||; the default 0.5 equals
    the official code's scale 1.0, module doc); steps: respace the
    schedule (the paper uses all 1000). x_T: (B, *in_shape) start (default N(0, I) from
    `generator`). Returns x_0: (B, *in_shape), or (x_0, xs (S+1, B, ...), x0_hats (S, B, ...))
    with return_trajectory; callback gets {'x', 'i', 't', 'denoised', 'residual'} per step.
    """
    _check_operator(operator)
    zeta = _check_nonneg("zeta", zeta)
    if not callable(denoiser):
        raise TypeError(f"denoiser must be callable as D(x_t, t), got {type(denoiser).__name__}")
    y, schedule, x = _setup(y, operator, schedule, steps, x_T, generator)
    ab = schedule.alpha_bar.tolist()
    trace = _Trace(x, return_trajectory, callback)
    for i in reversed(range(len(schedule))):
        t = _timesteps(schedule, i, x)
        ab_prev = ab[i - 1] if i > 0 else 1.0
        noise = _randn(x.shape, x, generator) if i > 0 else None
        x, x0, rnorm = dps_step(x, t, ab[i], ab_prev, y, operator, denoiser, zeta, noise)
        trace(x, x0, i, t=int(schedule.timesteps[i]), residual=rnorm)
    return trace.result(x)


def dps_denoiser(denoiser, y: torch.Tensor, operator: Operator, schedule: NoiseSchedule, zeta: float = 0.5):
    """DPS as a guided denoiser D_y(x_t, t) = x0_hat - zeta_i grad ||y - A(x0_hat)||^2 / c_i
    (module doc), for the entries of `schedule`, the schedule the sampler runs (respace it
    first). `diffedu.samplers.ddpm(D_y, x_T, schedule)` then equals `dps(y, ..., schedule)`
    step for step; other samplers (DDIM) give DPS-flavoured variants. y: (B, *out_shape)."""
    _check_operator(operator)
    zeta = _check_nonneg("zeta", zeta)
    if not isinstance(schedule, NoiseSchedule):
        raise TypeError(f"schedule must be a NoiseSchedule (see diffedu.schedules), got {type(schedule).__name__}")
    y = operator._check_y(y)
    ab = schedule.alpha_bar.tolist()

    def D_y(x: torch.Tensor, t) -> torch.Tensor:
        t = torch.as_tensor(t, device=x.device).reshape(-1).expand(len(x))
        i = int(schedule.index_of(t[:1].cpu())[0])
        ab_t, ab_prev = ab[i], (ab[i - 1] if i > 0 else 1.0)
        c = ab_prev ** 0.5 * (1 - ab_t / ab_prev) / (1 - ab_t)           # DDPM mean's x0 weight
        with torch.enable_grad():
            xi = x.detach().requires_grad_(True)
            x0 = denoiser(xi, t)
            r2 = (y - operator.A(x0)).reshape(len(x), -1).pow(2).sum(1)
            (grad,) = torch.autograd.grad(r2.sum(), xi)
        zeta_i = (zeta / r2.detach().sqrt().clamp_min(1e-12)).reshape((-1,) + (1,) * (x.ndim - 1))
        return x0.detach() - zeta_i.to(x.dtype) * grad / c
    return D_y
