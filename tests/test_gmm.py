import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

import diffedu as dd


def mixture(D=2):
    g = torch.Generator().manual_seed(3)
    means = torch.randn(3, D, generator=g, dtype=torch.float64) * 2
    A = torch.randn(3, D, D, generator=g, dtype=torch.float64) * 0.4
    covs = A @ A.transpose(1, 2) + 0.1 * torch.eye(D, dtype=torch.float64)
    return dd.GaussianMixture([0.2, 0.5, 0.3], means, covs, labels=[0, 1, 1])


def test_log_prob_matches_scipy():
    gmm = mixture(3)
    x = torch.randn(20, 3, dtype=torch.float64)
    ref = sum(w.item() * multivariate_normal(m.numpy(), c.numpy()).pdf(x.numpy())
              for w, m, c in zip(gmm.weights, gmm.means, gmm.covs))
    np.testing.assert_allclose(gmm.log_prob(x).numpy(), np.log(ref), rtol=1e-10)


def test_diagonal_and_scalar_covariances():
    d = dd.GaussianMixture([1, 1], [[0.0, 0.0], [1.0, 2.0]], [[1.0, 2.0], [0.5, 0.5]])
    torch.testing.assert_close(d.covs[0], torch.diag(torch.tensor([1.0, 2.0], dtype=torch.float64)))
    s = dd.GaussianMixture([1, 1], [[0.0, 0.0], [1.0, 2.0]], 0.3)
    torch.testing.assert_close(s.covs[1], 0.3 * torch.eye(2, dtype=torch.float64))


def test_sample_moments():
    gmm = mixture(2)
    x = gmm.sample(200_000, torch.Generator().manual_seed(0)).double()
    torch.testing.assert_close(x.mean(0), gmm.mean(), atol=0.02, rtol=0)
    torch.testing.assert_close(torch.cov(x.T), gmm.cov(), atol=0.05, rtol=0)


def test_score_is_gradient_of_log_prob():
    gmm = mixture(3)
    x = torch.randn(10, 3, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(gmm.log_prob(x).sum(), x)
    torch.testing.assert_close(gmm.score(x.detach()), grad)


@pytest.mark.parametrize("ab", [0.05, 0.5, 0.95])
def test_denoiser_is_tweedie_of_exact_noisy_score(ab):
    gmm = mixture(2)
    xt = torch.randn(16, 2, dtype=torch.float64) * 2
    x = xt.clone().requires_grad_(True)
    (score,) = torch.autograd.grad(gmm.noisy(ab).log_prob(x).sum(), x)
    torch.testing.assert_close(gmm.denoiser(xt, ab), dd.tweedie(xt, score, ab))


@pytest.mark.parametrize("ab", [0.1, 0.6])
def test_denoiser_matches_monte_carlo_posterior_mean(ab):
    """E[x0 | xt] by self-normalised importance sampling over prior samples, an independent estimate."""
    gmm = mixture(2)
    x0 = gmm.sample(400_000, torch.Generator().manual_seed(1)).double()
    xt = torch.tensor([[0.5, -0.3], [1.2, 1.0], [-1.0, 0.7]], dtype=torch.float64)
    logw = -((xt[:, None] - ab ** 0.5 * x0[None]) ** 2).sum(-1) / (2 * (1 - ab))   # (3, N)
    w = torch.softmax(logw, 1)
    mc = w @ x0
    ess = 1 / (w ** 2).sum(1)
    assert (ess > 500).all()
    torch.testing.assert_close(gmm.denoiser(xt, ab), mc, atol=6 / ess.min().sqrt().item(), rtol=0)


def test_noisy_marginal_moments():
    gmm, ab = mixture(2), 0.3
    nz = gmm.noisy(ab)
    torch.testing.assert_close(nz.mean(), ab ** 0.5 * gmm.mean())
    torch.testing.assert_close(nz.cov(), ab * gmm.cov() + (1 - ab) * torch.eye(2, dtype=torch.float64))


def test_posterior_single_gaussian_matches_bayes():
    m, C = torch.tensor([1.0, -1.0, 0.5], dtype=torch.float64), torch.diag(torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64))
    A = torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, -1.0]], dtype=torch.float64)
    y, sy = torch.tensor([0.3, 2.0], dtype=torch.float64), 0.2
    post = dd.GaussianMixture([1.0], m[None], C[None]).posterior(A, y, sy)
    P = torch.linalg.inv(C) + A.T @ A / sy ** 2                       # posterior precision
    cov = torch.linalg.inv(P)
    torch.testing.assert_close(post.covs[0], cov)
    torch.testing.assert_close(post.means[0], cov @ (torch.linalg.inv(C) @ m + A.T @ y / sy ** 2))


def test_posterior_weights_by_importance_sampling():
    gmm = mixture(2)
    A, y, sy = torch.tensor([[1.0, 0.5]], dtype=torch.float64), torch.tensor([0.8], dtype=torch.float64), 0.5
    post = gmm.posterior(A, y, sy)
    x0, k = gmm.sample(400_000, torch.Generator().manual_seed(2), return_labels=True)
    logw = -((x0.double() @ A.T - y) ** 2).sum(1) / (2 * sy ** 2)
    w = torch.softmax(logw, 0)
    mc_weights = torch.stack([w[k == j].sum() for j in range(3)])
    torch.testing.assert_close(post.weights, mc_weights, atol=0.01, rtol=0)
    torch.testing.assert_close(post.mean(), w @ x0.double(), atol=0.02, rtol=0)


def test_condition_and_errors():
    gmm = mixture(2)
    assert gmm.condition(1).K == 2
    with pytest.raises(ValueError, match="no component has label 5"):
        gmm.condition(5)
    with pytest.raises(ValueError, match=r"x must have shape \(N, 2\)"):
        gmm.denoiser(torch.zeros(3, 4), 0.5)
    with pytest.raises(ValueError, match="alpha_bar must be > 0 and <= 1"):
        gmm.noisy(0.0)
    with pytest.raises(ValueError, match="covs must be"):
        dd.GaussianMixture([1.0], [[0.0, 0.0]], torch.ones(3))
    with pytest.raises(ValueError, match="sigma_y must be > 0"):
        gmm.posterior(torch.ones(1, 2), torch.ones(1), 0.0)
    with pytest.raises(ValueError, match=r"y must have 1 entries"):
        gmm.posterior(torch.ones(1, 2), torch.ones(2), 0.1)
