"""Denoising diffusion restoration models (DDRM; Kawar, Elad, Ermon & Song, NeurIPS 2022).

Scope: DDRM's variational sampler for a linear y = H x + sigma_y n, run in the spectral
basis of H = U S V^T (the operator's SVD interface). Each coordinate of V^T x is updated on
its own: with the prior alone where H has a zero singular value, pulled towards the
measurement where it has one (eq. 7-8 of the paper, written in the variance-exploding
variable the paper uses and mapped back to the VP x_t of the schedule).

Notation (DDRM section 3; VE variable x / sqrt(alpha_bar), so sigma_t = sqrt((1 - ab)/ab))
    xbar = V^T x, ybar = S^+ U^T y   the spectral coordinates; ybar_j = (U^T y)_j / s_j
    sigma_t, sigma_p                  VE noise levels at entries i and i - 1 (sigma_p = 0 at the end)
    x0bar = V^T D(x_t, t)             denoised estimate; epsbar = (xbar_t - x0bar) / sigma_t
    eta, eta_b                        DDRM's hyperparameters (the paper uses 0.85 and 1)
Update of coordinate j from level t to p (eq. 8):
    s_j = 0:                   xbar_p = x0bar + sqrt(1 - eta^2) sigma_p epsbar + eta sigma_p z
    sigma_p < sigma_y / s_j:   xbar_p = x0bar + sqrt(1 - eta^2) sigma_p (ybar - x0bar) s_j / sigma_y
                                        + eta sigma_p z
    sigma_p >= sigma_y / s_j:  xbar_p = (1 - eta_b) x0bar + eta_b ybar
                                        + sqrt(sigma_p^2 - eta_b^2 sigma_y^2 / s_j^2) z
and x_prev = sqrt(ab_prev) V xbar_p. Initialisation (eq. 7): xbar_T = ybar + sqrt(sigma_T^2
- sigma_y^2 / s_j^2) z where sigma_T >= sigma_y / s_j, else sigma_T z. With sigma_y = 0 and
eta_b = 1 the last step returns ybar on every measured coordinate, so H x = y exactly.
"""
from __future__ import annotations

import math

import torch

from ..._validate import check_nonneg, check_operator, check_same_shape, check_tensor
from ...samplers import _check_levels, reverse_loop
from ...schedules import NoiseSchedule
from ..operators import LinearOperator
from .common import setup

__all__ = ["ddrm", "ddrm_step", "spectral_measurement"]


def spectral_measurement(y: torch.Tensor, operator: LinearOperator):
    """(ybar, s, measured): ybar = S^+ U^T y: (B, n), the singular values s: (n,) in y's dtype,
    and the mask measured: (n,) bool of the coordinates with s_j > rcond * s_max."""
    check_operator(operator, svd=True, who="spectral_measurement")
    y = operator._check_y(y)
    s = operator.singular_values().to(dtype=y.dtype, device=y.device)
    measured = s > operator.rcond * s.max()
    k = min(len(s), math.prod(operator.out_shape))
    uy = operator.U_T(y)[:, :k]
    ybar = y.new_zeros(len(y), len(s))
    ybar[:, :k] = torch.where(measured[:k], uy / torch.where(measured[:k], s[:k], torch.ones_like(s[:k])),
                              torch.zeros_like(uy))
    return ybar, s, measured


def ddrm_step(xt: torch.Tensor, x0_hat: torch.Tensor, eps_hat: torch.Tensor, ab_t: float, ab_prev: float,
              ybar: torch.Tensor, s: torch.Tensor, measured: torch.Tensor, sigma_y: float,
              operator: LinearOperator, eta: float = 0.85, eta_b: float = 1.0,
              noise: torch.Tensor | None = None) -> torch.Tensor:
    """One DDRM update x_t -> x_prev (Kawar et al. 2022, eq. 8) in the VP variable.
    xt, x0_hat, eps_hat: (B, *in_shape); ybar: (B, n), s: (n,), measured: (n,) from
    `spectral_measurement`; noise: (B, n) standard normal (unused when ab_prev = 1)."""
    check_operator(operator, svd=True, who="DDRM")
    check_same_shape("xt", operator._check_x(xt, "xt"), x0_hat=x0_hat, eps_hat=eps_hat)
    ab_t, ab_prev = _check_levels(ab_t, ab_prev)
    sigma_y = check_nonneg("sigma_y", sigma_y)
    eta, eta_b = check_nonneg("eta", eta, upper=1.0), check_nonneg("eta_b", eta_b, upper=1.0)
    if noise is not None and check_tensor("noise", noise).shape != (len(xt), operator._n):
        raise ValueError(f"noise must have shape (B, n) = ({len(xt)}, {operator._n}) (spectral coordinates), "
                         f"got {tuple(noise.shape)}")
    sig_p = ((1 - ab_prev) / ab_prev) ** 0.5                          # VE level of the target
    # 1. spectral coordinates of the denoised estimate and of the noise direction
    x0bar = operator.V_T(x0_hat)
    epsbar = operator.V_T(eps_hat)                                   # = (xbar_t - x0bar) / sigma_t
    z = noise if noise is not None else torch.zeros_like(x0bar)
    # 2. s_j = 0: DDIM-like step with the prior only (eq. 8, first line)
    x_p = x0bar + (1 - eta ** 2) ** 0.5 * sig_p * epsbar + eta * sig_p * z
    if sigma_y > 0:
        # 3. measured and less noisy than y's level sigma_y / s_j: step towards ybar (second line)
        s_safe = torch.where(measured, s, torch.ones_like(s))
        after = measured & (s * sig_p < sigma_y)
        towards_y = x0bar + (1 - eta ** 2) ** 0.5 * sig_p * (ybar - x0bar) * s_safe / sigma_y + eta * sig_p * z
        x_p = torch.where(after, towards_y, x_p)
        var_y = (sigma_y / s_safe) ** 2                               # noise variance of ybar_j
    else:
        var_y = torch.zeros_like(s)
    # 4. measured and noisier than y: sample around the eta_b mix of ybar and x0bar (third line)
    before = measured & (s * sig_p >= sigma_y)
    std_b = (sig_p ** 2 - eta_b ** 2 * var_y).clamp_min(0).sqrt()
    from_y = (1 - eta_b) * x0bar + eta_b * ybar + std_b * z
    x_p = torch.where(before, from_y, x_p)
    # 5. back to pixel space and to the VP scale
    return ab_prev ** 0.5 * operator.V(x_p)


def ddrm(y: torch.Tensor, operator: LinearOperator, denoiser, schedule: NoiseSchedule, *, sigma_y: float,
         steps: int | None = 20, eta: float = 0.85, eta_b: float = 1.0, x_T: torch.Tensor | None = None,
         generator: torch.Generator | None = None, return_trajectory: bool = False, callback=None):
    """DDRM (Kawar et al. 2022, eq. 7-8) for y = H x + sigma_y n with an operator that has an
    SVD (Dense, Inpainting, SuperResolution, Blur): `ddrm_step` plugged into
    diffedu.samplers.reverse_loop.

    y: (B, *out_shape); denoiser: a Denoiser or a plain callable D(x_t, t) -> x0_hat for the
    original timesteps of `schedule`; sigma_y >= 0: the measurement noise std; steps: respace
    the schedule (the paper uses 20); eta, eta_b in [0, 1] (paper: 0.85, 1). x_T: (B, *in_shape)
    start; by default drawn from eq. 7 (the measurement plus noise) with `generator`. Returns
    x_0: (B, *in_shape), or (x_0, xs, x0_hats) with return_trajectory; callback as
    diffedu.samplers.
    """
    sigma_y = check_nonneg("sigma_y", sigma_y)
    eta, eta_b = check_nonneg("eta", eta, upper=1.0), check_nonneg("eta_b", eta_b, upper=1.0)
    given = x_T is not None
    y, D, schedule, x = setup(y, operator, denoiser, schedule, steps, x_T, generator, svd=True, who="DDRM")
    ybar, s, measured = spectral_measurement(y, operator)
    if not given:       # eq. 7: x_T | y, in the VE variable, then scaled to VP
        ab_T = schedule.alpha_bar[-1].item()
        sig_T = ((1 - ab_T) / ab_T) ** 0.5
        var_y = (sigma_y / torch.where(measured, s, torch.ones_like(s))) ** 2
        use_y = measured & (var_y <= sig_T ** 2)
        z = operator.V_T(x)                                          # N(0, I) in spectral coords
        xbar = torch.where(use_y, ybar + (sig_T ** 2 - var_y).clamp_min(0).sqrt() * z, sig_T * z)
        x = ab_T ** 0.5 * operator.V(xbar)

    def step(x, i, t, ab_t, ab_prev, z):
        with torch.no_grad():
            x0, eps = D.x0_eps(x, t, alpha_bar=ab_t)
        # reverse_loop's z: (B, *in_shape) holds B * n numbers, n = len(s) = prod(in_shape)
        noise = None if z is None else z.reshape(len(x), -1)        # (B, n) spectral noise
        x_prev = ddrm_step(x, x0.detach(), eps.detach(), ab_t, ab_prev, ybar, s, measured, sigma_y,
                           operator, eta, eta_b, noise)
        return x_prev, x0, {}
    return reverse_loop(step, x, schedule, generator=generator, return_trajectory=return_trajectory,
                        callback=callback)
