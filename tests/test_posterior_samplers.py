"""Diffusion posterior samplers (DPS, DDRM, RePaint, DiffPIR) and the exact Gaussian-mixture
benchmark: accuracy against the exact posterior, measurement consistency, shapes on images,
and clear errors."""
import pytest
import torch

import diffedu as dd
from diffedu.inverse import (Blur, Dense, Inpainting, PhaseRetrieval, SuperResolution, Turbulence, box_mask,
                             gaussian_kernel)
from diffedu.exact import posterior_benchmark as gb
from diffedu.inverse.posterior import (DPSDenoiser, ddrm, diffpir, diffpir_data_step, diffpir_step, dps,
                                      dps_denoiser, dps_step, repaint, repaint_schedule, repaint_step)

SCHED = dd.linear_schedule(1000)
POSTERIOR_SAMPLERS = ["DPS", "DDRM", "DiffPIR", "RePaint"]


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def gaussian_image_denoiser(schedule, v=0.25):
    """Exact denoiser of the prior x_0 ~ N(0, v I) (any shape), as a plain callable:
    E[x_0|x_t] = a v x_t / (a^2 v + 1 - a^2)."""
    def D(x, t):
        ab = schedule.alpha_bar_of(torch.as_tensor(t).reshape(-1)[:1]).item()
        return ab ** 0.5 * v * x / (ab * v + 1 - ab)
    return D


class GaussianImageDenoiser(dd.Denoiser):
    """The same exact denoiser as a Denoiser: x0_eps uses the sampler's alpha_bar when given."""

    def __init__(self, schedule, v=0.25):
        self.schedule, self.v = schedule, v

    def x0_eps(self, x, t, cond=None, alpha_bar=None):
        ab = self.schedule.alpha_bar_of(dd.t_batch(t, x)[:1]).item() if alpha_bar is None else alpha_bar
        x0 = ab ** 0.5 * self.v * x / (ab * self.v + 1 - ab)
        return x0, (x - ab ** 0.5 * x0) / (1 - ab) ** 0.5


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These loops make many small tensor ops: one thread is faster, above all on a shared CPU."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def problem():
    # d = 8, d_y = 2, seed 1: a posterior far from the prior (most mass on a few modes)
    return gb.make_problem(8, 2, seed=1)


@pytest.fixture(scope="module")
def reference(problem):
    n = 400
    ref = problem.posterior.sample(n, generator=gen(123))
    prior_sw = dd.sliced_wasserstein(problem.prior.sample(n, generator=gen(7)), ref)
    return ref, prior_sw


# ----------------------------------------------------------------------------- the benchmark

def test_unit_cov_denoiser_is_the_exact_gmm_denoiser(problem):
    fast, exact = gb.unit_cov_denoiser(problem.prior, SCHED), problem.prior.as_denoiser(SCHED)
    x = 6 * torch.randn(32, 8, generator=gen(1), dtype=torch.float64)
    for t in (0, 300, 999):
        torch.testing.assert_close(fast(x, t), exact(x, t), rtol=1e-6, atol=1e-6)
    # and the PnP conversion: Gaussian denoiser at std sigma = GMM denoiser at ab = 1/(1+sigma^2)
    sigma = 2.0
    ab = 1 / (1 + sigma ** 2)
    torch.testing.assert_close(gb.gaussian_denoiser(problem.prior)(x, sigma),
                               problem.prior.denoiser(x * ab ** 0.5, ab), rtol=1e-6, atol=1e-6)


def test_make_problem_follows_the_protocol():
    p = gb.make_problem(8, 2, seed=3)
    assert p.prior.K == 25 and p.prior.D == 8
    assert torch.allclose(p.prior.means[:, :2], p.prior.means[:, 2:4])       # (8i, 8j) repeated
    s = p.operator.singular_values()
    assert p.y.shape == (1, 2) and p.x_true.shape == (1, 8) and p.A.shape == (2, 8)
    assert (s[:2] <= 1).all() and (s[2:] == 0).all() and 0 < p.sigma_y <= s.max()
    # same seed, same problem
    q = gb.make_problem(8, 2, seed=3)
    torch.testing.assert_close(p.y, q.y)
    assert gb.make_problem(8, 1, seed=0, sigma_y=0.05).sigma_y == 0.05


@pytest.mark.parametrize("name", POSTERIOR_SAMPLERS)
def test_sampler_beats_prior_on_gmm_posterior(name, problem, reference):
    ref, prior_sw = reference
    x = gb.run_sampler(name, problem, n_samples=400, generator=gen(2))
    assert x.shape == (400, 8) and torch.isfinite(x).all()
    sw = dd.sliced_wasserstein(x, ref)
    assert sw < 0.5 * prior_sw, f"{name}: SW {sw:.2f} vs prior {prior_sw:.2f}"


@pytest.mark.parametrize("name", POSTERIOR_SAMPLERS)
def test_sampler_is_nearly_exact_for_a_gaussian_prior(name):
    """One Gaussian, small noise: every sampler lands close to the exact (Gaussian) posterior."""
    prior = dd.GaussianMixture([1.0], [[3.0, -2.0, 1.0, 0.0, 0.0, 1.0, -1.0, 2.0]], 1.0)
    H = torch.randn(4, 8, generator=gen(0), dtype=torch.float64)
    x_true = gb.sample_mixture(prior, 1, gen(1)).double()
    y = x_true @ H.T + 0.05 * torch.randn(1, 4, generator=gen(2), dtype=torch.float64)
    post = prior.posterior(H, y[0], 0.05)
    prob = gb.GMMProblem(prior, Dense(H), x_true.float(), y.float(), 0.05, post, 0)
    ref = gb.sample_mixture(post, 1000, gen(3))
    prior_sw = dd.sliced_wasserstein(gb.sample_mixture(prior, 1000, gen(4)), ref)
    sw = dd.sliced_wasserstein(gb.run_sampler(name, prob, 1000, gen(5)), ref)
    assert sw < 0.3 * prior_sw, f"{name}: SW {sw:.3f} vs prior {prior_sw:.3f}"


def test_exact_posterior_resampled_is_the_noise_floor(problem, reference):
    ref, prior_sw = reference
    x = gb.run_sampler("exact posterior resampled", problem, 400, gen(5))
    assert dd.sliced_wasserstein(x, ref) < 0.2 * prior_sw


def test_sample_mixture_matches_the_mixture(problem):
    post = problem.posterior
    x = gb.sample_mixture(post, 4000, gen(0)).double()
    torch.testing.assert_close(x.mean(0), post.mean(), atol=0.3, rtol=0)
    torch.testing.assert_close(torch.cov(x.T), post.cov(), atol=0.5, rtol=0.1)


def test_run_benchmark_and_table():
    threads = torch.get_num_threads()
    rows = gb.run_benchmark(["prior samples", "DDRM", "PnP-HQS"], d=8, d_y=1, n_samples=100, seeds=(0,),
                            options={"DDRM": {"steps": 10}}, threads=2)
    assert torch.get_num_threads() == threads                           # restored
    assert [r["sampler"] for r in rows] == ["prior samples", "DDRM", "PnP-HQS"]
    assert all(r["sw"] > 0 and r["d"] == 8 for r in rows)
    table = gb.format_table(rows)
    assert table.startswith("| sampler | d=8, d_y=1 |") and "| DDRM |" in table


# ----------------------------------------------------------------------------- properties

def test_ddrm_noiseless_is_measurement_consistent(problem):
    """sigma_y = 0, eta_b = 1: the last step returns ybar on every measured coordinate."""
    y = problem.x_true @ problem.A.float().T                           # noiseless y
    x = ddrm(y.expand(50, -1), problem.operator, gb.unit_cov_denoiser(problem.prior, SCHED), SCHED,
             sigma_y=0.0, steps=20, eta=0.85, eta_b=1.0, generator=gen(0))
    torch.testing.assert_close(problem.operator.A(x), y.expand(50, -1), rtol=0, atol=1e-4)


def test_ddrm_small_noise_fits_the_measurement_up_to_the_noise():
    p = gb.make_problem(8, 2, seed=1, sigma_y=0.01)
    x = gb.run_sampler("DDRM", p, 200, gen(0))
    resid = (p.operator.A(x) - p.y).norm(dim=1)
    assert resid.max() < 5 * 0.01 * 2 ** 0.5


@pytest.mark.parametrize("kind", ["sr", "inpainting", "blur"])
def test_ddrm_noiseless_images_are_consistent(kind):
    op = {"sr": lambda: SuperResolution(2, 8, channels=1),
          "inpainting": lambda: Inpainting(box_mask(8, 4), channels=1),
          "blur": lambda: Blur(gaussian_kernel(3, 0.8), 8, channels=1)}[kind]()
    x_true = 0.5 * torch.randn(2, 1, 8, 8, generator=gen(1))
    y = op.A(x_true)
    x = ddrm(y, op, gaussian_image_denoiser(SCHED), SCHED, sigma_y=0.0, steps=10, generator=gen(0))
    torch.testing.assert_close(op.A(x), y, rtol=0, atol=1e-4)


@pytest.mark.parametrize("sigma_y", [0.0, 0.1])
def test_repaint_keeps_the_known_pixels(sigma_y):
    mask = box_mask(8, 4)
    op = Inpainting(mask, channels=1)
    y = op.measure(0.5 * torch.randn(3, 1, 8, 8, generator=gen(1)), sigma_y, gen(2))
    x = repaint(y, op, gaussian_image_denoiser(SCHED), SCHED, steps=20, jump_length=5, jump_n_sample=3,
                generator=gen(0))
    assert x.shape == (3, 1, 8, 8)
    torch.testing.assert_close(x * mask, y, rtol=0, atol=1e-6)        # known pixels kept exactly
    assert (x * (1 - mask)).abs().sum() > 0                             # the hole is filled


def test_noise_aware_repaint_helps_with_noisy_measurements():
    """Plain RePaint pastes A^+ y, whose noise sigma_y / s_j is large where s_j is small; the
    noise-aware variant replaces a coordinate only once the level is below that noise."""
    p = gb.make_problem(8, 2, seed=0)
    ref = p.posterior.sample(300, generator=gen(1))
    aware = gb.run_sampler("RePaint", p, 300, gen(2))
    plain = gb.run_sampler("RePaint", p, 300, gen(2), noise_aware=False)
    assert dd.sliced_wasserstein(aware, ref) < 0.5 * dd.sliced_wasserstein(plain, ref)


def test_repaint_schedule_time_travel():
    levels = repaint_schedule(20, jump_length=5, jump_n_sample=3)
    assert levels[0] == 19 and levels[-1] == -1
    steps = torch.tensor(levels).diff()
    assert set(steps.tolist()) == {-1, 1}
    # jump points 0, 5, 10 (15 leaves no room): each jumps back 5 levels twice
    assert (steps == 1).sum() == 3 * 2 * 5
    assert (steps == -1).sum() == 20 + 3 * 2 * 5
    assert repaint_schedule(10, 5, 1) == list(range(9, -2, -1))       # no resampling


def test_dps_with_zeta_zero_is_ddpm(problem):
    D = gb.unit_cov_denoiser(problem.prior, SCHED)
    x_T = torch.randn(16, 8, generator=gen(3))
    a = dps(problem.y.expand(16, -1), problem.operator, D, SCHED, zeta=0.0, steps=25, x_T=x_T, generator=gen(4))
    b = dd.ddpm(D, x_T, SCHED, steps=25, generator=gen(4))
    torch.testing.assert_close(a, b)


def test_dps_as_a_guided_denoiser_in_ddpm_is_dps(problem):
    D = gb.unit_cov_denoiser(problem.prior, SCHED)
    s = SCHED.respace(30)
    # float64: the two differ only by rounding, which the mixture's dynamics can amplify
    y, x_T = problem.y.double().expand(16, -1), torch.randn(16, 8, generator=gen(3), dtype=torch.float64)
    a = dps(y, problem.operator, D, s, zeta=0.2, x_T=x_T, generator=gen(4))
    D_y = dps_denoiser(y, problem.operator, D, s, zeta=0.2)
    assert isinstance(D_y, dd.Denoiser) and isinstance(D_y, DPSDenoiser) and D_y.schedule is s
    b = dd.ddpm(D_y, x_T, s, generator=gen(4))
    torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-8)
    # and step for step: the same trajectories
    _, xs_a, _ = dps(y, problem.operator, D, s, zeta=0.2, x_T=x_T, generator=gen(4), return_trajectory=True)
    _, xs_b, _ = dd.ddpm(D_y, x_T, s, generator=gen(4), return_trajectory=True)
    torch.testing.assert_close(xs_a, xs_b, rtol=1e-8, atol=1e-8)


def test_dps_denoiser_keeps_the_contract(problem):
    """x0_eps and __call__ agree, eps matches x0 at t's level, and rows at different
    timesteps give what each row gives alone."""
    s = SCHED.respace(30)
    y = problem.y.double() + 0.1 * torch.randn(6, 2, generator=gen(2), dtype=torch.float64)
    D = GaussianImageDenoiser(SCHED, v=4.0)                  # per-row levels need a per-row prior denoiser
    D_y = dps_denoiser(y, problem.operator, D, s, zeta=0.3)
    x = 3 * torch.randn(6, 8, generator=gen(1), dtype=torch.float64)
    t = s.timesteps[torch.tensor([29, 29, 10, 10, 0, 3])]
    x0, eps = D_y.x0_eps(x, t)
    ab = s.alpha_bar_of(t, x)
    torch.testing.assert_close(D_y(x, t), x0)
    torch.testing.assert_close(eps, (x - ab.sqrt() * x0) / (1 - ab).sqrt())
    for k in range(6):
        x0_k, eps_k = dps_denoiser(y[k:k + 1], problem.operator, D, s, zeta=0.3).x0_eps(x[k:k + 1], t[k:k + 1])
        torch.testing.assert_close(x0[k:k + 1], x0_k)
        torch.testing.assert_close(eps[k:k + 1], eps_k)
    assert D_y.score(x, t).shape == x.shape


def test_dps_step_reduces_the_residual(problem):
    """Same noise, with and without the measurement step: the guided x_{i-1} denoises to an
    estimate closer to the measurement."""
    D, op = gb.unit_cov_denoiser(problem.prior, SCHED), problem.operator
    s = SCHED.respace(50)
    i = 20
    ab_t, ab_prev = s.alpha_bar[i].item(), s.alpha_bar[i - 1].item()
    y = problem.y.expand(200, -1)
    x = dd.q_sample(problem.prior.sample(200, generator=gen(1)), torch.full((200,), i), s, generator=gen(2))
    t = torch.full((200,), int(s.timesteps[i]))
    t_prev = torch.full((200,), int(s.timesteps[i - 1]))
    noise = torch.randn(200, 8, generator=gen(3))
    guided, x0, r0 = dps_step(x, t, ab_t, ab_prev, y, op, D, 0.5, noise)
    plain, _, _ = dps_step(x, t, ab_t, ab_prev, y, op, D, 0.0, noise)
    r_guided = (y - op.A(D(guided, t_prev))).norm(dim=1)
    r_plain = (y - op.A(D(plain, t_prev))).norm(dim=1)
    assert r0.shape == (200,)
    assert (r_guided < r_plain).float().mean() > 0.95 and r_guided.mean() < r_plain.mean()


def test_diffpir_data_step_is_the_closed_form(problem):
    op, H = problem.operator, problem.A
    x0 = torch.randn(5, 8, generator=gen(1), dtype=torch.float64)
    y = torch.randn(5, 2, generator=gen(2), dtype=torch.float64)
    rho = 0.3
    want = torch.linalg.solve(H.T @ H + rho * torch.eye(8, dtype=torch.float64), (y @ H + rho * x0).T).T
    torch.testing.assert_close(diffpir_data_step(x0, y, op, rho), want)
    # noiseless limit (rho -> 0): a projection onto {A x = y}
    x = diffpir_data_step(x0, y, op, 0.0)
    torch.testing.assert_close(op.A(x), y, rtol=0, atol=1e-6)


def test_trajectory_and_callback(problem):
    D = gb.unit_cov_denoiser(problem.prior, SCHED)
    seen = []
    x, xs, x0s = ddrm(problem.y.expand(4, -1), problem.operator, D, SCHED, sigma_y=problem.sigma_y, steps=10,
                      generator=gen(0), return_trajectory=True, callback=lambda d: seen.append(d["i"]))
    assert xs.shape == (11, 4, 8) and x0s.shape == (10, 4, 8) and seen == list(range(9, -1, -1))
    torch.testing.assert_close(xs[-1], x)
    # each sampler reports its own extras in the callback dict
    keys = {}
    dps(problem.y.expand(4, -1), problem.operator, D, SCHED, steps=3, generator=gen(0),
        callback=lambda d: keys.setdefault("dps", list(d)))
    diffpir(problem.y.expand(4, -1), problem.operator, D, SCHED, sigma_y=problem.sigma_y, steps=3, generator=gen(0),
            callback=lambda d: keys.setdefault("diffpir", list(d)))
    assert keys == {"dps": ["x", "i", "t", "residual", "denoised"],
                    "diffpir": ["x", "i", "t", "x0_prior", "denoised"]}


def _run(name, D, y, op, sigma_y, seed=2):
    """Sampler `name` on (y, op) with denoiser D (a Denoiser or a plain callable)."""
    g = gen(seed)
    if name == "dps":
        return dps(y, op, D, SCHED, zeta=0.3, steps=10, generator=g)
    if name == "dps_denoiser+ddpm":
        s = SCHED.respace(10)
        x_T = torch.randn((len(y),) + tuple(op.in_shape), generator=gen(seed + 1))
        return dd.ddpm(dps_denoiser(y, op, D, s, zeta=0.3), x_T, s, generator=g)
    if name == "ddrm":
        return ddrm(y, op, D, SCHED, sigma_y=sigma_y, steps=10, generator=g)
    if name == "diffpir":
        return diffpir(y, op, D, SCHED, sigma_y=sigma_y, steps=10, generator=g)
    return repaint(y, op, D, SCHED, sigma_y=sigma_y, steps=10, jump_length=3, jump_n_sample=2, generator=g)


@pytest.mark.parametrize("name", ["dps", "dps_denoiser+ddpm", "ddrm", "diffpir", "repaint"])
def test_each_sampler_accepts_a_denoiser_or_a_plain_callable(name):
    """Every denoiser argument goes through as_denoiser: a plain callable, a Denoiser subclass,
    the callable wrapped by as_denoiser and a network wrapped by to_denoiser all work, and the
    same prior gives the same samples."""
    sr = SuperResolution(2, 8, channels=1)
    y = sr.measure(0.5 * torch.randn(2, 1, 8, 8, generator=gen(0)), 0.05, gen(1))
    plain = gaussian_image_denoiser(SCHED)
    want = _run(name, plain, y, sr, 0.05)
    assert want.shape == (2, 1, 8, 8) and torch.isfinite(want).all()
    for D in (GaussianImageDenoiser(SCHED), dd.as_denoiser(plain, SCHED), dd.as_denoiser(plain)):
        torch.testing.assert_close(_run(name, D, y, sr, 0.05), want)
    # a network (here an exact eps-predictor of the same prior) through the contract, and as a plain callable
    v = 0.25

    def eps_model(x, t):
        ab = SCHED.alpha_bar_of(t, x)
        return (1 - ab).sqrt() * x / (ab * v + 1 - ab)
    net = dd.to_denoiser(eps_model, SCHED, prediction="eps")
    got = _run(name, net, y, sr, 0.05)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(_run(name, lambda x, t: net(x, t), y, sr, 0.05), got, rtol=1e-4, atol=1e-4)


def test_repaint_without_jumps_is_reverse_loop_over_its_step():
    """jump_n_sample = 1: RePaint's own loop equals samplers.reverse_loop over the same step."""
    op = Inpainting(box_mask(8, 4), channels=1)
    y = op.A(0.5 * torch.randn(2, 1, 8, 8, generator=gen(0)))
    D, s = GaussianImageDenoiser(SCHED), SCHED.respace(12)
    x_T = torch.randn(2, 1, 8, 8, generator=gen(1))
    g = gen(2)
    x_y = op.A_dagger(y)

    def step(x, i, t, ab_t, ab_prev, z):
        x0 = D.x0_eps(x, t, alpha_bar=ab_t)[0]
        noise_known = None if z is None else torch.randn(x.shape, generator=g)
        return repaint_step(x, x0, ab_t, ab_prev, x_y, op, z, noise_known), x0, {}
    a = dd.samplers.reverse_loop(step, x_T, s, generator=g, return_trajectory=True)
    b = repaint(y, op, D, s, steps=None, jump_length=4, jump_n_sample=1, x_T=x_T, generator=gen(2),
                return_trajectory=True)
    for u, w in zip(a, b):
        torch.testing.assert_close(u, w, rtol=0, atol=0)


def test_diffpir_step_last_step_and_noise():
    op = Inpainting(box_mask(8, 4), channels=1)
    x, x0 = torch.randn(2, 1, 8, 8, generator=gen(0)), torch.randn(2, 1, 8, 8, generator=gen(1))
    y = op.A(x0)
    x_prev, x0hat = diffpir_step(x, x0, 0.3, 1.0, y, op, sigma_y=0.0, lam=7.0, zeta=0.1)
    torch.testing.assert_close(x_prev, x0hat)
    torch.testing.assert_close(op.A(x0hat), y)                          # sigma_y = 0: a projection
    with pytest.raises(ValueError, match="noise"):
        diffpir_step(x, x0, 0.3, 0.5, y, op, 0.0, 7.0, 0.1)


# ----------------------------------------------------------------------------- images

def test_each_sampler_on_tiny_images():
    D = gaussian_image_denoiser(SCHED)
    x_true = 0.5 * torch.randn(2, 1, 8, 8, generator=gen(0))
    inp = Inpainting(box_mask(8, 4), channels=1)
    sr = SuperResolution(2, 8, channels=1)
    y_sr = sr.measure(x_true, 0.05, gen(1))
    out = {
        "dps": dps(y_sr, sr, D, SCHED, steps=20, generator=gen(2)),
        "ddrm": ddrm(y_sr, sr, D, SCHED, sigma_y=0.05, steps=10, generator=gen(2)),
        "diffpir": diffpir(y_sr, sr, D, SCHED, sigma_y=0.05, steps=10, generator=gen(2)),
        "repaint": repaint(inp.A(x_true), inp, D, SCHED, steps=10, jump_length=2, jump_n_sample=2,
                           generator=gen(2)),
    }
    for name, x in out.items():
        assert x.shape == (2, 1, 8, 8) and torch.isfinite(x).all(), name


def test_dps_on_phase_retrieval_runs():
    op = PhaseRetrieval(2.0, img_size=8, channels=1)
    x_true = 0.5 * torch.randn(2, 1, 8, 8, generator=gen(0))
    y = op.A(x_true)
    assert y.shape == (2, 1, 16, 16)
    x = dps(y, op, gaussian_image_denoiser(SCHED), SCHED, steps=20, generator=gen(1))
    assert x.shape == (2, 1, 8, 8) and torch.isfinite(x).all()


def test_non_svd_operator_paths():
    op = Turbulence(8, strength=0.5, channels=1, seed=0)
    D = gaussian_image_denoiser(SCHED)
    y = op.A(0.5 * torch.randn(1, 1, 8, 8, generator=gen(0)))
    x = repaint(y, op, D, SCHED, steps=4, jump_length=2, jump_n_sample=1, generator=gen(1))
    x2 = diffpir(y, op, D, SCHED, sigma_y=0.01, steps=4, cg_iters=20, generator=gen(1))
    assert x.shape == x2.shape == (1, 1, 8, 8)
    with pytest.raises(TypeError, match="SVD"):
        ddrm(y, op, D, SCHED, sigma_y=0.01)
    with pytest.raises(ValueError, match="sigma_y"):
        repaint(y, op, D, SCHED, sigma_y=0.1)


# ----------------------------------------------------------------------------- errors

def test_bad_inputs_raise_clear_errors(problem):
    D, op, y = gb.unit_cov_denoiser(problem.prior, SCHED), problem.operator, problem.y
    with pytest.raises(ValueError, match=r"y must have shape \(B, 2\)"):
        ddrm(torch.zeros(1, 3), op, D, SCHED, sigma_y=0.1)
    with pytest.raises(ValueError, match=r"y must have shape"):
        dps(torch.zeros(4, 2, 1), op, D, SCHED)
    with pytest.raises(ValueError, match="sigma_y must be >= 0"):
        ddrm(y, op, D, SCHED, sigma_y=-0.1)
    with pytest.raises(ValueError, match="sigma_y must be >= 0"):
        diffpir(y, op, D, SCHED, sigma_y=-1.0)
    with pytest.raises(ValueError, match="eta must be >= 0 and <= 1"):
        ddrm(y, op, D, SCHED, sigma_y=0.1, eta=1.5)
    with pytest.raises(ValueError, match="zeta must be >= 0 and <= 1"):
        diffpir(y, op, D, SCHED, sigma_y=0.1, zeta=2.0)
    with pytest.raises(TypeError, match="eta_b must be a real number"):
        ddrm(y, op, D, SCHED, sigma_y=0.1, eta_b="1")
    with pytest.raises(ValueError, match="lam must be > 0"):
        diffpir(y, op, D, SCHED, sigma_y=0.1, lam=0.0)
    with pytest.raises(ValueError, match="zeta must be >= 0"):
        dps(y, op, D, SCHED, zeta=-1.0)
    with pytest.raises(ValueError, match="same batch size"):
        dps(y, op, D, SCHED, x_T=torch.zeros(3, 8))
    with pytest.raises(TypeError, match="operator must be"):
        dps(y, problem.A, D, SCHED)
    with pytest.raises(TypeError, match="linear"):
        diffpir(torch.zeros(1, 1, 16, 16), PhaseRetrieval(2.0, img_size=8, channels=1),
                D, SCHED, sigma_y=0.1)
    with pytest.raises(TypeError, match="schedule"):
        dps(y, op, D, "linear")
    with pytest.raises(TypeError, match="denoiser"):
        dps(y, op, None, SCHED)
    with pytest.raises(ValueError, match="jump_length"):
        repaint(y, op, D, SCHED, jump_length=0)
    with pytest.raises(TypeError):
        ddrm(y, op, D, SCHED, sigma_y=0.1, not_an_option=1)
    # hyperparameters are keyword-only, in every sampler and in dps_denoiser
    with pytest.raises(TypeError):
        dps(y, op, D, SCHED, 0.5)
    with pytest.raises(TypeError):
        ddrm(y, op, D, SCHED, 0.1)
    with pytest.raises(TypeError):
        diffpir(y, op, D, SCHED, 0.1)
    with pytest.raises(TypeError):
        repaint(y, op, D, SCHED, 20)
    with pytest.raises(TypeError):
        dps_denoiser(y, op, D, SCHED, 0.5)
    with pytest.raises(TypeError, match="operator must be"):
        dps_denoiser(y, problem.A, D, SCHED)


def test_benchmark_bad_inputs(problem):
    with pytest.raises(ValueError, match="unknown sampler"):
        gb.run_benchmark(["MCGdiff"])
    with pytest.raises(ValueError, match="unknown sampler"):
        gb.run_sampler("ddrm", problem)
    with pytest.raises(ValueError, match="unknown option"):
        gb.run_sampler("DDRM", problem, 10, zeta=1.0)
    with pytest.raises(ValueError, match="d must be even"):
        gb.make_problem(7, 1)
    with pytest.raises(ValueError, match="d_y must be <= d"):
        gb.make_problem(8, 9)
    with pytest.raises(ValueError, match="sigma_y"):
        gb.make_problem(8, 1, sigma_y=-0.1)
