"""Diffusion posterior sampling (DPS; Chung, Kim, McCann, Klasky & Ye, ICLR 2023).

Scope: Algorithm 1 of the paper (Gaussian measurement noise): a DDPM ancestral step with
the prior's denoiser, followed by a gradient step on the measurement residual of the
denoised estimate. Works for any differentiable A, linear or not (phase retrieval).
Two forms, equal step for step (tested):
    dps(y, operator, denoiser, schedule)       `dps_step` plugged into samplers.reverse_loop
    dps_denoiser(y, operator, denoiser, schedule)   a DPSDenoiser, the same update written as a
                                               guided denoiser, for samplers.ddpm (or any sampler)

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

import torch

from ..._validate import check_nonneg, check_operator, check_schedule, check_tensor, rows
from ...denoiser import Denoiser, as_denoiser, t_batch
from ...samplers import _check_levels, ddpm_step, reverse_loop
from ...schedules import NoiseSchedule
from ..operators import Operator
from .common import setup

__all__ = ["dps", "dps_step", "dps_denoiser", "DPSDenoiser"]


def _residual_grad(D: Denoiser, x: torch.Tensor, t: torch.Tensor, ab_t, y: torch.Tensor,
                   operator: Operator, cond=None):
    """x0_hat(x_i), grad_{x_i} ||y - A(x0_hat)||^2 and ||r||: (B,), with the graph through D
    (DPS eq. 10: x0_hat depends on x_i). ab_t: a float, or a tensor broadcasting against x."""
    with torch.enable_grad():
        xi = x.detach().requires_grad_(True)
        x0 = D.x0_eps(xi, t, cond, alpha_bar=ab_t)[0]
        r2 = rows(y - operator.A(x0)).pow(2).sum(1)                        # ||r||^2 per sample
        (grad,) = torch.autograd.grad(r2.sum(), xi)                        # grad_{x_i} ||r||^2
    return x0.detach(), grad, r2.detach().sqrt()


def _per_sample(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """(B,) -> (B, 1, ..., 1), to scale the rows of x."""
    return v.reshape((-1,) + (1,) * (x.ndim - 1))


def dps_step(x: torch.Tensor, t: torch.Tensor, ab_t: float, ab_prev: float, y: torch.Tensor,
             operator: Operator, denoiser, zeta: float, noise: torch.Tensor | None = None):
    """One DPS update x_i -> x_{i-1} (Chung et al. 2023, Algorithm 1, lines 3-7).
    x: (B, ...) at timesteps t: (B,); y: (B, *out_shape); denoiser: a Denoiser or a plain
    callable D(x_t, t) -> x0_hat. Returns (x_prev, x0_hat, ||r||: (B,)), where
    ||r|| = ||y - A(x0_hat(x_i))|| is the residual before the step."""
    D = as_denoiser(denoiser)
    check_operator(operator, who="DPS")
    check_tensor("x", x, min_ndim=1)
    y = operator._check_y(y)
    if len(y) != len(x):
        raise ValueError(f"y must have one row per row of x ({len(x)}), got {len(y)}")
    ab_t, ab_prev = _check_levels(ab_t, ab_prev)
    zeta = check_nonneg("zeta", zeta)
    # 1. denoise with the graph kept: x0_hat depends on x_i (DPS eq. 10, Tweedie)
    x0, grad, rnorm = _residual_grad(D, x, t, ab_t, y, operator)
    # 2. DDPM ancestral step from x_i with x0_hat (Alg. 1, line 6; DDPM eq. 6-7)
    x_prev = ddpm_step(x.detach(), x0, ab_t, ab_prev, noise)
    # 3. measurement step with zeta_i = zeta / ||r|| (Alg. 1, line 7)
    zeta_i = _per_sample(zeta / rnorm.clamp_min(1e-12), x).to(x.dtype)
    return x_prev - zeta_i * grad, x0, rnorm


def dps(y: torch.Tensor, operator: Operator, denoiser, schedule: NoiseSchedule, *, zeta: float = 0.5,
        steps: int | None = None, x_T: torch.Tensor | None = None,
        generator: torch.Generator | None = None, return_trajectory: bool = False, callback=None):
    """Diffusion posterior sampling (Chung et al. 2023, Algorithm 1, Gaussian noise).

    y: (B, *out_shape) measurements (one sample per row; repeat y for several samples of one
    measurement); operator: any diffedu.inverse Operator whose A is differentiable, linear or
    not; denoiser: a Denoiser or a plain callable D(x_t, t) -> x0_hat for the original
    timesteps of `schedule`, differentiable in x_t; zeta: step size scale (zeta_i = zeta /
    ||y - A(x0_hat)||; the default 0.5 equals the official code's scale 1.0, module doc);
    steps: respace the schedule (the paper uses all 1000). x_T: (B, *in_shape) start (default
    N(0, I) from `generator`). Returns x_0: (B, *in_shape), or (x_0, xs (S+1, B, ...),
    x0_hats (S, B, ...)) with return_trajectory; callback gets {'x', 'i', 't', 'residual',
    'denoised'} per step.
    """
    zeta = check_nonneg("zeta", zeta)
    y, D, schedule, x = setup(y, operator, denoiser, schedule, steps, x_T, generator, who="DPS")

    def step(x, i, t, ab_t, ab_prev, z):
        x_prev, x0, rnorm = dps_step(x, t, ab_t, ab_prev, y, operator, D, zeta, z)
        return x_prev, x0, {"residual": rnorm}
    return reverse_loop(step, x, schedule, generator=generator, return_trajectory=return_trajectory,
                        callback=callback)


class DPSDenoiser(Denoiser):
    """DPS as a guided denoiser (module doc): for x: (B, ...) at timesteps t of `schedule`,
        x0_eps(x, t) = (x0_hat - zeta_i grad ||y - A(x0_hat)||^2 / c_i,  the matching eps_hat)
    with c_i the DDPM mean's x0 weight at t's entry i of `schedule` (the schedule the sampler
    runs). The level comes from t's entry (a sampler's `alpha_bar` is that entry's, and is
    not needed). Rows may sit at different entries. Build it with `dps_denoiser`."""

    def __init__(self, y: torch.Tensor, operator: Operator, denoiser: Denoiser, schedule: NoiseSchedule,
                 zeta: float):
        self.y, self.operator, self.denoiser, self.schedule, self.zeta = y, operator, denoiser, schedule, zeta
        self._ab = schedule.alpha_bar.tolist()

    def _levels(self, t: torch.Tensor, x: torch.Tensor):
        """(ab_t, c) at t's entries: floats when all rows share one entry (plain-number
        arithmetic, as in dps_step), else (B, 1, ..., 1) tensors in x's dtype."""
        idx = self.schedule.index_of(t)                                     # (B,) entries
        if len(idx) and bool((idx == idx[0]).all()):
            i = int(idx[0])
            ab_t, ab_prev = self._ab[i], (self._ab[i - 1] if i > 0 else 1.0)
        else:
            ab_t = self.schedule.at(idx, x)
            ab_prev = torch.where(_per_sample(idx, x) > 0, self.schedule.at((idx - 1).clamp_min(0), x), 1.0)
        c = ab_prev ** 0.5 * (1 - ab_t / ab_prev) / (1 - ab_t)            # DDPM mean's x0 weight
        return ab_t, c

    def x0_eps(self, x: torch.Tensor, t, cond=None, alpha_bar=None):
        t = t_batch(t, x)
        if len(x) != len(self.y):
            raise ValueError(f"x must have one row per row of y ({len(self.y)}), got {len(x)}")
        ab_t, c = self._levels(t, x)
        # 1. x0_hat and grad ||r||^2 through the prior's denoiser (Alg. 1, lines 4 and 7)
        x0, grad, rnorm = _residual_grad(self.denoiser, x, t, ab_t, self.y, self.operator, cond)
        # 2. shift x0_hat so that the DDPM step from it lands on x' - zeta_i grad ||r||^2
        zeta_i = _per_sample(self.zeta / rnorm.clamp_min(1e-12), x)
        x0 = x0 - zeta_i.to(x.dtype) * grad / c
        # 3. the noise estimate that matches the guided x0_hat
        return x0, (x - ab_t ** 0.5 * x0) / (1 - ab_t) ** 0.5


def dps_denoiser(y: torch.Tensor, operator: Operator, denoiser, schedule: NoiseSchedule, *,
                 zeta: float = 0.5) -> DPSDenoiser:
    """DPS as a guided Denoiser D_y(x_t, t) = x0_hat - zeta_i grad ||y - A(x0_hat)||^2 / c_i
    (module doc), for the entries of `schedule`, the schedule the sampler runs (respace it
    first). `diffedu.samplers.ddpm(D_y, x_T, schedule)` then equals `dps(y, operator,
    denoiser, schedule)` step for step; other samplers (DDIM) give DPS-flavoured variants.
    y: (B, *out_shape); denoiser: a Denoiser or a plain callable D(x_t, t) -> x0_hat."""
    check_operator(operator, who="DPS")
    zeta = check_nonneg("zeta", zeta)
    check_schedule(schedule)
    D = as_denoiser(denoiser, schedule)
    y = check_tensor("y", operator._check_y(y), finite=True)
    return DPSDenoiser(y, operator, D, schedule, zeta)
