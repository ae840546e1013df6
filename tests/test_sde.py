import math

import pytest
import torch

import diffedu as dd
from diffedu import likelihood as L
from diffedu import sde as S
from diffedu.times import as_t



SDES = [S.VPSDE(), S.SubVPSDE(), S.VESDE()]
IDS = ["vp", "subvp", "ve"]


def gmm():
    return dd.GaussianMixture([0.3, 0.7], [[-2.0, 0.0], [2.0, 1.0]], [[0.2, 0.1], [0.3, 0.5]])


def gauss():
    return dd.GaussianMixture([1.0], [[1.0, -2.0]], [[0.25, 0.5]])


# -- the SDEs ---------------------------------------------------------------------------------
@pytest.mark.parametrize("sde", SDES, ids=IDS)
def test_marginals_solve_the_moment_equations(sde):
    """For dx = f x dt + g dw: dm/dt = f m and d(s^2)/dt = 2 f s^2 + g^2 (finite differences)."""
    t = torch.tensor([0.05, 0.3, 0.6, 0.9], dtype=torch.float64)
    h = 1e-6
    (m1, s1), (m0, s0) = sde.marginal(t + h), sde.marginal(t - h)
    m, s = sde.marginal(t)
    f = sde.drift(torch.ones(4, 1, dtype=torch.float64), t)[:, 0]
    g2 = sde.diffusion(t) ** 2
    torch.testing.assert_close((m1 - m0) / (2 * h), f * m, rtol=1e-6, atol=1e-8)
    torch.testing.assert_close((s1 ** 2 - s0 ** 2) / (2 * h), 2 * f * s ** 2 + g2, rtol=1e-6, atol=1e-8)


def test_vp_and_subvp_closed_forms():
    vp, sub = S.VPSDE(), S.SubVPSDE()
    t = torch.linspace(0.01, 1, 7, dtype=torch.float64)
    m, s = vp.marginal(t)
    torch.testing.assert_close(m ** 2 + s ** 2, torch.ones_like(t))
    torch.testing.assert_close(vp.alpha_bar(t), torch.exp(-(0.1 * t + 0.5 * t ** 2 * 19.9)))
    ms, ss = sub.marginal(t)
    torch.testing.assert_close(ms, m)
    torch.testing.assert_close(ss, 1 - m ** 2)
    assert (ss < s).all()                       # sub-VP: smaller variance than VP
    ve = S.VESDE(0.01, 50.0)
    assert ve.marginal(1.0)[1].item() == pytest.approx(50.0)
    assert ve.prior_sample((1000, 2), torch.Generator().manual_seed(0)).std().item() == pytest.approx(50, rel=0.05)


def test_vp_sde_is_the_limit_of_ddpm_linear_schedule():
    """beta(t) = 0.1 + 19.9 t discretised with T = 1000 gives DDPM's betas 1e-4 .. 0.02."""
    a = S.VPSDE().to_schedule(1000).alpha_bar
    b = dd.linear_schedule(1000).alpha_bar
    assert (a.log() - b.log()).abs().max().item() < 0.1


# -- score functions --------------------------------------------------------------------------
def test_gmm_score_fn_matches_gmm_score_t_for_vp():
    g, vp = gmm(), S.VPSDE()
    x = torch.randn(16, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for t in (0.01, 0.4, 0.95):
        torch.testing.assert_close(S.gmm_score_fn(g, vp)(x, t), g.score_t(x, vp.alpha_bar(t).item()))
    # per-row times are handled row by row
    t = torch.tensor([0.1] * 8 + [0.7] * 8, dtype=torch.float64)
    out = S.gmm_score_fn(g, vp)(x, t)
    torch.testing.assert_close(out[8:], g.score_t(x[8:], vp.alpha_bar(0.7).item()))


def test_ve_score_is_the_score_of_the_blurred_mixture():
    g, ve = gmm(), S.VESDE()
    x = torch.randn(10, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 3
    sigma = ve.sigma(0.5).item()
    blurred = dd.GaussianMixture(g.weights, g.means, g.covs + sigma ** 2 * torch.eye(2, dtype=torch.float64))
    torch.testing.assert_close(S.gmm_score_fn(g, ve)(x, 0.5), blurred.score(x))


@pytest.mark.parametrize("sde", SDES, ids=IDS)
def test_denoiser_score_fn_bridges_a_discrete_denoiser(sde):
    """A denoiser of a discrete VP schedule gives the score of any SDE, by scaling x and
    matching the equivalent alpha_bar; interpolation in log-SNR beats the nearest entry."""
    g = gmm()
    sched = dd.cosine_schedule(1000)
    exact = S.gmm_score_fn(g, sde)
    x = torch.randn(32, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    errs = {}
    discrete = dd.as_denoiser(g.as_denoiser(sched).__call__, sched)   # known at the entries only
    for interp in (True, False):
        fn = S.denoiser_score_fn(discrete, sde, sched, interpolate=interp)
        errs[interp] = max(((fn(x * sde.marginal(t)[1].item(), t) - exact(x * sde.marginal(t)[1].item(), t)).norm(dim=1)
                            / exact(x * sde.marginal(t)[1].item(), t).norm(dim=1)).max().item()
                           for t in (0.2, 0.5, 0.8))
    assert errs[True] < 1e-3, errs
    assert errs[True] < errs[False]


def test_denoiser_score_fn_from_param_denoiser():
    """NetworkDenoiser (an eps model) carries its schedule; the bridge needs nothing else."""
    g, vp = gmm(), S.VPSDE()
    sched = vp.to_schedule(1000)
    exact_D = g.as_denoiser(sched)
    model = lambda x, t: (x - sched.alpha_bar[t][:, None].sqrt() * exact_D(x, t)) / (1 - sched.alpha_bar[t][:, None]).sqrt()
    D = dd.NetworkDenoiser(model, sched, prediction="eps")
    x = torch.randn(8, 2, dtype=torch.float64)
    t = 0.3                                   # exactly on the schedule's entry 299
    torch.testing.assert_close(S.denoiser_score_fn(D, vp)(x, t), S.gmm_score_fn(g, vp)(x, t))


# -- samplers ---------------------------------------------------------------------------------
def gaussian_flow_map(g, sde, x1, t_min):
    """PF-ODE solution for a diagonal Gaussian: (x - m mu) / sqrt(C_t) is constant along paths."""
    mu, var = g.means[0], torch.diagonal(g.covs[0])
    (m1, s1), (m0, s0) = sde.marginal(1.0), sde.marginal(t_min)
    C1, C0 = m1 ** 2 * var + s1 ** 2, m0 ** 2 * var + s0 ** 2
    return m0 * mu + (C0 / C1).sqrt() * (x1 - m1 * mu)


@pytest.mark.parametrize("sde", SDES, ids=IDS)
def test_pf_ode_heun_matches_the_gaussian_flow_map(sde):
    g = gauss()
    x1 = sde.prior_sample((64, 2), torch.Generator().manual_seed(0), torch.float64)
    ref = gaussian_flow_map(g, sde, x1, sde.t_min)
    err_heun = (S.pf_ode_heun(S.gmm_score_fn(g, sde), x1, sde, 40) - ref).abs().max().item()
    err_euler = (S.pf_ode_euler(S.gmm_score_fn(g, sde), x1, sde, 40) - ref).abs().max().item()
    assert err_heun < 1e-2 * sde.prior_std() and err_heun < err_euler / 5, (err_heun, err_euler)


@pytest.mark.parametrize("name,sde,steps,kw", [
    ("em", S.VPSDE(), 200, {}),
    ("heun", S.VPSDE(), 25, {}),
    ("pc", S.VPSDE(), 100, {}),
    ("em", S.VESDE(0.01, 20.0), 200, {}),
    ("pc", S.VESDE(0.01, 20.0), 100, {}),
])
def test_samplers_with_the_exact_score_sample_the_mixture(name, sde, steps, kw):
    fn = {"em": S.reverse_sde_euler_maruyama, "heun": S.pf_ode_heun, "pc": S.predictor_corrector}[name]
    g = gmm()
    gen = torch.Generator().manual_seed(0)
    xT = sde.prior_sample((1500, 2), gen, torch.float64)
    x0 = fn(S.gmm_score_fn(g, sde), xT, sde, steps, generator=gen, **kw)
    truth, truth2 = g.sample(1500, gen), g.sample(1500, gen)
    floor = dd.sliced_wasserstein(truth, truth2)
    sw = dd.sliced_wasserstein(x0, truth)
    assert sw < 2.5 * floor + 0.05, (sw, floor)


def test_trajectory_and_callback():
    g, vp = gmm(), S.VPSDE()
    xT = vp.prior_sample((5, 2), torch.Generator().manual_seed(0), torch.float64)
    seen = []
    x0, xs, x0s = S.predictor_corrector(S.gmm_score_fn(g, vp), xT, vp, 7, generator=torch.Generator().manual_seed(1),
                                        return_trajectory=True, callback=seen.append)
    assert xs.shape == (8, 5, 2) and x0s.shape == (7, 5, 2)
    torch.testing.assert_close(xs[-1], x0)
    assert [d["i"] for d in seen] == list(range(7)) and seen[0]["t"] == 1.0
    assert set(seen[0]) == {"x", "i", "t", "denoised"}


# -- likelihood -------------------------------------------------------------------------------
@pytest.mark.parametrize("sde", [S.VPSDE(), S.VESDE()], ids=["vp", "ve"])
def test_pf_ode_log_likelihood_is_exact_on_a_mixture(sde):
    g = gmm()
    x = g.sample(6, torch.Generator().manual_seed(0)).double()
    score = S.gmm_score_fn(g, sde)
    p1 = S.gmm_marginal(g, sde, 1.0).log_prob                  # exact prior: isolates the ODE error
    ref = S.gmm_marginal(g, sde, 1e-5).log_prob(x)
    ll = L.log_likelihood(score, x, sde, 40, method="rk4", prior_log_prob=p1)
    assert (ll - ref).abs().max().item() < 1e-3
    # with the N(0, prior_std^2) prior, what remains is the prior mismatch (small for VP)
    ll_std = L.log_likelihood(score, x, sde, 40, method="rk4")
    assert (ll_std - g.log_prob(x)).abs().max().item() < (0.05 if sde.name == "vp" else 0.3)


def test_log_likelihood_heun_error_shrinks_quadratically():
    g, vp = gauss(), S.VPSDE()
    x = g.sample(4, torch.Generator().manual_seed(0)).double()
    p1 = S.gmm_marginal(g, vp, 1.0).log_prob
    ref = S.gmm_marginal(g, vp, 1e-5).log_prob(x)
    e = [(L.log_likelihood(S.gmm_score_fn(g, vp), x, vp, n, prior_log_prob=p1) - ref).abs().max().item()
         for n in (20, 40)]
    assert e[1] < e[0] / 3 and e[1] < 5e-3, e


def test_hutchinson_divergence_on_images():
    """(B, C, H, W) input; isotropic Gaussian data, so Rademacher probes give the exact trace."""
    vp, v = S.VPSDE(), 0.3

    def score(x, t):
        m, s = vp.marginal(t)
        return -x / as_t(m ** 2 * v + s ** 2, x)

    x = torch.randn(3, 1, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * v ** 0.5
    exact = L.log_likelihood(score, x, vp, 20, method="rk4")
    hutch = L.log_likelihood(score, x, vp, 20, method="rk4", exact_divergence=False, hutchinson_samples=2,
                             generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(hutch, exact)
    ref = -0.5 * (x.reshape(3, -1) ** 2).sum(1) / v - 8 * math.log(2 * math.pi * v)
    assert (exact - ref).abs().max().item() < 5e-3


def test_hutchinson_is_unbiased_on_a_mixture():
    g, vp = gmm(), S.VPSDE()
    x = g.sample(3, torch.Generator().manual_seed(0)).double()
    exact = L.log_likelihood(S.gmm_score_fn(g, vp), x, vp, 20)
    hutch = L.log_likelihood(S.gmm_score_fn(g, vp), x, vp, 20, exact_divergence=False, hutchinson_samples=32,
                             generator=torch.Generator().manual_seed(0))
    assert (hutch - exact).abs().max().item() < 0.3


# -- DDIM = Euler on the PF-ODE in sigma ------------------------------------------------------
def test_ddim_is_euler_on_the_pf_ode_in_sigma():
    sched = dd.linear_schedule(1000)
    D = gmm().as_denoiser(sched)
    xT = torch.randn(64, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    a, xs_a, _ = dd.ddim(D, xT, sched, 20, eta=0.0, return_trajectory=True)
    b, xs_b, _ = dd.pf_ode_euler_sigma(D, xT, sched, 20, return_trajectory=True)
    torch.testing.assert_close(xs_b, xs_a, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(b, a, rtol=1e-12, atol=1e-12)


def test_ddim_is_euler_for_an_eps_network():
    sched = dd.cosine_schedule(1000)
    model = lambda x, t: torch.tanh(x.flip(1)) * (t[:, None] / 1000.0) + 0.1 * x
    D = dd.NetworkDenoiser(model, sched, prediction="eps")
    xT = torch.randn(8, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(dd.pf_ode_euler_sigma(D, xT, sched, 15), dd.ddim(D, xT, sched, 15),
                               rtol=1e-12, atol=1e-12)


def test_heun_in_sigma_is_more_accurate_than_ddim():
    g, sched = gmm(), dd.linear_schedule(1000)
    D = g.as_denoiser(sched)
    xT = torch.randn(64, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    ref = dd.ddim(D, xT, sched, 1000)
    e_euler = (dd.pf_ode_euler_sigma(D, xT, sched, 20) - ref).abs().mean().item()
    e_heun = (dd.pf_ode_euler_sigma(D, xT, sched, 20, heun=True) - ref).abs().mean().item()
    assert e_heun < e_euler / 2, (e_heun, e_euler)


# -- input checks -----------------------------------------------------------------------------
def test_bad_inputs_raise_clear_errors():
    g, vp = gmm(), S.VPSDE()
    score = S.gmm_score_fn(g, vp)
    x = torch.randn(4, 2)
    with pytest.raises(ValueError, match="steps"):
        S.pf_ode_euler(score, x, vp, -3)
    with pytest.raises(TypeError, match="sde"):
        S.pf_ode_heun(score, x, "vp", 10)
    with pytest.raises(ValueError, match="sde"):
        S.get_sde("cosine")
    with pytest.raises(ValueError, match="beta_min"):
        S.VPSDE(beta_min=30.0)
    with pytest.raises(ValueError, match="method"):
        L.log_likelihood(score, x.double(), vp, 10, method="rk45")
    with pytest.raises(ValueError, match="snr"):
        S.predictor_corrector(score, x, vp, 10, snr=0.0)
    with pytest.raises(TypeError, match="x_T"):
        S.reverse_sde_euler_maruyama(score, x.numpy(), vp, 10)
    with pytest.raises(TypeError, match="schedule"):
        S.denoiser_score_fn(lambda x, t: x, vp)
    assert S.get_sde("ve", sigma_max=10.0).sigma_max == 10.0


@pytest.mark.parametrize("fn", [S.reverse_sde_euler_maruyama, S.pf_ode_euler, S.pf_ode_heun, S.predictor_corrector])
def test_samplers_accept_images(fn):
    """(B, C, H, W) works: isotropic Gaussian data N(0, v I), whose score is -x / (m^2 v + s^2)."""
    vp, v = S.VPSDE(), 0.25

    def score(x, t):
        m, s = vp.marginal(t)
        return -x / as_t(m ** 2 * v + s ** 2, x)

    gen = torch.Generator().manual_seed(0)
    x0, xs, x0s = fn(score, vp.prior_sample((256, 1, 4, 4), gen), vp, 60, generator=gen, return_trajectory=True)
    assert xs.shape == (61, 256, 1, 4, 4) and x0s.shape == (60, 256, 1, 4, 4)
    assert x0.var().item() == pytest.approx(v, rel=0.15)


def test_denoiser_score_below_the_schedules_smallest_noise_level_is_held_not_inflated():
    """At t far below the schedule's first level, the score is the one at that level (close to the
    clean score of a GMM with covariances >= 0.1), not eps_hat divided by a tiny noise std."""
    gmm = dd.GaussianMixture([0.5, 0.5], [[-1.0, 0.0], [1.0, 0.5]], 0.2)
    schedule = dd.linear_schedule(1000)
    score = S.denoiser_score_fn(gmm.as_denoiser(schedule), S.VPSDE(), schedule)
    x = torch.tensor([[0.3, 0.2], [-1.2, 0.4]], dtype=torch.float64)
    torch.testing.assert_close(score(x, 1e-6), gmm.score(x), atol=0.1, rtol=0.05)
