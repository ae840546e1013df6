"""Exercises of chapter 03: Tweedie and parameterizations (chapters 01-02: exercises/ddpm.py)."""
from __future__ import annotations

import torch

from .. import param
from . import Exercise


def _rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _ab_cases():
    return [0.999, 0.5, 0.02]


# -- reference solutions (kept short: they are what `solution` prints) --------------------
def x0_from_eps(xt, eps, alpha_bar):
    return (xt - (1 - alpha_bar) ** 0.5 * eps) / alpha_bar ** 0.5


def v_from_x0_eps(x0, eps, alpha_bar):
    return alpha_bar ** 0.5 * eps - (1 - alpha_bar) ** 0.5 * x0


def tweedie_x0(xt, score, alpha_bar):
    return (xt + (1 - alpha_bar) * score) / alpha_bar ** 0.5


def gaussian_denoiser(xt, alpha_bar, m, v):
    """E[x0 | xt] for x0 ~ N(m, v) (scalars m, v, per coordinate)."""
    a = alpha_bar ** 0.5
    return m + a * v / (alpha_bar * v + 1 - alpha_bar) * (xt - a * m)


EXERCISES = [
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
    xt = ab ** 0.5 * x0 + (1 - ab) ** 0.5 * eps
    torch.testing.assert_close(x0_from_eps(xt, eps, ab), param.to_x0_eps(eps, xt, ab, "eps")[0])
    torch.testing.assert_close(v_from_x0_eps(x0, eps, ab), param.from_x0_eps(x0, eps, ab, "v"))
