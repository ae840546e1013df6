"""Low-rank and sparse structure (diffedu.domains.lowrank): exact denoisers against peers and brute force."""
from __future__ import annotations

import math

import pytest
import torch

import diffedu as dd
from diffedu.domains import lowrank as lr


def _mix(K=2, D=6, d=2, scale=1.0, seed=0):
    return lr.LowRankMixture(lr.random_subspaces(K, D, d, torch.Generator().manual_seed(seed)), scale=scale)


def test_exact_denoiser_matches_the_gaussian_mixture_peer():
    """At a level ab < 1 the noisy covariances are regular, so exact/gmm.py's generic formula is a peer."""
    mix = _mix(K=3, D=5, d=2, scale=1.3)
    covs = mix.scale ** 2 * mix.U @ mix.U.transpose(1, 2)
    gmm = dd.GaussianMixture(mix.weights, torch.zeros(3, 5, dtype=torch.float64), covs + 1e-12 * torch.eye(5))
    x = 2 * torch.randn(50, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    for ab in (0.1, 0.5, 0.95):
        torch.testing.assert_close(mix.denoise(x, ab), gmm.denoiser(x, ab), atol=1e-8, rtol=1e-7)


def test_exact_denoiser_matches_monte_carlo():
    mix, g = _mix(), torch.Generator().manual_seed(2)
    x = mix.sample(4, g) * 0.7 + 0.3 * torch.randn(4, 6, generator=g, dtype=torch.float64)
    mc = lr.mc_denoiser(mix, x, 0.3, n=200_000, generator=g)
    assert float((mc - mix.denoise(x, 0.3)).norm(dim=1).max()) < 0.03


def test_single_subspace_is_projection_then_shrinkage_and_jacobian_has_rank_d():
    mix = _mix(K=1, D=6, d=2, scale=2.0)
    x = torch.randn(3, 6, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    ab = 0.4
    c = math.sqrt(ab) * 4 / (ab * 4 + 1 - ab)
    P = mix.U[0] @ mix.U[0].T
    torch.testing.assert_close(mix.denoise(x, ab), c * x @ P)
    sv = lr.jacobian_singular_values(lambda v: mix.denoise(v, ab), x)
    torch.testing.assert_close(sv[:, :2], torch.full((3, 2), c, dtype=torch.float64))
    assert bool((lr.effective_rank(sv) == 2).all())


def test_contract_denoiser_and_eps_are_consistent():
    mix, sched = _mix(), dd.linear_schedule(100)
    D = mix.as_denoiser(sched)
    x = torch.randn(5, 6, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    x0, eps = D.x0_eps(x, 40)
    ab = float(sched.alpha_bar[40])
    torch.testing.assert_close(x0, mix.denoise(x, ab))
    torch.testing.assert_close(x, math.sqrt(ab) * x0 + math.sqrt(1 - ab) * eps)
    t = torch.tensor([10, 40, 40, 90, 10])
    torch.testing.assert_close(D(x, t)[1], x0[1])


def test_subspace_measures_on_known_answers():
    mix = _mix(K=2, D=6, d=2)
    x = mix.sample(400, torch.Generator().manual_seed(5))
    assert lr.recovery_angle(x, mix.U) < 1e-4 and lr.off_support(x, mix.U) < 1e-9
    e = torch.eye(6, dtype=torch.float64)
    assert lr.subspace_angle(e[:, :1], e[:, 1:3]) == pytest.approx(90.0)
    assert lr.subspace_angle(e[:, :1], (e[:, :1] + e[:, 1:2]) / math.sqrt(2)) == pytest.approx(45.0)
    noise = torch.randn(400, 6, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    assert lr.off_support(noise, mix.U) > 0.5


def _quadrature(prior_logpdf, y, sigma, lo=-30.0, hi=30.0, n=200_001):
    x = torch.linspace(lo, hi, n, dtype=torch.float64)
    logw = prior_logpdf(x)[None] - (y[:, None] - x[None]) ** 2 / (2 * sigma ** 2)
    w = torch.softmax(logw, 1)
    return w @ x


def test_laplace_denoiser_against_quadrature_and_its_asymptote():
    y = torch.linspace(-6, 6, 25, dtype=torch.float64)
    sigma, lam = 0.8, 1.5
    brute = _quadrature(lambda x: -lam * x.abs(), y, sigma)
    torch.testing.assert_close(lr.laplace_denoiser(y, sigma, lam), brute, atol=1e-6, rtol=1e-6)
    far = torch.tensor([12.0], dtype=torch.float64)
    torch.testing.assert_close(lr.laplace_denoiser(far, sigma, lam), lr.soft_threshold(far, lam * sigma ** 2))


def test_bernoulli_gauss_denoiser_against_quadrature_with_the_atom():
    y = torch.linspace(-5, 5, 21, dtype=torch.float64)
    sigma, rho, s = 0.5, 0.2, 2.0
    x = torch.linspace(-30, 30, 200_001, dtype=torch.float64)
    lik = torch.exp(-(y[:, None] - x[None]) ** 2 / (2 * sigma ** 2))
    slab = torch.exp(-x ** 2 / (2 * s ** 2)) / (s * math.sqrt(2 * math.pi)) * (x[1] - x[0])
    num = rho * (lik * slab * x).sum(1)
    den = rho * (lik * slab).sum(1) + (1 - rho) * torch.exp(-y ** 2 / (2 * sigma ** 2))
    torch.testing.assert_close(lr.bernoulli_gauss_denoiser(y, sigma, rho, s), num / den, atol=1e-7, rtol=1e-6)
    out = lr.bernoulli_gauss_denoiser(y, sigma, rho, s)
    assert bool((out.abs() <= y.abs()).all()) and bool((out[1:] >= out[:-1]).all())      # a monotone shrinkage


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="orthonormal"):
        lr.LowRankMixture(torch.ones(1, 3, 2))
    with pytest.raises(ValueError, match=r"x must have shape \(B, 6\)"):
        _mix().denoise(torch.zeros(2, 5), 0.5)
    with pytest.raises(ValueError, match="d .* must be <= D"):
        lr.random_subspaces(1, 3, 4)
    with pytest.raises(ValueError, match="alpha_bar must lie strictly"):
        _mix().responsibilities(torch.zeros(1, 6), 1.0)
    with pytest.raises(ValueError, match="rho must be"):
        lr.bernoulli_gauss_denoiser(torch.zeros(3), 0.5, 0.0)


def test_transition_sweep_rows_and_the_ideal_denoiser_copies():
    """Plumbing at toy cost (2 training steps): one row per (n, seed, who); the ideal denoiser of the
    training set returns copies of its points (novel share 0, samples on the subspace)."""
    mix = lr.sweep_mixture(K=1, D=4, d=1)
    rows = lr.transition_sweep(mix, [3], seeds=(0,), steps=2, hidden=8, n_samples=20, sample_steps=10, T=50)
    assert [(r["n"], r["who"]) for r in rows] == [(3, "network"), (3, "ideal")]
    ideal = rows[1]
    assert ideal["novel"] == 0.0 and ideal["off"] < 1e-3 and ideal["x"].shape == (20, 4)


def test_transition_explorer_redraws_and_checks_its_table():
    import matplotlib
    matplotlib.use("Agg")
    from diffedu.viz.widgets.domains import transition_explorer
    table = {"n": [2, 4], "novel": {"network": [0.4, 0.9]}, "ratio": {"network": [0.1, 0.8]}}
    views = {n: (torch.randn(10, 2), torch.randn(n, 2)) for n in (2, 4)}
    box = transition_explorer(table, views)
    box.slider.value = 4
    with pytest.raises(ValueError, match="one entry per n"):
        transition_explorer(table, {2: views[2]})
    with pytest.raises(ValueError, match="two metrics"):
        transition_explorer({"n": [2, 4], "novel": {"network": [0.4, 0.9]}}, views)
