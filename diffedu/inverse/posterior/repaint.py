"""RePaint (Lugmayr, Danelljan, Romero, Yu, Timofte & Van Gool, CVPR 2022).

Scope: inpainting with an unconditional diffusion model by replacing, at every step, the
known part of x_{t-1} with the forward-noised measurement, and resampling (jumping back
in time) so that the generated part has time to agree with the known part. The "known
part" is the range of A^T: x = P x + (I - P) x with P = A^+ A (a mask for inpainting; for a
general linear A, the span of the right singular vectors with s_j > 0), so the same code
runs for SVD operators, Dense matrices and conjugate-gradient operators.

Notation (RePaint, Algorithm 1; levels i = N-1 .. 0 of a respaced schedule, -1 = clean)
    P = A^+ A, x_y = A^+ y        projection on the measured subspace and the measured part
    x_known   = sqrt(ab_prev) x_y + sqrt(1 - ab_prev) P eps             (Alg. 1, line 5)
    x_unknown = DDPM step from x_i with the denoiser                    (Alg. 1, lines 6-7)
    x_prev    = x_known + (I - P) x_unknown                             (Alg. 1, line 8)
    jump back: x_i ~ N(sqrt(ab_i / ab_prev) x_prev, (1 - ab_i / ab_prev) I)   (Alg. 1, line 10)
The time-travel schedule (the paper's Fig. 3 and section 4.2): after reaching each level
that is a multiple of `jump_length`, go back up `jump_length` levels, `jump_n_sample - 1`
times, so each stretch of the schedule is denoised `jump_n_sample` times
(jump_n_sample = 1 is plain replacement without resampling).
The paper treats y as noiseless, so measurement noise is copied into the known part (and
amplified by 1 / s_j for a general A). With `sigma_y > 0` and an SVD operator, this module
offers a noise-aware variant (not in the paper; DDRM's eta_b = 1 rule): coordinate j of
V^T x is replaced by ybar_j + sqrt(sigma_p^2 - sigma_y^2 / s_j^2) z (VE variable, sigma_p =
sqrt((1 - ab_prev) / ab_prev)) only while sigma_p >= sigma_y / s_j, and left to the model below.

Why RePaint has its own loop: its denoising step (the denoiser, then `repaint_step`) has the
form of a diffedu.samplers.reverse_loop step, step(x, i, t, ab_t, ab_prev, z), and with
jump_n_sample = 1 reverse_loop over it gives `repaint` exactly (tested). But reverse_loop
runs a schedule in one pass down to x_0, its last step going to ab_prev = 1 without noise,
while the time-travel schedule stops each descent at a jump level, re-noises and descends
again. So `repaint` walks `repaint_schedule`'s levels itself, calling that step and
recording the same Trace (one trajectory entry per denoising step), with reverse_loop's
noise draws (z, then the known part's noise, none at the last step).
"""
from __future__ import annotations

import torch

from ..._validate import check_nonneg, check_operator, check_positive_int, check_same_shape
from ...samplers import Trace, _check_levels, ddpm_step
from ...schedules import NoiseSchedule
from ..operators import LinearOperator
from .common import randn, setup
from .ddrm import spectral_measurement

__all__ = ["repaint", "repaint_step", "repaint_schedule"]


def repaint_schedule(n_steps: int, jump_length: int = 10, jump_n_sample: int = 10) -> list[int]:
    """The levels visited by RePaint, from n_steps - 1 (x_T) down to -1 (x_0): a step from
    level i to i - 1 is a denoising step, from i to i + 1 a forward (re-noising) jump."""
    check_positive_int("n_steps", n_steps)
    check_positive_int("jump_length", jump_length)
    check_positive_int("jump_n_sample", jump_n_sample)
    # jumps left at each jump level: multiples of jump_length that leave room for a jump
    jumps = {j: jump_n_sample - 1 for j in range(0, n_steps - jump_length, jump_length)}
    level, levels = n_steps - 1, [n_steps - 1]
    while level >= 0:
        level -= 1
        levels.append(level)
        if jumps.get(level, 0) > 0:
            jumps[level] -= 1
            for _ in range(jump_length):
                level += 1
                levels.append(level)
    return levels


def repaint_step(x: torch.Tensor, x0_hat: torch.Tensor, ab_t: float, ab_prev: float, x_y: torch.Tensor,
                 operator: LinearOperator, noise: torch.Tensor | None, noise_known: torch.Tensor | None,
                 sigma_y: float = 0.0, spectral=None):
    """One RePaint denoising step x_i -> x_{i-1} (Algorithm 1, lines 4-8).
    x, x0_hat, x_y = A^+ y, noise, noise_known: (B, *in_shape). `spectral` = (ybar, s,
    measured) from ddrm.spectral_measurement switches to the noise-aware form (module doc)."""
    check_operator(operator, linear=True, who="RePaint")
    check_same_shape("x", operator._check_x(x), optional=("noise", "noise_known"), x0_hat=x0_hat, x_y=x_y,
                     noise=noise, noise_known=noise_known)
    ab_t, ab_prev = _check_levels(ab_t, ab_prev)
    sigma_y = check_nonneg("sigma_y", sigma_y)
    # 1. unknown part: the DDPM ancestral step with the denoiser
    x_unknown = ddpm_step(x, x0_hat, ab_t, ab_prev, noise)
    last = noise_known is None or ab_prev >= 1
    if spectral is None:
        # 2. known part: the measurement noised to level ab_prev (x_y already lies in range P)
        x_known = ab_prev ** 0.5 * x_y
        if not last:
            x_known = x_known + (1 - ab_prev) ** 0.5 * _project(operator, noise_known)
        # 3. combine: x_known + (I - P) x_unknown
        return x_known + x_unknown - _project(operator, x_unknown)
    # 2'. noise-aware known part, per spectral coordinate j, in the VE variable: replace only
    #     while the level sigma_p is at least ybar_j's own noise sigma_y / s_j
    ybar, s, measured = spectral
    sig_p2 = (1 - ab_prev) / ab_prev
    var_y = (sigma_y / torch.where(measured, s, torch.ones_like(s))) ** 2
    active = measured & (var_y <= sig_p2)
    z = operator.V_T(noise_known) if not last else torch.zeros_like(ybar)
    known = ab_prev ** 0.5 * (ybar + (sig_p2 - var_y).clamp_min(0).sqrt() * z)
    # 3'. combine in the spectral basis
    return operator.V(torch.where(active, known, operator.V_T(x_unknown)))


def _project(operator, x):
    """P x = A^+ A x, the orthogonal projection on the measured subspace (range of A^T)."""
    return operator.A_dagger(operator.A(x))


def repaint(y: torch.Tensor, operator: LinearOperator, denoiser, schedule: NoiseSchedule, *,
            steps: int | None = 50, jump_length: int = 10, jump_n_sample: int = 10,
            sigma_y: float = 0.0, x_T: torch.Tensor | None = None, generator: torch.Generator | None = None,
            return_trajectory: bool = False, callback=None):
    """RePaint (Lugmayr et al. 2022, Algorithm 1 with the time-travel schedule).

    y: (B, *out_shape), e.g. masked images for Inpainting; operator: any linear operator (the
    known part is P = A^+ A, a mask for Inpainting); denoiser: a Denoiser or a plain callable
    D(x_t, t) -> x0_hat for the original timesteps of `schedule`; steps: respace the schedule
    (the paper uses 250 with jump_length = jump_n_sample = 10; cost ~ steps * jump_n_sample
    denoiser calls). sigma_y: 0 (the paper: y taken as noiseless) or the noise std of y, which
    needs an SVD operator and makes the replacement noise-aware (see the module doc).
    Returns x_0: (B, *in_shape) (its known part equals A^+ y exactly), or (x_0, xs, x0_hats)
    over the denoising steps with return_trajectory; callback as diffedu.samplers.
    """
    sigma_y = check_nonneg("sigma_y", sigma_y)
    for name, v in (("jump_length", jump_length), ("jump_n_sample", jump_n_sample)):
        check_positive_int(name, v)
    y, D, schedule, x = setup(y, operator, denoiser, schedule, steps, x_T, generator, linear=True,
                              who="RePaint")
    if sigma_y > 0 and not operator.has_svd:
        raise ValueError(f"noise-aware RePaint (sigma_y > 0) needs an operator with an SVD; "
                         f"{type(operator).__name__} has none: pass sigma_y=0 to treat y as noiseless")
    spectral = spectral_measurement(y, operator) if sigma_y > 0 else None
    levels = repaint_schedule(len(schedule), jump_length, jump_n_sample)
    x_y = operator.A_dagger(y)

    def step(x, i, t, ab_t, ab_prev, z):            # a reverse_loop step (module doc)
        with torch.no_grad():
            x0 = D.x0_eps(x, t, alpha_bar=ab_t)[0]
        noise_known = None if z is None else randn(x.shape, x, generator)   # drawn after z
        return repaint_step(x, x0, ab_t, ab_prev, x_y, operator, z, noise_known, sigma_y, spectral), x0, {}

    ab = schedule.alpha_bar.tolist()
    ab_at = lambda level: ab[level] if level >= 0 else 1.0                    # noqa: E731
    trace = Trace(x, return_trajectory, callback)
    for cur, nxt in zip(levels[:-1], levels[1:]):
        if nxt < cur:                                                # denoise: level cur -> cur - 1
            t_i = int(schedule.timesteps[cur])
            t = torch.full((len(x),), t_i, dtype=torch.long, device=x.device)
            z = None if nxt < 0 else randn(x.shape, x, generator)   # as reverse_loop: none at the end
            x, x0, info = step(x, cur, t, ab_at(cur), ab_at(nxt), z)
            trace(x, x0, cur, t=t_i, **info)
        else:                                                        # jump back: level cur -> cur + 1
            a = ab_at(nxt) / ab_at(cur)
            x = a ** 0.5 * x + (1 - a) ** 0.5 * randn(x.shape, x, generator)
    return trace.result(x)
