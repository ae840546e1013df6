"""Appendix A2's derivations, checked against closed forms and an independent solver: Tweedie's
formula (its key step in sympy, the Gaussian prior in closed form), TV's subgradient and its prox."""
import numpy as np
import pytest
import torch

import diffedu as dd
from diffedu.exercises import derivations as ex
from diffedu.inverse import classical


def test_tweedie_key_step_symbolically():
    sp = pytest.importorskip("sympy")
    x, x0 = sp.symbols("x x_0", real=True)
    a, v = sp.symbols("a v", positive=True)
    kernel = sp.exp(-(x - a * x0) ** 2 / (2 * v)) / sp.sqrt(2 * sp.pi * v)
    assert sp.simplify(sp.diff(kernel, x) - kernel * (a * x0 - x) / v) == 0
    assert sp.simplify(sp.diff(sp.log(kernel), x) - (a * x0 - x) / v) == 0


@pytest.mark.parametrize("ab", [0.95, 0.5, 0.02])
def test_tweedie_gaussian_prior_closed_form(ab):
    m, s = 0.7, 1.3
    prior = dd.GaussianMixture(weights=[1.0], means=[[m]], covs=[[[s ** 2]]])
    x = torch.linspace(-4, 4, 17, dtype=torch.float64)[:, None]
    a = ab ** 0.5
    shrink = m + a * s ** 2 / (a ** 2 * s ** 2 + 1 - a ** 2) * (x - a * m)        # Gaussian conditioning
    torch.testing.assert_close(dd.tweedie(x, prior.score_t(x, ab), ab), shrink)
    torch.testing.assert_close(prior.denoiser(x, ab), shrink)


def test_tv_gradient_where_smooth_is_minus_div_of_the_unit_field():
    y = torch.randn(2, 1, 5, 7, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    grad = classical.grad2d(y)
    p = grad / grad.norm(dim=-1, keepdim=True).clamp_min(1e-30)
    x = y.clone().requires_grad_(True)
    classical.total_variation(x).sum().backward()
    torch.testing.assert_close(x.grad, -classical.div2d(p))


def test_tv_prox_in_1d_against_the_dual_problem_solved_by_scipy():
    from scipy.optimize import minimize
    y = np.array([0.0, 1.0, 0.2, 1.2, 1.0, 3.0, 2.5])
    lam = 0.4
    D = np.diff(np.eye(len(y)), axis=0)
    res = minimize(lambda p: 0.5 * np.sum((y - D.T @ p) ** 2), np.zeros(len(y) - 1), jac=lambda p: -D @ (y - D.T @ p),
                   bounds=[(-lam, lam)] * (len(y) - 1), method="L-BFGS-B", options={"ftol": 1e-15, "gtol": 1e-12})
    x_exact = y - D.T @ res.x
    x_dd = classical.tv_denoise(torch.tensor(y)[None, None, None], lam, iters=3000)[0, 0, 0].numpy()
    np.testing.assert_allclose(x_dd, x_exact, atol=1e-3)
    assert abs(x_exact.mean() - y.mean()) < 1e-9                     # the prox keeps the mean
    d = np.diff(y)                                                     # soft-thresholding the jumps is not the prox
    soft = np.concatenate([[0.0], np.cumsum(np.sign(d) * np.maximum(np.abs(d) - lam, 0))])
    soft += y.mean() - soft.mean()
    E = lambda z: 0.5 * np.sum((z - y) ** 2) + lam * np.abs(np.diff(z)).sum()   # noqa: E731
    assert E(soft) > E(x_exact) + 1e-3


@pytest.mark.parametrize("lam", [0.05, 0.5, 3.0])
def test_two_pixel_prox_closed_form(lam):
    y1, y2 = torch.tensor([0.0, 1.0, -2.0]), torch.tensor([1.0, 1.2, 2.0])
    x1, x2 = ex.tv_prox_two_pixels(y1, y2, lam)
    torch.testing.assert_close(x1 + x2, y1 + y2)                      # the mean stays
    jump = torch.clamp((y2 - y1).abs() - 2 * lam, min=0)
    torch.testing.assert_close((x2 - x1).abs(), jump)
