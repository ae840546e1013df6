"""DiffPIR: denoising diffusion models for plug-and-play image restoration
(Zhu, Zhang, Liang, Cao, Wen, Timofte & Van Gool, CVPRW 2023).

Scope: Algorithm 1 of the paper for a linear y = A x + sigma_y n: half-quadratic splitting
in which the prior step is one call of the diffusion denoiser, the data step is a
quadratic problem solved in closed form (SVD / Fourier / mask) or by conjugate gradient,
and the result is re-noised to the next level with a mix of the implied and fresh noise.

Notation (DiffPIR section 3; entries i = N-1 .. 0 of a respaced schedule)
    sigmabar_i = sqrt((1 - ab_i) / ab_i)       the noise level of x_i / sqrt(ab_i)
    rho_i = lam sigma_y^2 / sigmabar_i^2        weight of the data-step coupling (Alg. 1)
    x0^(i)     = D(x_i, t_i)                                             (eq. 11, prior step)
    x0hat^(i)  = argmin_x ||y - A x||^2 + rho_i ||x - x0^(i)||^2         (eq. 12, data step)
               = x0^(i) + (A^T A + rho_i I)^{-1} A^T (y - A x0^(i))
    epshat     = (x_i - sqrt(ab_i) x0hat^(i)) / sqrt(1 - ab_i)           (eq. 14)
    x_{i-1}    = sqrt(ab_prev) x0hat + sqrt(1 - ab_prev) (sqrt(1 - zeta) epshat + sqrt(zeta) eps)
                                                                          (eq. 15)
zeta in [0, 1] sets how much fresh noise enters (0: DDIM-like, 1: fully re-noised). The data
step is solved in float64 in the residual form above, which stays exact as rho_i -> 0 (the
noiseless limit, where it becomes the projection x0 + A^+ (y - A x0)).
"""
from __future__ import annotations

import torch

from ..._validate import check_nonneg, check_operator, check_positive_int, check_real, check_same_shape
from ...samplers import _check_levels
from ...samplers import reverse_loop
from ...schedules import NoiseSchedule
from ..operators import LinearOperator
from .common import setup

__all__ = ["diffpir", "diffpir_step", "diffpir_data_step"]

RHO_MIN = 1e-10      # floor on rho: the data step needs A^T A + rho I to be invertible


def diffpir_data_step(x0: torch.Tensor, y: torch.Tensor, operator: LinearOperator, rho: float,
                      cg_iters: int = 100) -> torch.Tensor:
    """argmin_x ||y - A x||^2 + rho ||x - x0||^2 (DiffPIR eq. 12), in float64 and residual form.
    x0: (B, *in_shape), y: (B, *out_shape) -> (B, *in_shape)."""
    check_operator(operator, linear=True, who="diffpir_data_step")
    x0, y = operator._check_x(x0, "x0"), operator._check_y(y)
    if len(x0) != len(y):
        raise ValueError(f"x0 and y must have the same batch size, got {len(x0)} and {len(y)}")
    rho = check_nonneg("rho", rho)
    cg_iters = check_positive_int("cg_iters", cg_iters)
    x0d, yd = x0.double(), y.double()
    b = operator.A_adjoint(yd - operator.A(x0d))                    # A^T (y - A x0)
    return (x0d + operator.solve_normal(b, max(rho, RHO_MIN), iters=cg_iters)).to(x0.dtype)


def diffpir_step(xt: torch.Tensor, x0: torch.Tensor, ab_t: float, ab_prev: float, y: torch.Tensor,
                 operator: LinearOperator, sigma_y: float, lam: float, zeta: float,
                 noise: torch.Tensor | None = None, cg_iters: int = 100):
    """One DiffPIR update x_i -> x_{i-1} after the prior step (Zhu et al. 2023, Algorithm 1,
    eq. 12-15). xt, x0 = D(x_i, t_i), noise: (B, *in_shape); y: (B, *out_shape). Returns
    (x_prev, x0hat), x0hat the data-step output; the last step (ab_prev = 1) returns x0hat."""
    check_same_shape("xt", xt, optional=("noise",), x0=x0, noise=noise)
    ab_t, ab_prev = _check_levels(ab_t, ab_prev)
    sigma_y, lam = check_nonneg("sigma_y", sigma_y), check_real("lam", lam, lo=0, lo_open=True)
    zeta = check_nonneg("zeta", zeta, upper=1.0)
    # 2. data step with rho_i = lam sigma_y^2 / sigmabar_i^2 (eq. 12)
    rho = lam * sigma_y ** 2 * ab_t / (1 - ab_t)
    x0hat = diffpir_data_step(x0, y, operator, rho, cg_iters)
    if ab_prev >= 1:
        return x0hat, x0hat
    if noise is None:
        raise ValueError("diffpir_step needs a noise tensor before the last step")
    # 3. implied noise of x_i given x0hat (eq. 14)
    eps_hat = (xt - ab_t ** 0.5 * x0hat) / (1 - ab_t) ** 0.5
    # 4. re-noise to the next level, mixing implied and fresh noise (eq. 15)
    x_prev = ab_prev ** 0.5 * x0hat + (1 - ab_prev) ** 0.5 * ((1 - zeta) ** 0.5 * eps_hat + zeta ** 0.5 * noise)
    return x_prev, x0hat


def diffpir(y: torch.Tensor, operator: LinearOperator, denoiser, schedule: NoiseSchedule, *, sigma_y: float,
            steps: int | None = 100, lam: float = 7.0, zeta: float = 0.1, x_T: torch.Tensor | None = None,
            generator: torch.Generator | None = None, cg_iters: int = 100,
            return_trajectory: bool = False, callback=None):
    """DiffPIR (Zhu et al. 2023, Algorithm 1) for a linear operator: the denoiser (prior step)
    and `diffpir_step` plugged into diffedu.samplers.reverse_loop.

    y: (B, *out_shape); denoiser: a Denoiser or a plain callable D(x_t, t) -> x0_hat for the
    original timesteps of `schedule`; sigma_y >= 0: the measurement noise std (0 makes the data
    step a projection); steps: respace the schedule (the paper uses 100); lam > 0: the
    regularisation weight lambda; zeta in [0, 1]: the noise mix (defaults 7 and 0.1, those of
    deepinv's DiffPIR, which follows the official code; the paper tunes both per task).
    x_T: (B, *in_shape) start (default N(0, I)). Returns x_0: (B, *in_shape), or (x_0, xs,
    x0_hats) with return_trajectory (x0_hats are the data-step outputs x0hat); callback gets
    {'x', 'i', 't', 'x0_prior', 'denoised'}.
    """
    sigma_y = check_nonneg("sigma_y", sigma_y)
    lam = check_real("lam", lam, lo=0, lo_open=True)            # it weighs the prior against the data
    zeta = check_nonneg("zeta", zeta, upper=1.0)
    cg_iters = check_positive_int("cg_iters", cg_iters)
    y, D, schedule, x = setup(y, operator, denoiser, schedule, steps, x_T, generator, linear=True,
                              who="DiffPIR")

    def step(x, i, t, ab_t, ab_prev, z):
        # 1. prior step: the denoiser (eq. 11)
        with torch.no_grad():
            x0 = D.x0_eps(x, t, alpha_bar=ab_t)[0]
        x_prev, x0hat = diffpir_step(x, x0, ab_t, ab_prev, y, operator, sigma_y, lam, zeta, z, cg_iters)
        return x_prev, x0hat, {"x0_prior": x0}
    return reverse_loop(step, x, schedule, generator=generator, return_trajectory=return_trajectory,
                        callback=callback)
