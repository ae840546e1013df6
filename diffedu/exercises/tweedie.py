"""Exercises of chapter 03: Tweedie, the score as a conditional mean, parameterisation as loss
weighting, and why the ideal denoiser of a data set memorises. Each asks for a short derivation
whose result a function can express; `_self_check` ties the references to the package."""
from __future__ import annotations

import torch

from . import Exercise


def _rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# -- reference solutions (kept short: they are what `solution` prints) --------------------
def eps_posterior_mean_gaussian(xt, alpha_bar, m, v):
    """E[eps | x_t] for x0 ~ N(m, v) (scalars, per coordinate), x_t = a x0 + s eps.
    eps and x_t are jointly Gaussian: Cov(eps, x_t) = s, Var(x_t) = a^2 v + s^2."""
    a, s = alpha_bar ** 0.5, (1 - alpha_bar) ** 0.5
    return s * (xt - a * m) / (alpha_bar * v + 1 - alpha_bar)


def velocity_and_score_weights(snr):
    """(w_velocity, w_score): |u_hat - u|^2 = w_velocity |x0_hat - x0|^2 for the flow velocity
    u = eps - x0, and |score_hat - (-eps / s)|^2 = w_score |x0_hat - x0|^2 (1/s^2 = 1 + SNR)."""
    # u_hat - u = (eps_hat - eps) - (x0_hat - x0) = -(a/s + 1)(x0_hat - x0),  a/s = sqrt(SNR)
    # score_hat + eps/s = -(eps_hat - eps)/s:  weight SNR / s^2 = SNR (1 + SNR)
    return (1 + snr ** 0.5) ** 2, snr * (1 + snr)


def ideal_denoiser_limits(xt, train):
    """The ideal denoiser of the data set train (n, D) at a fixed x_t (N, D), in its two limits:
    (alpha_bar -> 1: the training point nearest to x_t,  alpha_bar -> 0: the training set's mean)."""
    nearest = train[torch.cdist(xt, train).argmin(1)]
    return nearest, train.mean(0).expand_as(xt)


def _ab_cases():
    return [0.999, 0.5, 0.02]


EXERCISES = [
    Exercise("eps_posterior_mean_gaussian", "03",
             "derive E[eps | x_t] for a Gaussian prior x0 ~ N(m, v) (then -E[eps | x_t] / s is the score)",
             eps_posterior_mean_gaussian,
             lambda: [{"xt": _rand(4, 1, seed=k), "alpha_bar": ab, "m": 0.5, "v": 2.0}
                      for k, ab in enumerate(_ab_cases())],
             "eps and x_t = a x0 + s eps are jointly Gaussian, so E[eps | x_t] = Cov(eps, x_t) / Var(x_t) "
             "(x_t - E x_t). Or: s E[eps | x_t] = x_t - a E[x0 | x_t] with the Gaussian denoiser of the chapter."),
    Exercise("velocity_and_score_weights", "03",
             "the weights w(SNR) that turn the flow-velocity MSE (u = eps - x0) and the score-matching MSE "
             "(target -eps / s) into x0-MSE: return (w_velocity, w_score)",
             velocity_and_score_weights,
             lambda: [{"snr": torch.tensor(v, dtype=torch.float64)} for v in ([1e-4, 0.5, 1.0], [3.0, 1e4])],
             "Write each prediction through x0_hat at the same x_t, as the chapter did for eps and v: "
             "eps_hat - eps = -(a/s)(x0_hat - x0). Then use a/s = sqrt(SNR) and 1/s^2 = 1 + SNR."),
    Exercise("ideal_denoiser_limits", "03",
             "where the ideal denoiser of a training set sends a fixed x_t as alpha_bar -> 1 and as alpha_bar -> 0: "
             "return (small-noise limit, large-noise limit), each (N, D)",
             ideal_denoiser_limits,
             lambda: [{"xt": _rand(6, 2, seed=k), "train": _rand(n, 2, seed=70 + k)}
                      for k, n in enumerate((1, 5, 40))],
             "The weights are softmax_i(-|x_t - a y_i|^2 / (2 s^2)). As s -> 0 (a -> 1) the softmax becomes an "
             "argmax; as a -> 0 every y_i gets the same weight."),
]


def _self_check():
    """The references agree with the package (the exercises cannot drift from diffedu)."""
    from .. import param
    from ..exact import GaussianMixture
    from ..exact.memorisation import EmpiricalDenoiser
    from ..schedules import linear_schedule

    # E[eps | x_t] of a Gaussian: from the exact denoiser of a one-component mixture
    xt, ab, m, v = _rand(5, 1), 0.3, 0.5, 2.0
    x0_star = GaussianMixture([1.0], [[m]], [[v]]).denoiser(xt, ab)
    torch.testing.assert_close(eps_posterior_mean_gaussian(xt, ab, m, v), (xt - ab ** 0.5 * x0_star) / (1 - ab) ** 0.5)
    # loss weights: convert a wrong x0 prediction into each parameterisation (dd.param)
    x0, eps, x0_hat = _rand(8, 3, seed=1), _rand(8, 3, seed=2), _rand(8, 3, seed=3)
    ab = torch.linspace(0.01, 0.99, 8, dtype=torch.float64)[:, None]
    xt = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
    err_x0 = (x0_hat - x0).pow(2).sum(1)
    w_vel, w_score = velocity_and_score_weights((ab / (1 - ab))[:, 0])
    for kind, w in (("velocity", w_vel), ("score", w_score)):
        err = (param.convert(x0_hat, xt, ab, "x0", kind) - param.from_x0_eps(x0, eps, ab, kind)).pow(2).sum(1)
        torch.testing.assert_close(err, w * err_x0)
    # the ideal denoiser's limits, from the exact empirical denoiser near alpha_bar = 1 and 0
    xt, train = _rand(6, 2, seed=4), _rand(7, 2, seed=5)
    D = EmpiricalDenoiser(train, linear_schedule(10))
    near, mean = ideal_denoiser_limits(xt, train)
    torch.testing.assert_close(D.at_level(xt, 1 - 1e-9)[0], near)
    torch.testing.assert_close(D.at_level(xt, 1e-20)[0], mean)
