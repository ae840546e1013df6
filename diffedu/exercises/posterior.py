"""Exercises of chapter 09: diffusion posterior sampling (DPS, DDRM, RePaint, DiffPIR).

Notation: x_t = sqrt(ab) x0 + sqrt(1 - ab) eps (VP), y = A x0 + sigma_y n; DDRM works in the
spectral coordinates xbar = V^T x of A = U S V^T, in the variance-exploding variable
x / sqrt(ab), whose noise level is sigma = sqrt((1 - ab) / ab).
"""
from __future__ import annotations

import torch

from . import Exercise


def _rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# -- reference solutions (kept short: they are what `solution` prints) --------------------
def dps_measurement_step(x_prime, xt, y, A, ab_t, zeta):
    """DPS Algorithm 1, line 7, for a N(0, I) prior, whose denoiser is x0_hat = sqrt(ab_t) x_t.
    x_prime, xt: (B, d) (x_prime: the DDPM step of line 6); y: (B, m); A: (m, d)."""
    x0_hat = ab_t ** 0.5 * xt
    r = y - x0_hat @ A.T                                        # residual y - A x0_hat, (B, m)
    grad = -2 * ab_t ** 0.5 * r @ A                             # grad_{x_t} ||r||^2, (B, d)
    zeta_i = zeta / r.norm(dim=1, keepdim=True)                 # zeta_i = zeta / ||r||, per sample
    return x_prime - zeta_i * grad


def ddrm_measured_update(x0bar, ybar, z, s, sigma_p, sigma_y, eta, eta_b):
    """DDRM eq. 8 on measured coordinates (all s_j > 0): xbar_p from the denoised x0bar, the
    measurement ybar = (U^T y) / s, fresh noise z: (B, n); s: (n,); sigma_p: the target level."""
    s_y = sigma_y / s                                           # noise std of ybar_j
    less_noisy = sigma_p < s_y                                  # the step has gone below y's noise
    towards_y = x0bar + (1 - eta ** 2) ** 0.5 * sigma_p * (ybar - x0bar) / s_y + eta * sigma_p * z
    from_y = (1 - eta_b) * x0bar + eta_b * ybar + (sigma_p ** 2 - eta_b ** 2 * s_y ** 2).clamp_min(0).sqrt() * z
    return torch.where(less_noisy, towards_y, from_y)


def repaint_levels(n_steps, jump_length, jump_n_sample):
    """The levels RePaint visits, from n_steps - 1 down to -1, as a 1D float tensor: after reaching a
    multiple j of jump_length (with j + jump_length < n_steps), jump back up jump_length levels,
    jump_n_sample - 1 times."""
    jumps = {j: jump_n_sample - 1 for j in range(0, n_steps - jump_length, jump_length)}
    level, levels = n_steps - 1, [n_steps - 1]
    while level >= 0:
        level -= 1
        levels.append(level)
        if jumps.get(level, 0) > 0:
            jumps[level] -= 1
            levels += list(range(level + 1, level + jump_length + 1))
            level += jump_length
    return torch.tensor(levels, dtype=torch.float64)


def diffpir_inpainting_data_step(x0, y, mask, rho):
    """DiffPIR eq. 12 for inpainting (A = diag(mask)): argmin_x ||y - mask x||^2 + rho ||x - x0||^2."""
    return (mask * y + rho * x0) / (mask + rho)


def _mask(seed):
    return (torch.rand(1, 4, 4, generator=torch.Generator().manual_seed(seed)) > 0.4).double()


EXERCISES = [
    Exercise("dps_measurement_step", "09",
             "DPS's measurement step x' - zeta / ||r|| grad ||y - A x0_hat||^2 for a N(0, I) prior",
             dps_measurement_step,
             lambda: [{"x_prime": _rand(5, 3, seed=k), "xt": _rand(5, 3, seed=10 + k), "y": _rand(5, m, seed=20 + k),
                       "A": _rand(m, 3, seed=30 + k), "ab_t": ab, "zeta": z}
                      for k, (m, ab, z) in enumerate([(1, 0.5, 0.3), (2, 0.02, 1.0), (3, 0.99, 0.05)])],
             "For x0 ~ N(0, I) the denoiser is x0_hat = sqrt(ab_t) x_t, so grad_{x_t} ||y - A x0_hat||^2 = "
             "-2 sqrt(ab_t) A^T (y - A x0_hat) (or use torch.autograd.grad). zeta_i = zeta / ||r||, one per row."),
    Exercise("ddrm_measured_update", "09",
             "DDRM's update of the measured spectral coordinates (eq. 8, second and third lines)",
             ddrm_measured_update,
             lambda: [{"x0bar": _rand(4, 5, seed=k), "ybar": _rand(4, 5, seed=10 + k), "z": _rand(4, 5, seed=20 + k),
                       "s": torch.tensor([1.0, 0.8, 0.5, 0.2, 0.05], dtype=torch.float64),
                       "sigma_p": sp, "sigma_y": sy, "eta": 0.85, "eta_b": eb}
                      for k, (sp, sy, eb) in enumerate([(3.0, 0.1, 1.0), (0.05, 0.1, 1.0), (0.4, 0.1, 0.7)])],
             "Compare sigma_p with the noise of ybar_j, sigma_y / s_j. Above it (noisier than y) sample around "
             "(1 - eta_b) x0bar + eta_b ybar with variance sigma_p^2 - eta_b^2 sigma_y^2 / s_j^2; below it, step "
             "from x0bar towards ybar by sqrt(1 - eta^2) sigma_p s_j / sigma_y and add eta sigma_p z."),
    Exercise("repaint_levels", "09", "RePaint's time-travel schedule: the levels visited, as a tensor",
             repaint_levels,
             lambda: [{"n_steps": n, "jump_length": jl, "jump_n_sample": jn}
                      for n, jl, jn in [(10, 1, 1), (10, 3, 2), (20, 5, 3), (12, 4, 4)]],
             "Walk down one level at a time from n_steps - 1 to -1. Each time you land on a multiple j of "
             "jump_length with j + jump_length < n_steps and jumps left there, walk back up jump_length levels "
             "(one at a time); each such level allows jump_n_sample - 1 jumps."),
    Exercise("diffpir_inpainting_data_step", "09", "DiffPIR's data step (eq. 12) in closed form for inpainting",
             diffpir_inpainting_data_step,
             lambda: [{"x0": _rand(2, 1, 4, 4, seed=k), "y": _rand(2, 1, 4, 4, seed=10 + k) * _mask(k),
                       "mask": _mask(k), "rho": rho} for k, rho in enumerate([0.01, 1.0, 30.0])],
             "A = diag(mask) is diagonal, so the normal equations (A^T A + rho I) x = A^T y + rho x0 "
             "decouple pixel by pixel."),
]


def _self_check():
    """The references agree with the package (the exercises cannot drift from diffedu)."""
    from ..inverse import Dense, Inpainting
    from ..inverse.posterior import diffpir_data_step, ddrm_step, dps_step, repaint_schedule, spectral_measurement
    from ..samplers import ddpm_step
    # DPS: dps_step with the N(0, I) denoiser equals the DDPM step followed by the measurement step
    A, xt, y, noise = _rand(2, 3, seed=1), _rand(4, 3, seed=2), _rand(4, 2, seed=3), _rand(4, 3, seed=4)
    ab_t, ab_prev, zeta = 0.3, 0.4, 0.7
    D = lambda x, t: ab_t ** 0.5 * x                            # noqa: E731
    t = torch.zeros(4, dtype=torch.long)
    want = dps_step(xt, t, ab_t, ab_prev, y, Dense(A), D, zeta, noise)[0]
    x_prime = ddpm_step(xt, D(xt, t), ab_t, ab_prev, noise)
    torch.testing.assert_close(dps_measurement_step(x_prime, xt, y, A, ab_t, zeta), want)
    # DDRM: a square invertible A measures every coordinate; both regimes of eq. 8
    op = Dense(_rand(4, 4, seed=5))
    for ab_prev, sigma_y in [(0.05, 0.1), (0.999, 0.3)]:
        ab_t = ab_prev * 0.9
        x0, eps, yy, z = _rand(3, 4, seed=6), _rand(3, 4, seed=7), _rand(3, 4, seed=8), _rand(3, 4, seed=9)
        ybar, s, measured = spectral_measurement(yy, op)
        xt = ab_t ** 0.5 * x0 + (1 - ab_t) ** 0.5 * eps
        x_prev = ddrm_step(xt, x0, eps, ab_t, ab_prev, ybar, s, measured, sigma_y, op, 0.85, 0.9, z)
        got = op.V_T(x_prev) / ab_prev ** 0.5
        sig_p = ((1 - ab_prev) / ab_prev) ** 0.5
        torch.testing.assert_close(got, ddrm_measured_update(op.V_T(x0), ybar, z, s, sig_p, sigma_y, 0.85, 0.9))
    # RePaint schedule and DiffPIR data step
    for n, jl, jn in [(10, 3, 2), (20, 5, 3), (50, 10, 10)]:
        assert repaint_levels(n, jl, jn).tolist() == repaint_schedule(n, jl, jn)
    m = _mask(0)
    x0, yy = _rand(2, 1, 4, 4, seed=1), _rand(2, 1, 4, 4, seed=2) * m
    torch.testing.assert_close(diffpir_inpainting_data_step(x0, yy, m, 0.3),
                               diffpir_data_step(x0, yy, Inpainting(m[0], channels=1), 0.3))
