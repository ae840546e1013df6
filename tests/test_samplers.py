import pytest
import torch

import diffedu as dd
from diffedu.samplers import ddim_sigma


def gmm():
    return dd.GaussianMixture([0.3, 0.7], [[-2.0, 0.0], [2.0, 1.0]], [[0.2, 0.1], [0.3, 0.5]])


def test_ddim_eta1_variance_is_ddpm_posterior_variance():
    s = dd.cosine_schedule(1000).respace(25)
    ab = s.alpha_bar
    for i in range(1, 25):
        var_post = (1 - ab[i - 1]) / (1 - ab[i]) * (1 - ab[i] / ab[i - 1])
        assert ddim_sigma(ab[i].item(), ab[i - 1].item(), 1.0) ** 2 == pytest.approx(var_post.item())


@pytest.mark.parametrize("steps", [10, 50])
def test_ddim_eta1_equals_ddpm_with_same_noise(steps):
    s = dd.linear_schedule(1000)
    D = gmm().as_denoiser(s)
    xT = torch.randn(64, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    a = dd.ddim(D, xT, s, steps, eta=1.0, generator=torch.Generator().manual_seed(5))
    b = dd.ddpm(D, xT, s, steps, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(a, b)


def test_ddim_eta0_is_deterministic_and_reproducible():
    s = dd.linear_schedule(1000)
    D = gmm().as_denoiser(s)
    xT = torch.randn(32, 2, dtype=torch.float64)
    a = dd.ddim(D, xT, s, 20, generator=torch.Generator().manual_seed(1))
    b = dd.ddim(D, xT, s, 20, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_gaussian_prior_ddim_gives_exact_distribution():
    """For a single Gaussian the exact-denoiser DDIM(eta=0) ODE maps N(0,I) to N(m, v) nearly exactly."""
    prior = dd.GaussianMixture([1.0], [[1.0, -2.0]], [[0.25, 4.0]])
    s = dd.cosine_schedule(1000)
    xT = torch.randn(20_000, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    x0 = dd.ddim(prior.as_denoiser(s), xT, s, 100)
    torch.testing.assert_close(x0.mean(0), torch.tensor([1.0, -2.0], dtype=torch.float64), atol=0.03, rtol=0)
    torch.testing.assert_close(x0.var(0), torch.tensor([0.25, 4.0], dtype=torch.float64), rtol=0.04, atol=0)


@pytest.mark.parametrize("sampler,kw", [(dd.ddim, {"eta": 0.0}), (dd.ddim, {"eta": 1.0}), (dd.ddpm, {})])
def test_exact_denoiser_samples_match_the_mixture(sampler, kw):
    g = gmm()
    s = dd.linear_schedule(1000)
    gen = torch.Generator().manual_seed(0)
    xT = torch.randn(3000, 2, generator=gen)
    x0 = sampler(g.as_denoiser(s), xT, s, 100, generator=gen, **kw)
    truth, truth2 = g.sample(3000, gen), g.sample(3000, gen)
    floor = dd.sliced_wasserstein(truth, truth2)
    sw = dd.sliced_wasserstein(x0, truth)
    assert sw < 2.5 * floor + 0.03, (sw, floor)
    # and far better than an untrained "sampler" that returns the noise
    assert dd.sliced_wasserstein(xT, truth) > 5 * sw


def test_trajectory_and_callback():
    s = dd.linear_schedule(100)
    D = gmm().as_denoiser(s)
    seen = []
    x, xs, x0s = dd.ddim(D, torch.randn(5, 2), s, 7, return_trajectory=True, callback=seen.append)
    assert xs.shape == (8, 5, 2) and x0s.shape == (7, 5, 2)
    torch.testing.assert_close(xs[-1], x)
    assert [d["i"] for d in seen] == list(range(6, -1, -1)) and seen[0]["t"] == 99
    assert set(seen[0]) == {"x", "i", "t", "denoised"}


def test_last_step_returns_the_denoised_estimate():
    s = dd.linear_schedule(100)
    D = gmm().as_denoiser(s)
    x, xs, x0s = dd.ddpm(D, torch.randn(5, 2), s, 10, return_trajectory=True)
    torch.testing.assert_close(x, x0s[-1])


def test_sampler_bad_inputs():
    s = dd.linear_schedule(10)
    D = lambda x, t: x
    with pytest.raises(ValueError, match="eta must be >= 0"):
        dd.ddim(D, torch.zeros(2, 2), s, eta=-1)
    with pytest.raises(TypeError, match="schedule must be a NoiseSchedule"):
        dd.ddim(D, torch.zeros(2, 2), "linear")
    with pytest.raises(ValueError, match="unknown variance"):
        dd.ddpm(D, torch.zeros(2, 2), s, variance="medium")
    with pytest.raises(ValueError, match="steps <= 10"):
        dd.ddim(D, torch.zeros(2, 2), s, steps=20)
