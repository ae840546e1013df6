"""Diffusion models as priors: the noise-level adapter dd.sigma_denoiser (exact on Gaussian
mixtures when the schedule holds the level) and Graikos et al.'s optimisation, on toy problems
with a known answer."""
import math

import pytest
import torch

import diffedu as dd
from diffedu.inverse import Dense, Inpainting, PhaseRetrieval, pnp_hqs
from diffedu.inverse.diffusion_prior import annealed_timesteps, diffusion_prior_loss, diffusion_prior_map


def _gmm(D=6, K=3, var=0.05, seed=0):
    g = torch.Generator().manual_seed(seed)
    return dd.GaussianMixture(torch.ones(K), 1.5 * torch.randn(K, D, generator=g, dtype=torch.float64), var)


SIGMAS = [0.02, 0.1, 0.5, 2.0]


def _sigma_schedule(sigmas):
    """A schedule whose alpha_bar grid contains 1 / (1 + sigma^2) for every test sigma."""
    fine = torch.logspace(-3, 1.5, 400, dtype=torch.float64)
    s = torch.cat([fine, torch.tensor(sigmas, dtype=torch.float64)]).sort().values
    return dd.NoiseSchedule(1 / (1 + s**2), torch.arange(len(s)), "sigma-grid")


@pytest.mark.parametrize("sigma", SIGMAS)
def test_gaussian_denoiser_of_a_mixture_is_its_diffusion_denoiser(sigma):
    # E[x0 | x0 + sigma n = x] by self-normalised importance sampling over prior samples,
    # against gmm.denoiser(sqrt(ab) x, ab) with ab = 1 / (1 + sigma^2)
    gmm, g = _gmm(D=2, K=3, var=0.3), torch.Generator().manual_seed(1)
    prior = gmm.sample(400_000, g).double()
    x = gmm.sample(4, g).double() + sigma * torch.randn(4, 2, generator=g, dtype=torch.float64)
    logw = -((x[:, None] - prior[None]) ** 2).sum(-1) / (2 * sigma**2)
    w = torch.softmax(logw, 1)
    mc = w @ prior
    ess = (1 / (w**2).sum(1)).min().item()
    ab = 1 / (1 + sigma**2)
    exact = gmm.denoiser(math.sqrt(ab) * x, ab)
    assert ess > 100
    assert (exact - mc).abs().max() < 6 * max(1.0, sigma) / math.sqrt(ess)


def _plain(den):
    """The denoiser as a plain callable, so that sigma_denoiser must find the schedule entry
    itself (an exact denoiser may answer any level exactly and would hide the lookup)."""
    return lambda xt, t: den(xt, t)


@pytest.mark.parametrize("sigma", SIGMAS)
def test_sigma_denoiser_is_exact_when_the_schedule_contains_the_level(sigma):
    gmm, g = _gmm(), torch.Generator().manual_seed(2)
    sched = _sigma_schedule(SIGMAS)
    D = dd.sigma_denoiser(_plain(gmm.as_denoiser(sched)), sched)
    x = gmm.sample(7, g).double() + sigma * torch.randn(7, gmm.D, generator=g, dtype=torch.float64)
    ab = 1 / (1 + sigma**2)
    torch.testing.assert_close(D(x, sigma), gmm.denoiser(math.sqrt(ab) * x, ab))
    assert float(sched.alpha_bar[D.entry(sigma)]) == pytest.approx(ab)


@pytest.mark.parametrize("sigma", [0.013, 0.07, 0.3, 1.7])
def test_sigma_denoiser_calls_the_nearest_entry_in_log_snr(sigma):
    """Off the grid, the one rule: the entry nearest in log-SNR (at sigma = 0.07 the entry
    nearest in alpha_bar or in sigma would be another one), called at its original
    timestep with x_t = sqrt(alpha_bar) v (alpha_bar = 1 / (1 + sigma^2))."""
    sched = dd.linear_schedule(1000).respace(20)
    seen = {}
    D = dd.sigma_denoiser(lambda xt, t: seen.update(x=xt.clone(), t=t.clone()) or 0 * xt, sched)
    v = torch.randn(3, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    D(v, sigma)
    i = int((sched.log_snr - (-2 * math.log(sigma))).abs().argmin())
    assert seen["t"].tolist() == [int(sched.timesteps[i])] * 3
    torch.testing.assert_close(seen["x"], v / math.sqrt(1 + sigma**2))


def test_sigma_denoiser_on_a_standard_schedule_is_close_and_per_sample_sigmas_work():
    gmm, g = _gmm(), torch.Generator().manual_seed(3)
    sched = dd.linear_schedule(1000)
    D = dd.sigma_denoiser(_plain(gmm.as_denoiser(sched)), sched)
    x = gmm.sample(3, g).double()
    sig = torch.tensor([0.05, 0.3, 1.0], dtype=torch.float64)
    xn = x + sig[:, None] * torch.randn(x.shape, generator=g, dtype=torch.float64)
    want = torch.stack([gmm.denoiser(xn[j:j + 1] / math.sqrt(1 + s**2), 1 / (1 + s**2))[0]
                        for j, s in enumerate(sig.tolist())])
    got = D(xn, sig)
    assert (got - want).abs().max() < 2e-2
    torch.testing.assert_close(got[1:2], D(xn[1:2], 0.3))


def test_sigma_zero_is_the_identity():
    gmm, g = _gmm(), torch.Generator().manual_seed(6)
    sched = dd.linear_schedule(1000)
    D = dd.sigma_denoiser(_plain(gmm.as_denoiser(sched)), sched)
    xn = gmm.sample(2, g).double() + 0.5 * torch.randn(2, gmm.D, generator=g, dtype=torch.float64)
    torch.testing.assert_close(D(xn, 0.0), xn, rtol=0, atol=0)        # nothing to remove
    mixed = D(xn, torch.tensor([0.0, 0.5], dtype=torch.float64))
    torch.testing.assert_close(mixed[0], xn[0], rtol=0, atol=0)
    assert not torch.allclose(mixed[1], xn[1])


def test_the_old_adapter_is_gone():
    """One adapter (dd.sigma_denoiser), one level rule: no second copy in inverse/."""
    import diffedu.inverse as inv
    import diffedu.inverse.diffusion_prior as dp
    assert not hasattr(inv, "diffusion_denoiser") and not hasattr(dp, "diffusion_denoiser")
    assert "sigma_denoiser" in (dp.__doc__ or "") and "denoiser.py" in (dp.__doc__ or "")


def test_sigma_denoiser_in_pnp_hqs_recovers_a_masked_point():
    # Inpainting of a (B, 1, 2, 3) "image" whose prior is a mixture over 6 pixels
    gmm, g = _gmm(D=6, K=3, var=0.02), torch.Generator().manual_seed(4)
    sched = dd.linear_schedule(1000)
    flat = gmm.as_denoiser(sched)
    den = dd.sigma_denoiser(lambda xt, t: flat(xt.reshape(len(xt), -1), t).reshape(xt.shape), sched)
    x0 = gmm.sample(64, g).double().reshape(64, 1, 2, 3)
    op = Inpainting(torch.tensor([[1, 0, 1], [1, 1, 0]]), channels=1)
    y = op.measure(x0, 0.01, g)
    x = pnp_hqs(y, op, den, sigma_y=0.01, iters=20, sigma_max=2.0)
    assert ((x - x0) ** 2).mean() < 0.25 * ((y - x0) ** 2).mean()


def test_annealed_timesteps_decrease_and_cover_the_range():
    ts = annealed_timesteps(50, 20, 400, torch.Generator().manual_seed(0))
    assert ts.shape == (50,) and ts.dtype == torch.long
    assert ts.max() <= 400 and ts.min() >= 20 and ts[0] > 380 and ts[-1] < 40
    assert (ts[1:] <= ts[:-1] + 1).all()                   # non-increasing up to rounding


def test_prior_loss_is_zero_for_the_exact_noise_of_a_point_mass():
    # prior = a point mass at m: D(x_t) = m exactly, so eps_hat = eps when x = m
    m = torch.randn(1, 4, dtype=torch.float64)
    sched = dd.linear_schedule(100)

    def den(xt, t):
        return m.expand_as(xt)

    eps = torch.randn(1, 4, dtype=torch.float64)
    assert diffusion_prior_loss(den, sched, m, 50, eps).item() == pytest.approx(0.0, abs=1e-20)
    assert diffusion_prior_loss(den, sched, m + 1, 50, eps).item() > 0


@pytest.mark.parametrize("jacobian", [True, False])
def test_graikos_beats_the_pseudo_inverse_under_a_gaussian_prior(jacobian):
    # a correlated Gaussian prior in 8D seen through 3 random measurements: the pseudo-inverse
    # puts zeros in the 5D null space, the prior knows what lives there
    g = torch.Generator().manual_seed(0)
    L = 0.3 * torch.randn(8, 8, generator=g, dtype=torch.float64)
    mean = 1.0 + torch.randn(1, 8, generator=g, dtype=torch.float64)
    prior = dd.GaussianMixture(torch.ones(1), mean, (L @ L.T + 0.05 * torch.eye(8, dtype=torch.float64))[None])
    sched = dd.linear_schedule(1000)
    H = torch.randn(3, 8, generator=g, dtype=torch.float64)
    op = Dense(H)
    x0 = prior.sample(100, g).double()
    y = op.measure(x0, 0.05, g)

    def mse(x):
        return ((x - x0) ** 2).sum(1).mean().item()

    x = diffusion_prior_map(y, op, prior.as_denoiser(sched), sched, sigma_y=0.05, lam=10.0, iters=300, lr=0.1,
                            jacobian=jacobian, generator=torch.Generator().manual_seed(1))
    bayes = mse(torch.stack([prior.posterior(H, y[i], 0.05).mean() for i in range(len(y))]))
    assert mse(x) < 0.3 * mse(op.A_dagger(y))              # the prior fills the null space
    assert 0.95 * bayes < mse(x) < 1.5 * bayes             # close to, never better than, the posterior mean


def test_graikos_callback_and_data_consistency():
    gmm, g = _gmm(D=4, K=2), torch.Generator().manual_seed(5)
    sched = dd.linear_schedule(200).respace(50)
    op = Dense(torch.eye(4, dtype=torch.float64))
    x0 = gmm.sample(8, g).double()
    y = op.measure(x0, 0.01, g)
    seen = []
    x = diffusion_prior_map(y, op, gmm.as_denoiser(sched), sched, sigma_y=0.01, lam=1.0, iters=30,
                            generator=g, callback=seen.append)
    assert [d["i"] for d in seen] == list(range(30))
    assert all(int(d["t"]) in set(sched.timesteps.tolist()) for d in seen)
    assert ((x - x0) ** 2).mean() < 0.01                   # A = I, small noise: stays near y


def test_prior_loss_uses_the_denoisers_own_noise_prediction_and_the_schedules_lookup():
    # an eps-predicting network that always answers eps0: the loss is ||eps - eps0||^2 exactly,
    # at any timestep the (respaced) schedule holds
    sched = dd.linear_schedule(100).respace(10)
    eps0 = torch.randn(2, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    net = dd.to_denoiser(lambda xt, t: eps0, sched, prediction="eps")
    eps = torch.randn(2, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    x = torch.randn(2, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    t = int(sched.timesteps[4])
    torch.testing.assert_close(diffusion_prior_loss(net, sched, x, t, eps), (eps - eps0).pow(2).sum(1))
    with pytest.raises(ValueError, match="not in this schedule"):
        diffusion_prior_loss(net, sched, x, t + 1, eps)


class _Spy(dd.Denoiser):
    """Records the (t, alpha_bar) every call receives; predicts x0 = 0."""

    def __init__(self, schedule):
        self.schedule, self.calls = schedule, []

    def x0_eps(self, x, t, cond=None, alpha_bar=None):
        self.calls.append((int(torch.as_tensor(t).reshape(-1)[0]), alpha_bar))
        ab = alpha_bar if alpha_bar is not None else float(self.schedule.alpha_bar_of(int(t[0])))
        return torch.zeros_like(x), x / (1 - ab) ** 0.5


def test_graikos_snaps_annealed_timesteps_to_the_respaced_schedule():
    sched = dd.linear_schedule(1000).respace(25)
    held = sched.timesteps
    spy = _Spy(sched)
    op = Dense(torch.eye(3, dtype=torch.float64))
    y = torch.zeros(2, 3, dtype=torch.float64)
    seen = []
    diffusion_prior_map(y, op, spy, sched, sigma_y=0.1, iters=40, t_min=20, t_max=600,
                        generator=torch.Generator().manual_seed(7), callback=seen.append)
    raw = annealed_timesteps(40, 20, 600, torch.Generator().manual_seed(7))   # drawn first
    for d, r, (t, ab) in zip(seen, raw.tolist(), spy.calls):
        assert d["t"] == t and t in held.tolist()
        assert abs(t - r) == int((held - r).abs().min())                     # the nearest held t
        assert ab == pytest.approx(float(sched.alpha_bar_of(t)), rel=0, abs=0)


def test_bad_inputs_raise_clear_errors():
    gmm = _gmm(D=4, K=2)
    sched = dd.linear_schedule(100)
    den = gmm.as_denoiser(sched)
    with pytest.raises(TypeError, match="denoiser must be callable"):
        dd.sigma_denoiser("unet", sched)
    with pytest.raises(TypeError, match="schedule must be a NoiseSchedule"):
        dd.sigma_denoiser(lambda xt, t: xt, torch.linspace(0, 1, 10))
    with pytest.raises(TypeError, match="needs the denoiser's NoiseSchedule"):
        dd.sigma_denoiser(lambda xt, t: xt)
    D = dd.sigma_denoiser(den, sched)
    x = torch.zeros(2, 4, dtype=torch.float64)
    with pytest.raises(ValueError, match="sigma must be finite and >= 0"):
        D(x, -0.1)
    with pytest.raises(ValueError, match="sigma must be finite and >= 0"):
        D(x, float("nan"))
    with pytest.raises(ValueError, match=r"sigma must be a number or a \(2,\) tensor"):
        D(x, torch.ones(3))
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        D([0.0, 1.0], 0.1)
    op = Dense(torch.eye(4, dtype=torch.float64))
    y = torch.zeros(2, 4, dtype=torch.float64)
    with pytest.raises(ValueError, match="sigma_y must be > 0"):
        diffusion_prior_map(y, op, den, sched, sigma_y=0.0)
    with pytest.raises(ValueError, match="lam must be >= 0"):
        diffusion_prior_map(y, op, den, sched, sigma_y=0.1, lam=-1.0)
    with pytest.raises(ValueError, match="lr must be > 0"):
        diffusion_prior_map(y, op, den, sched, sigma_y=0.1, lr=0.0)
    with pytest.raises(ValueError, match="t_min <= t_max"):
        diffusion_prior_map(y, op, den, sched, sigma_y=0.1, t_min=50, t_max=10)
    with pytest.raises(ValueError, match="y must have shape"):
        diffusion_prior_map(torch.zeros(2, 3), op, den, sched, sigma_y=0.1)
    with pytest.raises(TypeError, match="operator must be a diffedu.inverse Operator"):
        diffusion_prior_map(y, torch.eye(4), den, sched, sigma_y=0.1)
    with pytest.raises(TypeError, match="denoiser must be callable"):
        diffusion_prior_map(y, op, "unet", sched, sigma_y=0.1)
    with pytest.raises(TypeError, match="schedule must be a NoiseSchedule"):
        diffusion_prior_map(y, op, den, "linear", sigma_y=0.1)
    with pytest.raises(ValueError, match="iters must be a positive integer"):
        diffusion_prior_map(y, op, den, sched, sigma_y=0.1, iters=0)
    with pytest.raises(ValueError, match="x_init is required"):
        diffusion_prior_map(torch.zeros(1, 1, 8, 8), PhaseRetrieval(1.0), den, sched, sigma_y=0.1)
    with pytest.raises(TypeError, match="positional argument"):
        diffusion_prior_map(y, op, den, sched, 0.1)
    x = diffusion_prior_map(y=y, operator=op, denoiser=den, schedule=sched, sigma_y=0.1, iters=2)
    assert x.shape == y.shape
