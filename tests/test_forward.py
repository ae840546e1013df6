import pytest
import torch

import diffedu as dd


def test_q_sample_moments_match_closed_form():
    s = dd.cosine_schedule(1000)
    g = torch.Generator().manual_seed(0)
    x0 = torch.full((200_000, 1), 1.5, dtype=torch.float64)
    xt = dd.q_sample(x0, 400, s, generator=g)
    ab = s.alpha_bar[400].item()
    assert xt.mean().item() == pytest.approx(ab ** 0.5 * 1.5, abs=5e-3)
    assert xt.var().item() == pytest.approx(1 - ab, rel=1e-2)


def test_forward_trajectory_marginal_equals_q_sample():
    s = dd.linear_schedule(100)
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(50_000, 2, generator=g, dtype=torch.float64) * 0.5 + 2
    xs = dd.forward_trajectory(x0, s, generator=g)
    assert xs.shape == (101, 50_000, 2)
    ab = s.alpha_bar[-1].item()
    # x_T | x_0 ~ N(sqrt(ab) x0, 1 - ab): check the residual is standard-normal scaled
    r = (xs[-1] - ab ** 0.5 * x0) / (1 - ab) ** 0.5
    assert r.mean().abs().max() < 0.02 and (r.var(0) - 1).abs().max() < 0.03


def test_q_posterior_matches_bayes_rule():
    """q(x_{t-1}|x_t,x_0) from Bayes: prior N(a' x0, 1-ab') times likelihood N(x_t; sqrt(alpha) x, beta)."""
    s = dd.linear_schedule(1000).respace(20)
    x0, xt = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    for i in (1, 7, 19):
        ab_t, ab_p = s.alpha_bar[i].item(), s.alpha_bar[i - 1].item()
        alpha, beta = ab_t / ab_p, 1 - ab_t / ab_p
        prec = 1 / (1 - ab_p) + alpha / beta
        mean_ref = (ab_p ** 0.5 * x0 / (1 - ab_p) + alpha ** 0.5 * xt / beta) / prec
        mean, var = dd.q_posterior(x0, xt, i, s)
        torch.testing.assert_close(mean, mean_ref)
        assert var.flatten()[0].item() == pytest.approx(1 / prec)


def test_forward_bad_inputs():
    s = dd.linear_schedule(10)
    with pytest.raises(ValueError, match=r"index i must lie in \[0, 9\]"):
        dd.q_sample(torch.zeros(2, 2), 10, s)
    with pytest.raises(TypeError, match="floating-point"):
        dd.q_sample(torch.zeros(2, 2, dtype=torch.long), 1, s)
    with pytest.raises(ValueError, match="eps must have the shape"):
        dd.q_sample(torch.zeros(2, 2), 1, s, eps=torch.zeros(2, 3))
    with pytest.raises(ValueError, match="i >= 1"):
        dd.q_posterior(torch.zeros(2, 2), torch.zeros(2, 2), 0, s)
