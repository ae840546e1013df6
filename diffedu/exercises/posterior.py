"""Exercises of chapter 09: diffusion posterior sampling (DPS, DDRM, RePaint, DiffPIR).

Each asks for a derivation or a prediction, not for a line the chapter has printed: what
measurement noise DPS's step size stands for, the mean and variance of DDRM's update of a
measured coordinate, what RePaint's time travel costs, and which samplers keep the measured
pixels exactly. (The inpainting data step is chapter 08's `hqs_data_step_inpainting`.)

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
def dps_effective_sigma_y(r_norm, ab_t, ab_prev, zeta):
    """The measurement noise sigma for which the nominal likelihood step equals DPS's step.
    r_norm: (B,) residual norms ||y - A x0_hat||; ab_t < ab_prev: the step's alpha_bars.
    Nominal: the DDPM mean (x + beta score) / sqrt(alpha) with score + grad log N(y; A x0_hat, sigma^2)
    moves x by -beta / (2 sigma^2 sqrt(alpha)) grad ||r||^2; DPS (line 7) moves it by
    -zeta / ||r|| grad ||r||^2. Equal when sigma^2 = beta ||r|| / (2 zeta sqrt(alpha))."""
    beta = 1 - ab_t / ab_prev                                   # beta_i of the (respaced) step
    alpha = 1 - beta
    return (beta * r_norm / (2 * zeta * alpha ** 0.5)).sqrt()


def ddrm_measured_moments(x0bar, xbar, s, sigma_p, sigma_y, eta, eta_b):
    """Mean and variance of DDRM's update (eq. 8) of measured coordinates, over the measurement
    noise (ybar = xbar + sigma_y / s * n) and the fresh z, given the model's x0bar and the true
    xbar: (B, n); s: (n,) all > 0. Returns (mean, var), both (B, n)."""
    s_y = sigma_y / s                                           # std of ybar_j around xbar_j
    below = sigma_p * s < sigma_y                               # the step has gone below y's noise
    # below: x0bar + sqrt(1 - eta^2) sigma_p (ybar - x0bar) / s_y + eta sigma_p z
    #   mean x0bar + sqrt(1 - eta^2) sigma_p (xbar - x0bar) / s_y, var (1 - eta^2) sigma_p^2 + eta^2 sigma_p^2
    # above: (1 - eta_b) x0bar + eta_b ybar + sqrt(sigma_p^2 - eta_b^2 s_y^2) z
    #   mean (1 - eta_b) x0bar + eta_b xbar,   var eta_b^2 s_y^2 + sigma_p^2 - eta_b^2 s_y^2
    # either way the variance is sigma_p^2: y's own noise counts as part of the sampler's noise
    towards = x0bar + (1 - eta ** 2) ** 0.5 * sigma_p * (xbar - x0bar) / torch.where(below, s_y, 1.0)
    mean = torch.where(below, towards, (1 - eta_b) * x0bar + eta_b * xbar)
    return mean, torch.full_like(mean, sigma_p ** 2)


def repaint_cost(n_steps, jump_length, jump_n_sample):
    """(denoiser calls, forward jumps) of RePaint's time-travel schedule, as float64 tensors.
    Closed form: J = len(range(0, n_steps - jump_length, jump_length)) jump levels, each
    re-noised jump_n_sample - 1 times by jump_length levels, each re-denoised, so
    jumps = (jump_n_sample - 1) * jump_length * J and calls = n_steps + jumps.
    (This reference counts the package's schedule; the tests check it against the closed form.)"""
    from ..inverse.posterior import repaint_schedule
    levels = repaint_schedule(n_steps, jump_length, jump_n_sample)
    calls = sum(b < a for a, b in zip(levels[:-1], levels[1:]))          # a step down calls the denoiser
    return torch.tensor(float(calls), dtype=torch.float64), torch.tensor(float(len(levels) - 1 - calls),
                                                                          dtype=torch.float64)


def exact_on_measurements():
    """Prediction: with sigma_y = 0 (y noiseless) and inpainting, which samplers return x with
    A x = y to float precision? 1 or 0 for [DPS, DDRM, RePaint, DiffPIR]."""
    return torch.tensor([0.0,   # DPS: a gradient step towards y at every level, never a projection
                         1.0,   # DDRM, eta_b = 1: the last step sets every measured coordinate to ybar
                         1.0,   # RePaint: the last step pastes A^+ y (noised to level 0: no noise)
                         1.0],  # DiffPIR: rho_i = lam sigma_y^2 / sigmabar_i^2 = 0 makes the data step
                        dtype=torch.float64)  # a projection, and its last step returns the data step


EXERCISES = [
    Exercise("dps_effective_sigma_y", "09",
             "Derive the measurement noise sigma for which the nominal likelihood step "
             "beta / (2 sigma^2 sqrt(alpha)) grad ||r||^2 equals DPS's zeta / ||r|| grad ||r||^2",
             dps_effective_sigma_y,
             lambda: [{"r_norm": _rand(5, seed=k).abs() * m + 0.01, "ab_t": ab_t, "ab_prev": ab_p, "zeta": z}
                      for k, (m, ab_t, ab_p, z) in enumerate([(1.0, 0.5, 0.52, 1.0), (10.0, 0.01, 0.02, 0.1),
                                                               (0.3, 0.98, 0.99, 0.5)])],
             "Write the DDPM mean with the conditional score, score + grad log p(y | x), and p(y | x) ~ "
             "N(y; A x0_hat, sigma^2 I): the extra term is beta / sqrt(alpha) grad log p(y | x). Set it equal to "
             "DPS's -zeta / ||r|| grad ||r||^2 and solve for sigma, with beta = 1 - ab_t / ab_prev, alpha = 1 - beta."),
    Exercise("ddrm_measured_moments", "09",
             "Mean and variance of DDRM's update of a measured coordinate, over y's noise and z, in both "
             "regimes (sigma_p below / above sigma_y / s_j); return (mean, var), both (B, n)",
             ddrm_measured_moments,
             lambda: [{"x0bar": _rand(4, 5, seed=k), "xbar": _rand(4, 5, seed=10 + k),
                       "s": torch.tensor([1.0, 0.8, 0.5, 0.2, 0.05], dtype=torch.float64),
                       "sigma_p": sp, "sigma_y": sy, "eta": 0.85, "eta_b": eb}
                      for k, (sp, sy, eb) in enumerate([(3.0, 0.1, 1.0), (0.05, 0.1, 1.0), (0.4, 0.1, 0.7),
                                                        (0.3, 0.0, 0.5)])],
             "Substitute ybar_j = xbar_j + (sigma_y / s_j) n_j into each line of eq. 8 (chapter's DDRM cell): "
             "the mean replaces ybar by xbar; the variance adds the squared coefficients of n_j and z_j. "
             "Compare sigma_p s_j with sigma_y to pick the line. Return var with the shape of the mean."),
    Exercise("repaint_cost", "09",
             "RePaint's cost: (denoiser calls, forward jumps) of its time-travel schedule, in closed form",
             repaint_cost,
             lambda: [{"n_steps": n, "jump_length": jl, "jump_n_sample": jn}
                      for n, jl, jn in [(10, 1, 1), (10, 3, 2), (20, 5, 3), (12, 4, 4), (250, 10, 10), (7, 10, 3),
                                        (11, 5, 2)]],
             "Count the jump levels: the multiples j of jump_length with j + jump_length < n_steps. Each is "
             "left jump_n_sample - 1 times, going up jump_length levels that must all be denoised again; the "
             "first descent costs n_steps calls."),
    Exercise("exact_on_measurements", "09",
             "Predict: with sigma_y = 0 and inpainting, which of DPS, DDRM, RePaint, DiffPIR return A x = y "
             "exactly? Return four 0/1 values in that order",
             exact_on_measurements,
             lambda: [{}],
             "Look at each sampler's last step (the one to level 0): does it set the measured part from y, "
             "or only move towards it? For DiffPIR, what is rho_i when sigma_y = 0?"),
]


def _self_check():
    """The references agree with the package (the exercises cannot drift from diffedu)."""
    from ..inverse import Dense, Inpainting, ddrm, diffpir, dps, repaint
    from ..inverse.posterior import ddrm_step, dps_step, spectral_measurement
    from ..samplers import ddpm_step
    from ..schedules import linear_schedule
    # DPS: its step equals the DDPM step with the nominal likelihood score at sigma_eff (N(0, I) prior)
    A, xt, y, noise = _rand(2, 3, seed=1), _rand(4, 3, seed=2), _rand(4, 2, seed=3), _rand(4, 3, seed=4)
    ab_t, ab_prev, zeta = 0.3, 0.4, 0.7
    D = lambda x, t: ab_t ** 0.5 * x                            # noqa: E731
    got, _, rnorm = dps_step(xt, torch.zeros(4, dtype=torch.long), ab_t, ab_prev, y, Dense(A), D, zeta, noise)
    sig = dps_effective_sigma_y(rnorm, ab_t, ab_prev, zeta)[:, None]
    grad = -2 * ab_t ** 0.5 * (y - D(xt, None) @ A.T) @ A        # grad_{x_t} ||y - A sqrt(ab_t) x_t||^2
    beta = 1 - ab_t / ab_prev
    torch.testing.assert_close(got, ddpm_step(xt, D(xt, None), ab_t, ab_prev, noise)
                               - beta / (2 * sig ** 2 * (1 - beta) ** 0.5) * grad)
    # DDRM: ddrm_step is affine in (n, z), so its mean is the output at n = z = 0 and its variance
    # the sum of the squared coefficients of n and z; both regimes, noisy and noiseless y
    op = Dense(_rand(4, 4, seed=5))
    for ab_prev, sigma_y, eta_b in [(0.05, 0.1, 0.9), (0.999, 0.3, 0.9), (0.5, 0.0, 0.6)]:
        ab_t, x0, xbar = ab_prev * 0.9, _rand(3, 4, seed=6), _rand(3, 4, seed=7)
        s, measured = spectral_measurement(op.A(x0), op)[1:]
        sig_p = ((1 - ab_prev) / ab_prev) ** 0.5
        run = lambda yb, z: op.V_T(ddrm_step(x0, x0, x0, ab_t, ab_prev, yb, s, measured,  # noqa: E731
                                             sigma_y, op, 0.85, eta_b, z)) / ab_prev ** 0.5
        zero, one = torch.zeros(3, 4, dtype=torch.float64), torch.ones(3, 4, dtype=torch.float64)
        mean = run(xbar, zero)
        var = (run(xbar + sigma_y / s, zero) - mean) ** 2 + (run(xbar, one) - mean) ** 2
        want = ddrm_measured_moments(op.V_T(x0), xbar, s, sig_p, sigma_y, 0.85, eta_b)
        torch.testing.assert_close((mean, var), want)
    # RePaint: the closed form in repaint_cost's docstring
    for n in range(1, 40):
        for jl in (1, 2, 3, 5, 10):
            for jn in (1, 2, 4):
                jumps = (jn - 1) * jl * len(range(0, n - jl, jl))
                assert [int(v) for v in repaint_cost(n, jl, jn)] == [n + jumps, jumps], (n, jl, jn)
    # which samplers keep y exactly (sigma_y = 0): run them on a tiny inpainting problem
    mask = (torch.rand(4, 4, generator=torch.Generator().manual_seed(0)) > 0.5).double()
    op, sch, g = Inpainting(mask, channels=1), linear_schedule(1000), torch.Generator().manual_seed(0)
    y = op.A(_rand(3, 1, 4, 4, seed=8))
    Dm = lambda x, t: 0.5 * x                                   # noqa: E731  any differentiable denoiser
    out = [dps(y, op, Dm, sch, steps=10, generator=g), ddrm(y, op, Dm, sch, sigma_y=0.0, steps=10, generator=g),
           repaint(y, op, Dm, sch, steps=10, jump_length=2, jump_n_sample=2, generator=g),
           diffpir(y, op, Dm, sch, sigma_y=0.0, steps=10, generator=g)]
    exact = torch.tensor([float((op.A(x) - y).abs().max() < 1e-6) for x in out], dtype=torch.float64)
    assert torch.equal(exact, exact_on_measurements()), exact
