import math

import pytest
import torch

import diffedu as dd
from diffedu import flow as F


def gmm():
    return dd.GaussianMixture([0.3, 0.7], [[-2.0, 0.0], [2.0, 1.0]], [[0.2, 0.1], [0.3, 0.5]])


def gauss():
    return dd.GaussianMixture([1.0], [[1.0, -2.0]], [[0.25, 0.5]])


PATHS = ["linear", "cosine"]


@pytest.mark.parametrize("path", PATHS)
def test_path_velocity_is_the_time_derivative(path):
    p = F.get_path(path)
    gen = torch.Generator().manual_seed(0)
    x0, x1 = torch.randn(5, 3, generator=gen, dtype=torch.float64), torch.randn(5, 3, generator=gen, dtype=torch.float64)
    tau, h = torch.rand(5, generator=gen, dtype=torch.float64) * 0.9 + 0.05, 1e-6
    xt, u = p.sample(x0, x1, tau)
    fd = (p.sample(x0, x1, tau + h)[0] - p.sample(x0, x1, tau - h)[0]) / (2 * h)
    torch.testing.assert_close(u, fd, rtol=1e-7, atol=1e-8)
    torch.testing.assert_close(p.sample(x0, x1, torch.zeros(5))[0], x0)        # tau = 0: data
    torch.testing.assert_close(p.sample(x0, x1, torch.ones(5))[0], x1)         # tau = 1: noise
    # the denoiser <-> velocity maps invert each other
    torch.testing.assert_close(p.x0_from_velocity(xt, p.velocity_from_x0(xt, x0, tau), tau), x0)
    if path == "linear":
        torch.testing.assert_close(u, x1 - x0)
    else:
        c, ab = p.vp_equivalent(tau)
        torch.testing.assert_close(c, torch.ones_like(c))


@pytest.mark.parametrize("path", PATHS)
def test_gmm_velocity_solves_the_continuity_equation(path):
    """d/dtau log p_tau = -div u - u . grad log p_tau, with p_tau the exact path marginal
    (finite differences in tau, autograd for the divergence)."""
    g = gmm()
    u = F.gmm_velocity(g, path)
    x = torch.randn(12, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 1.5
    for tau in (0.2, 0.5, 0.85):
        h = 1e-5
        dlogp = (F.gmm_path_marginal(g, path, tau + h).log_prob(x) - F.gmm_path_marginal(g, path, tau - h).log_prob(x)) / (2 * h)
        xr = x.clone().requires_grad_(True)
        v = u(xr, tau)
        div = sum(torch.autograd.grad(v[:, j].sum(), xr, retain_graph=True)[0][:, j] for j in range(2))
        rhs = -div - (v * F.gmm_path_marginal(g, path, tau).score(x)).sum(1)
        torch.testing.assert_close(dlogp, rhs.detach(), rtol=1e-5, atol=1e-6)


def test_gmm_velocity_is_the_conditional_expectation():
    """Monte Carlo: E[u(x_tau) h(x_tau)] = E[(x1 - x0) h(x_tau)] for test functions h (tower property),
    and at tau -> 0 / 1 the closed forms u = -x and u = x - E[x0]."""
    g = gmm()
    gen = torch.Generator().manual_seed(0)
    n, tau = 100_000, 0.6
    x0 = g.sample(n, gen).double()
    x1 = torch.randn(n, 2, generator=gen, dtype=torch.float64)
    xt = (1 - tau) * x0 + tau * x1
    u = F.gmm_velocity(g)(xt, tau)
    for h in (torch.ones(n, 1, dtype=torch.float64), xt, torch.tanh(xt[:, :1] * xt[:, 1:])):
        lhs = (u[:, :, None] * h[:, None, :]).mean(0)
        rhs = ((x1 - x0)[:, :, None] * h[:, None, :]).mean(0)
        torch.testing.assert_close(lhs, rhs, atol=0.03, rtol=0)
    x = torch.randn(4, 2, dtype=torch.float64)
    torch.testing.assert_close(F.gmm_velocity(g)(x, 0.0), -x)
    torch.testing.assert_close(F.gmm_velocity(g)(x, 1.0), x - g.mean())


def test_flow_velocity_converts_to_eps_and_v_through_param():
    """param's 'velocity' is the linear path's velocity at tau = s/(a+s), z = x_t/(a+s): the exact
    GMM velocity and the exact eps/v of the same x_t convert into one another."""
    g = gmm()
    x = torch.randn(16, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(3)) * 1.5
    for ab in (0.9, 0.5, 0.05):
        a, s = ab ** 0.5, (1 - ab) ** 0.5
        tau, z = s / (a + s), x / (a + s)
        u = F.gmm_velocity(g, "linear")(z, tau)
        eps = -s * g.score_t(x, ab)
        v = dd.param.from_x0_eps(g.denoiser(x, ab), eps, ab, "v")
        torch.testing.assert_close(dd.param.convert(eps, x, ab, "eps", "velocity"), u)
        torch.testing.assert_close(dd.param.convert(u, x, ab, "velocity", "v"), v)
        torch.testing.assert_close(dd.param.convert(v, x, ab, "v", "eps"), eps)
        # and the cosine path at the tau with the same alpha_bar gives the same x0, up to c = 1
        tau_c = 2 / math.pi * math.atan2(s, a)
        p = F.get_path("cosine")
        torch.testing.assert_close(p.x0_from_velocity(x, F.gmm_velocity(g, p)(x, tau_c), tau_c), g.denoiser(x, ab))


@pytest.mark.parametrize("path", PATHS)
def test_ode_solvers_converge_to_the_gaussian_flow_map(path):
    """For a diagonal Gaussian, (x - alpha mu) / sqrt(alpha^2 var + sigma^2) is constant on the ODE paths."""
    g = gauss()
    x1 = torch.randn(64, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    mu, var = g.means[0], torch.diagonal(g.covs[0])
    ref = mu + var.sqrt() * x1                     # tau = 0: alpha = 1, sigma = 0
    u = F.gmm_velocity(g, path)
    err = {m: (F.sample_flow(u, x1, 20, m, path) - ref).abs().max().item() for m in F.METHODS}
    assert err["heun"] < err["euler"] / 10 and err["midpoint"] < err["euler"] / 10, err
    assert err["heun"] < 5e-3, err


def test_exact_flow_samples_the_mixture_and_trajectory_shapes():
    g = gmm()
    gen = torch.Generator().manual_seed(0)
    x1 = torch.randn(1500, 2, generator=gen, dtype=torch.float64)
    seen = []
    x0, xs, x0s = F.sample_flow(F.gmm_velocity(g), x1, 30, "heun", return_trajectory=True, callback=seen.append)
    assert xs.shape == (31, 1500, 2) and x0s.shape == (30, 1500, 2)
    assert seen[0]["tau"] == 1.0 and set(seen[0]) == {"x", "i", "tau", "denoised"}
    torch.testing.assert_close(x0s[0], g.mean().expand(1500, 2))       # E[x0 | pure noise]
    truth, truth2 = g.sample(1500, gen), g.sample(1500, gen)
    assert dd.sliced_wasserstein(x0, truth) < 2.5 * dd.sliced_wasserstein(truth, truth2) + 0.03


def test_cfm_loss_is_smallest_for_the_exact_velocity():
    """The marginal velocity minimises the CFM loss (Lipman et al. Theorem 2): perturbing it costs."""
    g = gmm()
    u = F.gmm_velocity(g)
    model = lambda x, t: u(x, t / 1000.0)
    x0 = g.sample(1000, torch.Generator().manual_seed(0)).double()
    best = F.cfm_loss(model, x0, "linear", torch.Generator().manual_seed(1)).item()
    worse = F.cfm_loss(lambda x, t: 1.2 * model(x, t) + 0.1, x0, "linear", torch.Generator().manual_seed(1)).item()
    assert best < worse


def test_reflow_straightens_the_exact_flow():
    """Liu et al.'s claim on a 2D mixture: 1-rectified flow (the exact marginal velocity) has curved
    paths; retraining on its own (noise, sample) pairs gives nearly straight ones."""
    from diffedu.nets.mlp import MLPDenoiser
    g = gmm()
    gen = torch.Generator().manual_seed(0)
    u1 = F.gmm_velocity(g)
    x1 = torch.randn(2000, 2, generator=gen)
    s1 = F.straightness(u1, x1.double(), 50)
    torch.manual_seed(0)
    model, losses, (x0, _) = F.reflow(MLPDenoiser(2, hidden=64, depth=2, prediction="velocity"), u1, x1.double(),
                                      ode_steps=50, steps=1000, lr=3e-3)
    u2 = F.model_velocity(model)
    x1_new = torch.randn(2000, 2, generator=gen)
    s2 = F.straightness(u2, x1_new, 50)
    assert s1 > 0.5 and s2 < 0.05 * s1, (s1, s2)
    # the 2-rectified flow still samples the mixture, now in very few steps
    truth, truth2 = g.sample(2000, gen), g.sample(2000, gen)
    floor = dd.sliced_wasserstein(truth, truth2)
    assert dd.sliced_wasserstein(F.sample_flow(u2, x1_new, 2), truth) < 3 * floor + 0.05


def test_bad_inputs_raise_clear_errors():
    u = F.gmm_velocity(gmm())
    x = torch.randn(4, 2)
    with pytest.raises(ValueError, match="steps"):
        F.sample_flow(u, x, -1)
    with pytest.raises(ValueError, match="path"):
        F.get_path("spline")
    with pytest.raises(ValueError, match="method"):
        F.sample_flow(u, x, 5, method="rk45")
    with pytest.raises(TypeError, match="path"):
        F.get_path(3)
    with pytest.raises(ValueError, match="x1"):
        F.cfm_loss(lambda x, t: x, x, x1=torch.randn(3, 2))
    with pytest.raises(TypeError, match="velocity_fn"):
        F.straightness("u", x)
    with pytest.raises(TypeError, match="gmm"):
        F.gmm_velocity([0.0, 1.0])


@pytest.mark.parametrize("path", PATHS)
def test_a_diffusion_denoiser_is_a_flow(path):
    """The exact denoiser of a discrete cosine schedule, read as a flow velocity, matches the exact
    marginal velocity (log-SNR interpolation between entries), and samples the same."""
    g = gmm()
    sched = dd.cosine_schedule(1000)
    u_d = F.denoiser_velocity_fn(g.as_denoiser(sched), path, sched)
    u_e = F.gmm_velocity(g, path)
    x = torch.randn(64, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 1.5
    for tau in (0.1, 0.5, 0.9):
        rel = ((u_d(x, tau) - u_e(x, tau)).norm(dim=1) / u_e(x, tau).norm(dim=1)).max().item()
        assert rel < 2e-3, (tau, rel)
