"""The measurement-consistent sampler of Song, Shen, Xing & Ermon (ICLR 2022), "Solving
inverse problems in medical imaging with score-based generative models".

Scope: their Algorithm (a reverse diffusion whose every step is preceded by a data-consistency
step) for a linear y = A x, with the prior given as a denoiser (the contract), written in
the VP variable of a `NoiseSchedule` and run by `samplers.reverse_loop`. The paper works in a
transform domain T (Fourier for MRI, Radon for CT) with a subsampling Lambda, A = P(Lambda) T;
for any LinearOperator we write the same blend with the pseudo-inverse (below), which for
single-coil Cartesian MRI is exactly their k-space blend restricted to real images.

Notation (paper section 3; entries i = N-1 .. 0 of a possibly respaced schedule)
    ab_i          alpha_bar at entry i; x_i = sqrt(ab_i) x_0 + sqrt(1 - ab_i) z
    y_hat_i       the measurement noised to level i:  sqrt(ab_i) y + sqrt(1 - ab_i) A z_i,
                  z_i ~ N(0, I) fresh (paper eq. 8: the forward process pushed through A)
    lam           the blend weight in [0, 1] (paper's lambda; 1 = hard replacement)
    x'_i          x_i + lam A^+ (y_hat_i - A x_i)        (paper eq. 10, general A)
Why the pseudo-inverse: with A = P(Lambda) T and T orthogonal (Fourier), the paper's
T^{-1}[lam Lambda y_hat + (1 - lam) Lambda T x + (I - Lambda) T x] equals x + lam T^{-1}
P^T (y_hat - A x) = x + lam A^+ (y_hat - A x). For a real image and a mask without its
mirror lines, replacing k-space values and taking the real part would apply only half of
the correction; A^+ applies all of it (SingleCoilMRI's SVD gives A^+ in closed form). For CT
(T is not orthogonal) A^+ is the minimum-norm correction, found by `cg_iters` conjugate-
gradient steps: the paper instead fills the missing views of a full sinogram and inverts it.
Steps per entry i:
    1. y_hat_i (the measurement at the current noise level)
    2. x'_i = x_i + lam A^+ (y_hat_i - A x_i)            (data consistency)
    3. x_{i-1} = DDPM ancestral step from x'_i with x0_hat = D(x'_i, t_i)   (the predictor)
Network calls: one per entry (steps). No gradient through the network.
"""
from __future__ import annotations

import torch

from ..._validate import check_int, check_nonneg, check_operator
from ...samplers import ddpm_step, reverse_loop
from ...schedules import NoiseSchedule
from ..operators import LinearOperator
from .common import randn, setup

__all__ = ["song_mc", "consistency_step", "noisy_measurement"]


def noisy_measurement(y: torch.Tensor, operator: LinearOperator, ab: float,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """y_hat = sqrt(ab) y + sqrt(1 - ab) A z, z ~ N(0, I) (step 1): the measurement at the
    diffusion's level ab. y: (B, *out_shape) -> (B, *out_shape)."""
    check_operator(operator, linear=True, who="noisy_measurement")
    y = operator._check_y(y)
    ab = check_nonneg("ab", ab, upper=1.0)
    if ab >= 1.0:
        return y
    z = randn((len(y),) + tuple(operator.in_shape), y, generator)
    return ab ** 0.5 * y + (1 - ab) ** 0.5 * operator.A(z)


def consistency_step(x: torch.Tensor, y_hat: torch.Tensor, operator: LinearOperator, lam: float,
                     cg_iters: int = 30) -> torch.Tensor:
    """x' = x + lam A^+ (y_hat - A x) (step 2, module doc). x: (B, *in_shape), y_hat:
    (B, *out_shape); lam in [0, 1]; A^+ exact for an operator with an SVD, else `cg_iters`
    conjugate-gradient steps. With lam = 1, A x' = the projection of y_hat on range(A)."""
    check_operator(operator, linear=True, who="consistency_step")
    x, y_hat = operator._check_x(x), operator._check_y(y_hat, "y_hat")
    if len(x) != len(y_hat):
        raise ValueError(f"x and y_hat must have the same batch size, got {len(x)} and {len(y_hat)}")
    lam = check_nonneg("lam", lam, upper=1.0)
    cg_iters = check_int("cg_iters", cg_iters, lo=1)
    if lam == 0:
        return x
    return x + lam * operator.A_dagger(y_hat - operator.A(x), iters=cg_iters)


def song_mc(y: torch.Tensor, operator: LinearOperator, denoiser, schedule: NoiseSchedule, *, lam: float = 1.0,
            steps: int | None = 100, cg_iters: int = 30, x_T: torch.Tensor | None = None,
            generator: torch.Generator | None = None, return_trajectory: bool = False, callback=None):
    """Song, Shen, Xing & Ermon (2022): reverse diffusion with a measurement-space blend of
    weight `lam` before every step (module doc, steps 1-3).

    y: (B, *out_shape) the measurement of the [-1, 1] image (see `signed_measurement`);
    operator: a LinearOperator (CT, MRI, ...); denoiser: a Denoiser or plain callable
    D(x_t, t) -> x0_hat for the original timesteps of `schedule`; lam in [0, 1]; steps:
    respace the schedule (network calls = steps); cg_iters: CG steps for A^+ where the
    operator has no SVD. x_T: (B, *in_shape) start (default N(0, I) from `generator`).
    Returns x_0: (B, *in_shape), or (x_0, xs, x0_hats) with return_trajectory; callback gets
    {'x', 'i', 't', 'denoised'} per step.
    """
    lam = check_nonneg("lam", lam, upper=1.0)
    cg_iters = check_int("cg_iters", cg_iters, lo=1)
    y, D, schedule, x = setup(y, operator, denoiser, schedule, steps, x_T, generator, linear=True,
                              who="song_mc")

    def step(x, i, t, ab_t, ab_prev, z):
        if lam > 0:     # (lam = 0 draws nothing, so it is exactly samplers.ddpm: tested)
            y_hat = noisy_measurement(y, operator, ab_t, generator)                   # 1.
            x = consistency_step(x, y_hat, operator, lam, cg_iters)                    # 2.
        with torch.no_grad():
            x0 = D.x0_eps(x, t, alpha_bar=ab_t)[0]
        return ddpm_step(x, x0, ab_t, ab_prev, z), x0, {}                              # 3.
    return reverse_loop(step, x, schedule, generator=generator, return_trajectory=return_trajectory,
                        callback=callback)
