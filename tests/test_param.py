import itertools

import pytest
import torch

import diffedu as dd
from diffedu.param import PREDICTIONS, convert, from_x0_eps, to_x0_eps


@pytest.mark.parametrize("src,dst", list(itertools.product(PREDICTIONS, PREDICTIONS)))
def test_every_conversion_is_consistent(src, dst):
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(8, 3, generator=g, dtype=torch.float64), torch.randn(8, 3, generator=g, dtype=torch.float64)
    ab = torch.rand(8, 1, generator=g, dtype=torch.float64) * 0.98 + 0.01
    xt = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
    out = convert(from_x0_eps(x0, eps, ab, src), xt, ab, src, dst)
    torch.testing.assert_close(out, from_x0_eps(x0, eps, ab, dst))
    x0_, eps_ = to_x0_eps(from_x0_eps(x0, eps, ab, src), xt, ab, src)
    torch.testing.assert_close(x0_, x0)
    torch.testing.assert_close(eps_, eps)


def test_velocity_is_the_rectified_flow_velocity():
    """z_tau = (1 - tau) x0 + tau eps is x_t / (a + s) at tau = s / (a + s); dz/dtau = eps - x0."""
    x0, eps, ab = torch.randn(5, 2, dtype=torch.float64), torch.randn(5, 2, dtype=torch.float64), 0.3
    a, s = ab ** 0.5, (1 - ab) ** 0.5
    tau = s / (a + s)
    z = lambda tau: (1 - tau) * x0 + tau * eps
    h = 1e-6
    fd = (z(tau + h) - z(tau - h)) / (2 * h)
    torch.testing.assert_close(from_x0_eps(x0, eps, ab, "velocity"), fd)
    torch.testing.assert_close((a * x0 + s * eps) / (a + s), z(tau))


def test_tweedie_on_gaussian():
    """x0 ~ N(m, v): E[x0|xt] = m + a v (xt - a m) / (a^2 v + s^2); score of xt is Gaussian."""
    m, v, ab = 0.7, 2.0, 0.4
    a = ab ** 0.5
    xt = torch.linspace(-3, 3, 11, dtype=torch.float64)
    score = -(xt - a * m) / (ab * v + 1 - ab)
    torch.testing.assert_close(dd.tweedie(xt, score, ab), m + a * v * (xt - a * m) / (ab * v + 1 - ab))


def test_denoiser_wraps_models_of_every_kind():
    gmm = dd.GaussianMixture([0.5, 0.5], [[-1.0, 0.0], [1.0, 1.0]], 0.1)
    s = dd.linear_schedule(100)
    xt = torch.randn(6, 2, dtype=torch.float64)
    t = torch.full((6,), 60)
    ab = s.alpha_bar[60].item()
    x0 = gmm.denoiser(xt, ab)
    eps = (xt - ab ** 0.5 * x0) / (1 - ab) ** 0.5
    for kind in PREDICTIONS:
        model = lambda x, t, kind=kind: from_x0_eps(x0, eps, ab, kind)
        D = dd.to_denoiser(model, s, prediction=kind)
        torch.testing.assert_close(D(xt, t), x0)
        torch.testing.assert_close(D.eps(xt, 60), eps)


def test_denoiser_bad_prediction():
    with pytest.raises(ValueError, match="unknown prediction 'noise'"):
        dd.to_denoiser(lambda x, t: x, dd.linear_schedule(10), prediction="noise")
    with pytest.raises(TypeError, match="callable"):
        dd.to_denoiser(3, dd.linear_schedule(10))
