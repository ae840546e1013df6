"""What classifier-free guidance samples when both of its ingredients are Gaussian (chapter 05):
a case solved in closed form, so that "CFG samples the tilted density" can be graded exactly.

Notation (1D; every formula holds coordinate by coordinate for isotropic Gaussians):
    class-conditional    p(x | y) = N(mu_c, v_c)        unconditional  p(x) = N(mu_u, v_u)
    tilted density       q_w(x) ∝ p(x | y)^w p(x)^(1 - w) = N(mu_q, v_q)   (complete the square)
                         1 / v_q = w / v_c + (1 - w) / v_u,   mu_q = v_q (w mu_c / v_c + (1 - w) mu_u / v_u)
    CFG sampler          the probability-flow ODE (DDIM, eta = 0, many steps) with the guided score
                         w score_c + (1 - w) score_u, from x_T ~ N(0, 1) at sigma_max.
In Karras et al.'s variables x_bar = x / sqrt(alpha_bar), sigma^2 = (1 - alpha_bar) / alpha_bar, the
noisy laws are N(mu, v + sigma^2) and the ODE d x_bar / d sigma = -sigma * guided score is linear:
    d x_bar / d sigma = A(sigma) x_bar + c(sigma),
    A = sigma (w / (v_c + sigma^2) + (1 - w) / (v_u + sigma^2)),
    c = -sigma (w mu_c / (v_c + sigma^2) + (1 - w) mu_u / (v_u + sigma^2)).
With Phi(sigma) = (v_c + sigma^2)^(w/2) (v_u + sigma^2)^((1-w)/2) (so Phi' = A Phi), running sigma from
sigma_max down to 0:
    variance  V(0) = V(sigma_max) Phi(0)^2 / Phi(sigma_max)^2,  V(sigma_max) = 1 + sigma_max^2
              -> v_c^w v_u^(1 - w)  as sigma_max -> inf   (geometric, where q_w's is harmonic)
    mean      m(0) = Phi(0) int_0^sigma_max sigma (w mu_c / (v_c + sigma^2) + (1 - w) mu_u / (v_u + sigma^2))
                     / Phi(sigma) d sigma                   (one 1D quadrature)
At w = 0 and w = 1 the two laws agree; with v_c = v_u they agree for every w; otherwise not.
"""
from __future__ import annotations

import math

import torch

from .._validate import check_positive_int, check_real, check_schedule
from .gmm import GaussianMixture
from .guidance import GMMClassDenoiser, gmm_class_denoiser

__all__ = ["tilted_gaussian", "cfg_gaussian_law", "pair_denoiser"]


def _check(mu_c, v_c, mu_u, v_u, w):
    return (check_real("mu_c", mu_c), check_real("v_c", v_c, lo=0, lo_open=True),
            check_real("mu_u", mu_u), check_real("v_u", v_u, lo=0, lo_open=True), check_real("w", w))


def tilted_gaussian(mu_c: float, v_c: float, mu_u: float, v_u: float, w: float) -> tuple[float, float]:
    """(mean, variance) of q_w ∝ N(mu_c, v_c)^w N(mu_u, v_u)^(1 - w). Raises ValueError when
    w / v_c + (1 - w) / v_u <= 0 (then q_w cannot be normalised)."""
    mu_c, v_c, mu_u, v_u, w = _check(mu_c, v_c, mu_u, v_u, w)
    prec = w / v_c + (1 - w) / v_u
    if prec <= 0:
        raise ValueError(f"the tilted density has precision w / v_c + (1 - w) / v_u = {prec:.4g} <= 0 "
                         f"(w={w}, v_c={v_c}, v_u={v_u}): it is not normalisable")
    return (w * mu_c / v_c + (1 - w) * mu_u / v_u) / prec, 1 / prec


def cfg_gaussian_law(mu_c: float, v_c: float, mu_u: float, v_u: float, w: float,
                     sigma_max: float = math.inf, n: int = 20001) -> tuple[float, float]:
    """(mean, variance) of the output of the CFG probability-flow ODE with Gaussian ingredients,
    started from x_T ~ N(0, 1) at noise level sigma_max (Karras et al.'s sigma; default: the limit
    sigma_max -> inf). Exact up to the trapezoid rule on n points in theta = atan(sigma)."""
    mu_c, v_c, mu_u, v_u, w = _check(mu_c, v_c, mu_u, v_u, w)
    if not (isinstance(sigma_max, float) and math.isinf(sigma_max) and sigma_max > 0):
        sigma_max = check_real("sigma_max", sigma_max, lo=0, lo_open=True)
    check_positive_int("n", n)

    def log_phi(s):
        return 0.5 * w * torch.log(v_c + s ** 2) + 0.5 * (1 - w) * torch.log(v_u + s ** 2)

    zero = torch.zeros((), dtype=torch.float64)
    # mean: integrate over theta = atan(sigma) (d sigma = (1 + sigma^2) d theta), bounded integrand
    theta_max = math.pi / 2 if math.isinf(sigma_max) else math.atan(sigma_max)
    theta = torch.linspace(0.0, theta_max, n, dtype=torch.float64)
    s = torch.tan(theta[:-1]) if math.isinf(sigma_max) else torch.tan(theta)
    f = s * (w * mu_c / (v_c + s ** 2) + (1 - w) * mu_u / (v_u + s ** 2)) * (1 + s ** 2) * torch.exp(-log_phi(s))
    if math.isinf(sigma_max):                      # the integrand's limit at sigma -> inf
        f = torch.cat([f, torch.tensor([w * mu_c + (1 - w) * mu_u], dtype=torch.float64)])
    mean = float(torch.exp(log_phi(zero)) * torch.trapezoid(f, theta))
    if math.isinf(sigma_max):
        var = v_c ** w * v_u ** (1 - w)
    else:
        sm = torch.tensor(sigma_max, dtype=torch.float64)
        var = float((1 + sm ** 2) * torch.exp(2 * (log_phi(zero) - log_phi(sm))))
    return mean, var


def pair_denoiser(mu_c: float, v_c: float, mu_u: float, v_u: float, schedule) -> GMMClassDenoiser:
    """The exact denoisers of N(mu_c, v_c) (label 0, the class) and N(mu_u, v_u) (label 1, used as
    the null label) as one class-conditional denoiser D(x_t, t, cond), x_t: (B, 1); so
    guidance.classifier_free_guidance(D, w, null_label=1, cond=0) is exact CFG."""
    mu_c, v_c, mu_u, v_u, _ = _check(mu_c, v_c, mu_u, v_u, 0.0)
    check_schedule(schedule)
    pair = GaussianMixture([0.5, 0.5], [[mu_c], [mu_u]], torch.tensor([[[v_c]], [[v_u]]], dtype=torch.float64),
                           labels=[0, 1])
    return gmm_class_denoiser(pair, schedule, null_label=-1)
