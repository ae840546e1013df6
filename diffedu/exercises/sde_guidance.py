"""Exercises of chapters 04-05: derivations about score SDEs, flow matching and guidance, each
graded on fixed random inputs (the answer is a formula you derive, not a line you copy).

Chapter 04 (VP SDE: f(t) = -beta/2, g(t)^2 = beta; flow: x_tau = (1 - tau) x0 + tau x1, data at
tau = 0, noise at tau = 1):
    sde_family_drift       the reverse-time drift of the SDE with diffusion lam * g that keeps the
                           marginals p_t (Fokker-Planck; lam = 0 is the PF-ODE, lam = 1 Anderson's SDE)
    points_flow_velocity   the exact marginal velocity when the data are finitely many points
Chapter 05 (1D Gaussians: class N(mu_c, v_c), unconditional N(mu_u, v_u), guidance weight w):
    tilted_gaussian        mean and variance of p(x | y)^w p(x)^(1 - w), normalised
    cfg_gaussian_variance  the variance of what the CFG probability-flow ODE samples (sigma_max -> inf)
"""
from __future__ import annotations

import torch

from . import Exercise


def _rand(*shape, seed=0, scale=1.0, shift=0.0):
    g = torch.Generator().manual_seed(seed)
    return shift + scale * torch.randn(*shape, generator=g, dtype=torch.float64)


def _cases(make, params):
    """One case dict per parameter tuple: make(k, *params[k]) -> kwargs (shared by every exercise)."""
    return lambda: [make(k, *p) for k, p in enumerate(params)]


# -- reference solutions (kept short: they are what `solution` prints) --------------------
def sde_family_drift(x, score, beta, lam):
    """Reverse-time drift of dx = drift dt + lam g dw_bar with the marginals p_t of the VP SDE.
    Fokker-Planck: the forward-time drift f x + (lam^2 - 1) g^2 score / 2 keeps p_t for any lam;
    reversing time subtracts lam^2 g^2 score, so the reverse drift is f x - (1 + lam^2) g^2 score / 2."""
    return -0.5 * beta * x - 0.5 * (1 + lam ** 2) * beta * score


def points_flow_velocity(x, tau, points):
    """u(x, tau) = E[x1 - x0 | x_tau = x] for x0 uniform over points (M, D), x1 ~ N(0, I).
    Bayes: p(x0 = p_i | x_tau = x) ∝ N(x; (1 - tau) p_i, tau^2 I); and x1 - x0 = (x - x0) / tau."""
    d2 = ((x[:, None] - (1 - tau) * points[None]) ** 2).sum(-1)          # (B, M)
    w = torch.softmax(-d2 / (2 * tau ** 2), dim=1)                       # posterior over the points
    x0_hat = w @ points                                                  # E[x0 | x_tau]
    return (x - x0_hat) / tau


def tilted_gaussian(mu_c, v_c, mu_u, v_u, w):
    """(mean, variance) of q_w ∝ N(mu_c, v_c)^w N(mu_u, v_u)^(1 - w): precisions add with weights."""
    prec = w / v_c + (1 - w) / v_u
    return (w * mu_c / v_c + (1 - w) * mu_u / v_u) / prec, 1 / prec


def cfg_gaussian_variance(v_c, v_u, w):
    """Variance of the CFG probability-flow ODE's output, from x_T ~ N(0, 1) as sigma_max -> inf.
    In x_bar = x / sqrt(alpha_bar): d x_bar / d sigma = A x_bar + c, A = sigma (w / (v_c + sigma^2) +
    (1 - w) / (v_u + sigma^2)); Var obeys dV / d sigma = 2 A V and int 2 sigma / (v + sigma^2) = log(v + sigma^2),
    so V(0) = (1 + S^2) v_c^w v_u^(1-w) / ((v_c + S^2)^w (v_u + S^2)^(1-w)) -> v_c^w v_u^(1-w) (S -> inf)."""
    return v_c ** w * v_u ** (1 - w)


def _pos(n, seed, lo=0.1, hi=2.0):
    """n positive numbers in [lo, hi] (variances)."""
    return lo + (hi - lo) * torch.rand(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


_W = torch.tensor([0.0, 0.5, 1.0, 2.0, 3.0], dtype=torch.float64)

EXERCISES = [
    Exercise("sde_family_drift", "04",
             "derive the reverse-time drift of the SDE with diffusion lam * g(t) that has the VP SDE's marginals",
             sde_family_drift,
             _cases(lambda k, b, lam: {"x": _rand(6, 2, seed=k), "score": _rand(6, 2, seed=10 + k), "beta": b, "lam": lam},
                    [(0.1, 0.0), (10.0, 1.0), (19.9, 0.5), (5.0, 2.0)]),
             "Write the Fokker-Planck equation of dx = b dt + lam g dw and use lam^2 g^2 / 2 Lap p = "
             "div(lam^2 g^2 / 2 p score): which forward drift b gives the same p_t as f x? Then reverse time "
             "(the reverse drift subtracts lam^2 g^2 score). Check: lam = 0 must give the PF-ODE, lam = 1 Anderson's SDE."),
    Exercise("points_flow_velocity", "04",
             "derive the exact marginal velocity of the linear path when the data are M points",
             points_flow_velocity,
             _cases(lambda k, tau, m: {"x": _rand(5, 2, seed=k, scale=1.5), "tau": tau, "points": _rand(m, 2, seed=20 + k)},
                    [(0.9, 3), (0.5, 8), (0.2, 4)]),
             "u(x, tau) = E[x1 - x0 | x_tau = x]. Given x0 = p_i, x_tau ~ N((1 - tau) p_i, tau^2 I); Bayes gives the "
             "posterior weight of each point (a softmax); and on the line x1 - x0 = (x_tau - x0) / tau."),
    Exercise("tilted_gaussian", "05",
             "mean and variance of the tilted density N(mu_c, v_c)^w N(mu_u, v_u)^(1-w), normalised",
             tilted_gaussian,
             _cases(lambda k, seed: {"mu_c": _rand(5, seed=seed), "v_c": _pos(5, seed, 0.1, 0.5),
                                     "mu_u": _rand(5, seed=seed + 1), "v_u": _pos(5, seed + 1, 1.0, 2.0), "w": _W},
                    [(0,), (7,)]),
             "Add the exponents: w (x - mu_c)^2 / v_c + (1 - w) (x - mu_u)^2 / v_u is a quadratic in x; "
             "complete the square (the precisions add with weights w and 1 - w)."),
    Exercise("cfg_gaussian_variance", "05",
             "predict the variance of what CFG with weight w samples when both ingredients are Gaussian",
             cfg_gaussian_variance,
             _cases(lambda k, seed: {"v_c": _pos(5, seed, 0.1, 2.0), "v_u": _pos(5, seed + 1, 0.1, 2.0), "w": _W},
                    [(0,), (3,)]),
             "Use x_bar = x / sqrt(alpha_bar), sigma^2 = (1 - alpha_bar) / alpha_bar: the noisy laws are N(mu, v + sigma^2) "
             "and the PF-ODE d x_bar / d sigma = -sigma * (guided score) is linear in x_bar. Its variance V obeys "
             "dV / d sigma = 2 A(sigma) V; integrate 2 sigma / (v + sigma^2) from 0 to S and let S -> inf "
             "(x_T ~ N(0, 1) gives V(S) = 1 + S^2)."),
]


def _self_check():
    """The references agree with the package (the exercises cannot drift from diffedu)."""
    from .. import flow, sde
    from ..exact import gaussian_cfg
    from ..exact.gmm import GaussianMixture
    vp, t, t_next = sde.VPSDE(), 0.6, 0.58
    x, score = _rand(4, 2), _rand(4, 2, seed=1)
    beta = float(vp.beta(t))
    torch.testing.assert_close(sde_family_drift(x, score, beta, 0.0), sde.pf_ode_drift(lambda *_: score, x, t, vp)[0])
    x_mean = sde.reverse_sde_step(x, score, t, t_next, vp, None)[1]           # x + drift (t_next - t)
    torch.testing.assert_close(sde_family_drift(x, score, beta, 1.0), (x_mean - x) / (t_next - t))
    points = _rand(6, 2, seed=3)
    u = flow.gmm_velocity(GaussianMixture(torch.ones(6), points, 0.0))       # zero covariances: the points
    for tau in (0.2, 0.7):
        torch.testing.assert_close(points_flow_velocity(x, tau, points), u(x, tau))
    for w in (0.0, 0.5, 2.0, 3.0):
        want = gaussian_cfg.tilted_gaussian(0.3, 0.2, -0.5, 1.5, w)
        got = tilted_gaussian(*(torch.tensor(v, dtype=torch.float64) for v in (0.3, 0.2, -0.5, 1.5, w)))
        torch.testing.assert_close(torch.stack(got), torch.tensor(want, dtype=torch.float64))
        torch.testing.assert_close(cfg_gaussian_variance(torch.tensor(0.2, dtype=torch.float64), 1.5, w),
                                   torch.tensor(gaussian_cfg.cfg_gaussian_law(0.3, 0.2, -0.5, 1.5, w)[1], dtype=torch.float64))
