"""Decomposed diffusion sampling (DDS; Chung, Lee & Ye, ICLR 2024), "Decomposed diffusion
sampler for accelerating large-scale inverse problems".

Scope: DDS for a linear y = A x + sigma_y n with the prior given as a denoiser: at each
step the Tweedie estimate x0_hat is corrected by a few conjugate-gradient (CG) steps on the
normal equations started at x0_hat, so the correction stays in the Krylov subspace
x0_hat + K_M (the tangent space argument of the paper), and a DDIM step with eta = 0.85
re-noises the corrected estimate. No gradient through the network (unlike DPS), so a step
costs one network call plus M applications of A^T A.

Notation (paper section 3.3 and Algorithm 1; entries i = N-1 .. 0 of a respaced schedule)
    x0_hat, eps_hat   D(x_i, t_i) = E[x_0 | x_i] and its noise estimate (Tweedie, eq. 4)
    M                 CG steps per diffusion step (`cg_iters`; the paper uses M = 5 for CT and MRI)
    gamma             weight of the proximal term (0: plain CG on A^T A x = A^T y, the paper's
                      noiseless setting; > 0: (A^T A + gamma I) x = A^T y + gamma x0_hat)
    x0_tilde          CG_M(A^T A + gamma I, A^T y + gamma x0_hat, start x0_hat)     (eq. 13)
    eta               DDIM stochasticity (paper: 0.85); sigma_i from `samplers.ddim_sigma`
Steps per entry i (Algorithm 1):
    1. x0_hat, eps_hat = D(x_i, t_i)                     (no graph: torch.no_grad)
    2. x0_tilde = M CG steps from x0_hat                 (data consistency on the clean estimate)
    3. x_{i-1} = sqrt(ab_prev) x0_tilde + sqrt(1 - ab_prev - sigma_i^2) eps_hat + sigma_i z
                                                         (DDIM with the corrected x0, eq. 14)
The last step (ab_prev = 1) returns x0_tilde. About 50 network calls in the paper.
"""
from __future__ import annotations

import torch

from ..._validate import check_int, check_nonneg, check_operator
from ...samplers import _check_levels, ddim_step, reverse_loop
from ...schedules import NoiseSchedule
from ..operators import LinearOperator, conjugate_gradient
from .common import setup

__all__ = ["dds", "dds_data_step"]


def dds_data_step(x0_hat: torch.Tensor, y: torch.Tensor, operator: LinearOperator, cg_iters: int = 5,
                  gamma: float = 0.0) -> torch.Tensor:
    """x0_tilde: `cg_iters` CG steps on (A^T A + gamma I) x = A^T y + gamma x0_hat started at
    x0_hat (step 2, module doc). x0_hat: (B, *in_shape), y: (B, *out_shape) -> (B, *in_shape).
    cg_iters = 0 returns x0_hat; many steps with gamma = 0 converge to the least-squares
    solution nearest x0_hat (x0_hat + A^+ (y - A x0_hat))."""
    check_operator(operator, linear=True, who="dds_data_step")
    x0_hat, y = operator._check_x(x0_hat, "x0_hat"), operator._check_y(y)
    if len(x0_hat) != len(y):
        raise ValueError(f"x0_hat and y must have the same batch size, got {len(x0_hat)} and {len(y)}")
    cg_iters = check_int("cg_iters", cg_iters, lo=0)
    gamma = check_nonneg("gamma", gamma)
    if cg_iters == 0:
        return x0_hat
    # in float64 with CG's default stopping rule: once A^T A's few distinct eigenvalues are
    # resolved (MRI: 1/2 and 1, two steps), float32 round-off would make later steps blow up
    x0d, yd = x0_hat.double(), y.double()
    b = operator.A_adjoint(yd) + gamma * x0d
    x0_tilde = conjugate_gradient(lambda v: operator._A_adjoint(operator._A(v)) + gamma * v, b, x0=x0d,
                                  iters=cg_iters)
    return x0_tilde.to(x0_hat.dtype)


def dds(y: torch.Tensor, operator: LinearOperator, denoiser, schedule: NoiseSchedule, *, steps: int | None = 50,
        cg_iters: int = 5, gamma: float = 0.0, eta: float = 0.85, x_T: torch.Tensor | None = None,
        generator: torch.Generator | None = None, return_trajectory: bool = False, callback=None):
    """DDS (Chung, Lee & Ye 2024, Algorithm 1; module doc steps 1-3).

    y: (B, *out_shape) measurement of the [-1, 1] image; operator: a LinearOperator (CT, MRI,
    ...); denoiser: a Denoiser or plain callable D(x_t, t) -> x0_hat for the original
    timesteps of `schedule`; steps: respace (network calls = steps, paper ~50); cg_iters: M;
    gamma >= 0 the proximal weight; eta in [0, 1] (paper 0.85). x_T: (B, *in_shape) start
    (default N(0, I) from `generator`). Returns x_0: (B, *in_shape), or (x_0, xs, x0_hats) with
    return_trajectory (x0_hats: the corrected x0_tilde); callback gets {'x', 'i', 't',
    'denoised'} per step.
    """
    cg_iters = check_int("cg_iters", cg_iters, lo=0)
    gamma = check_nonneg("gamma", gamma)
    eta = check_nonneg("eta", eta, upper=1.0)
    y, D, schedule, x = setup(y, operator, denoiser, schedule, steps, x_T, generator, linear=True, who="DDS")

    def step(x, i, t, ab_t, ab_prev, z):
        _check_levels(ab_t, ab_prev)
        with torch.no_grad():
            x0, eps = D.x0_eps(x, t, alpha_bar=ab_t)                                 # 1.
        x0 = dds_data_step(x0, y, operator, cg_iters, gamma)                         # 2.
        if ab_prev >= 1.0:
            return x0, x0, {}
        return ddim_step(x, x0, eps, ab_t, ab_prev, eta, z), x0, {}                   # 3.
    return reverse_loop(step, x, schedule, generator=generator, return_trajectory=return_trajectory,
                        callback=callback, needs_noise=eta > 0)
