"""Exercises of chapters 01-03: the forward process, DDPM/DDIM, Tweedie and parameterizations."""
from __future__ import annotations

import torch

from .. import param
from ..samplers import ddim_step as _ddim_step
from . import Exercise


def _rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _ab_cases():
    return [0.999, 0.5, 0.02]


# -- reference solutions (kept short: they are what `solution` prints) --------------------
def alpha_bar_from_betas(betas):
    return torch.cumprod(1 - betas, dim=0)


def q_sample(x0, alpha_bar, eps):
    return alpha_bar ** 0.5 * x0 + (1 - alpha_bar) ** 0.5 * eps


def log_snr(alpha_bar):
    return torch.log(alpha_bar / (1 - alpha_bar))


def eps_loss_target(x0, eps, alpha_bar):
    """Return (x_t, target) for the simple DDPM loss."""
    xt = alpha_bar ** 0.5 * x0 + (1 - alpha_bar) ** 0.5 * eps
    return xt, eps


def x0_from_eps(xt, eps, alpha_bar):
    return (xt - (1 - alpha_bar) ** 0.5 * eps) / alpha_bar ** 0.5


def ddim_step(xt, eps_hat, ab_t, ab_prev):
    x0_hat = (xt - (1 - ab_t) ** 0.5 * eps_hat) / ab_t ** 0.5
    return ab_prev ** 0.5 * x0_hat + (1 - ab_prev) ** 0.5 * eps_hat


def v_from_x0_eps(x0, eps, alpha_bar):
    return alpha_bar ** 0.5 * eps - (1 - alpha_bar) ** 0.5 * x0


def tweedie_x0(xt, score, alpha_bar):
    return (xt + (1 - alpha_bar) * score) / alpha_bar ** 0.5


def gaussian_denoiser(xt, alpha_bar, m, v):
    """E[x0 | xt] for x0 ~ N(m, v) (scalars m, v, per coordinate)."""
    a = alpha_bar ** 0.5
    return m + a * v / (alpha_bar * v + 1 - alpha_bar) * (xt - a * m)


EXERCISES = [
    Exercise("alpha_bar_from_betas", "01", "alpha_bar from a 1D tensor of betas",
             alpha_bar_from_betas, lambda: [{"betas": torch.linspace(1e-4, 0.02, n, dtype=torch.float64)} for n in (1, 10, 1000)],
             "alpha_bar_t is the product of (1 - beta_s) for s <= t: look at torch.cumprod."),
    Exercise("q_sample", "01", "x_t from x0, alpha_bar (float) and eps",
             q_sample, lambda: [{"x0": _rand(4, 2, seed=k), "alpha_bar": ab, "eps": _rand(4, 2, seed=10 + k)}
                                for k, ab in enumerate(_ab_cases())],
             "The signal is scaled by sqrt(alpha_bar), the noise by sqrt(1 - alpha_bar): variances add to 1."),
    Exercise("log_snr", "01", "log signal-to-noise ratio from alpha_bar (tensor)",
             log_snr, lambda: [{"alpha_bar": torch.tensor(_ab_cases(), dtype=torch.float64)}],
             "SNR = signal variance / noise variance = alpha_bar / (1 - alpha_bar)."),
    Exercise("eps_loss_target", "02", "return (x_t, target) of the simple eps loss",
             eps_loss_target, lambda: [{"x0": _rand(5, 2, seed=k), "eps": _rand(5, 2, seed=20 + k), "alpha_bar": ab}
                                       for k, ab in enumerate(_ab_cases())],
             "Noise x0 with q_sample; the network is asked to predict the noise it was given."),
    Exercise("ddim_step", "02", "one deterministic DDIM step (eta = 0) from x_t and eps_hat",
             ddim_step, lambda: [{"xt": _rand(6, 2, seed=k), "eps_hat": _rand(6, 2, seed=30 + k), "ab_t": a, "ab_prev": b}
                                 for k, (a, b) in enumerate([(0.3, 0.5), (0.02, 0.9), (0.9, 1.0)])],
             "First estimate x0 from eps_hat (invert q_sample); then re-noise it to level ab_prev with the same eps_hat."),
    Exercise("x0_from_eps", "03", "x0 estimate from x_t and a noise prediction",
             x0_from_eps, lambda: [{"xt": _rand(3, 2, seed=k), "eps": _rand(3, 2, seed=40 + k), "alpha_bar": ab}
                                   for k, ab in enumerate(_ab_cases())],
             "Solve x_t = sqrt(ab) x0 + sqrt(1 - ab) eps for x0."),
    Exercise("v_from_x0_eps", "03", "the v-prediction target",
             v_from_x0_eps, lambda: [{"x0": _rand(3, 2, seed=k), "eps": _rand(3, 2, seed=50 + k), "alpha_bar": ab}
                                     for k, ab in enumerate(_ab_cases())],
             "v = sqrt(ab) eps - sqrt(1 - ab) x0 (Salimans & Ho 2022): the velocity of the angle parameterization."),
    Exercise("tweedie_x0", "03", "Tweedie's formula: E[x0 | x_t] from the noisy score",
             tweedie_x0, lambda: [{"xt": _rand(3, 2, seed=k), "score": _rand(3, 2, seed=60 + k), "alpha_bar": ab}
                                  for k, ab in enumerate(_ab_cases())],
             "E[sqrt(ab) x0 | x_t] = x_t + (1 - ab) grad log p_t(x_t); divide by sqrt(ab)."),
    Exercise("gaussian_denoiser", "03", "the exact denoiser for x0 ~ N(m, v)",
             gaussian_denoiser, lambda: [{"xt": _rand(4, 1, seed=k), "alpha_bar": ab, "m": 0.5, "v": 2.0}
                                         for k, ab in enumerate(_ab_cases())],
             "x_t is Gaussian with mean sqrt(ab) m and variance ab v + 1 - ab; Tweedie needs its score."),
]



def _self_check():
    """The references agree with the package (the exercises cannot drift from diffedu)."""
    x0, eps, ab = _rand(3, 2), _rand(3, 2, seed=1), 0.4
    xt = q_sample(x0, ab, eps)
    torch.testing.assert_close(x0_from_eps(xt, eps, ab), param.to_x0_eps(eps, xt, ab, "eps")[0])
    torch.testing.assert_close(v_from_x0_eps(x0, eps, ab), param.from_x0_eps(x0, eps, ab, "v"))
    x0h = x0_from_eps(xt, eps, ab)
    torch.testing.assert_close(ddim_step(xt, eps, ab, 0.7), _ddim_step(xt, x0h, eps, ab, 0.7))
