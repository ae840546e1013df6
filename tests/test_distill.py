"""Distillation (chapter 13): the teachers at continuous levels, the closed forms of each
method's target, and tiny training runs of every entry (diffedu/distill)."""
import math

import pytest
import torch

import diffedu as dd
from diffedu.data.toy import toy_gmm
from diffedu.distill import common, consistency as cm, guidance as gd, progressive as pd


def _x(n=64, seed=0, d=2):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# -- teachers at a continuous level ----------------------------------------------------------
def test_gmm_x0_is_the_exact_denoiser_row_by_row():
    gmm, x = toy_gmm(), _x()
    ab = torch.linspace(0.01, 0.99, len(x), dtype=torch.float64)
    want = torch.stack([gmm.denoiser(x[i:i + 1], float(ab[i]))[0] for i in range(len(x))])
    torch.testing.assert_close(common.gmm_x0(gmm, x, ab), want)
    # SNR = 0: x_t carries no information, E[x0 | x_t] = E[x0]
    torch.testing.assert_close(common.gmm_x0(gmm, x, torch.zeros(len(x))), gmm.mean().expand(len(x), 2))


def test_level_teacher_from_a_denoiser_and_refusals():
    gmm, x = toy_gmm(), _x(8).float()
    D = gmm.as_denoiser(dd.linear_schedule(100))
    ab = torch.full((8,), 0.3)
    torch.testing.assert_close(common.level_teacher(D)(x, ab), common.level_teacher(gmm)(x, ab), atol=1e-5, rtol=1e-5)
    with pytest.raises(TypeError, match="teacher must be a diffedu Denoiser"):
        common.level_teacher(lambda x, t: x)
    with pytest.raises(TypeError, match="teacher must be"):
        pd.progressive_distill("not a teacher", gmm, N=4, to=2, steps=1)


def test_labelled_teacher_matches_the_exact_class_denoiser():
    gmm, x = toy_gmm(), _x(16).float()
    sched = dd.linear_schedule(100)
    from diffedu.exact.guidance import gmm_class_denoiser
    D = gmm_class_denoiser(gmm, sched)
    ab = float(sched.alpha_bar[40])
    y = torch.arange(16) % 3
    torch.testing.assert_close(common.level_teacher(gmm)(x, torch.full((16,), ab), y=y), D(x, 40, y), atol=1e-5, rtol=1e-5)


# -- progressive distillation ----------------------------------------------------------------
def test_ddim_move_is_dd_ddim_step():
    x0, z = _x(8, 1), _x(8, 2)
    t, s = torch.full((8,), 0.7, dtype=torch.float64), torch.full((8,), 0.4, dtype=torch.float64)
    a_t, a_s = float(common.cosine_alpha_sigma(0.7)[0] ** 2), float(common.cosine_alpha_sigma(0.4)[0] ** 2)
    eps = (z - a_t ** 0.5 * x0) / (1 - a_t) ** 0.5
    torch.testing.assert_close(pd.ddim_move(z, x0, t, s), dd.ddim_step(z, x0, eps, a_t, a_s))


@pytest.mark.parametrize("t", [1.0, 0.5, 0.0625])
def test_pd_target_one_student_step_lands_on_the_teachers_two(t):
    """Algorithm 2's x~: one DDIM step t -> t'' from x_hat = x~ gives exactly z_t''."""
    z_t, z_tpp = _x(32, 3), _x(32, 4)
    N = 16
    tt, tpp = torch.full((32,), t, dtype=torch.float64), torch.full((32,), t - 1 / N, dtype=torch.float64)
    target = pd.pd_target(z_t, z_tpp, tt, tpp)
    torch.testing.assert_close(pd.ddim_move(z_t, target, tt, tpp), z_tpp)


def test_truncated_snr_weight_is_max_of_x_and_eps_errors():
    x, eps, x_hat = _x(16, 5), _x(16, 6), _x(16, 7)
    for t in (0.05, 0.5, 0.95):
        a, s = (float(v) for v in common.cosine_alpha_sigma(t))
        z = a * x + s * eps
        eps_hat = (z - a * x_hat) / s
        lhs = torch.maximum(((x - x_hat) ** 2).sum(1), ((eps - eps_hat) ** 2).sum(1))
        torch.testing.assert_close(lhs, max((a / s) ** 2, 1.0) * ((x - x_hat) ** 2).sum(1))


def test_sampling_starts_at_snr_zero_and_the_exact_teacher_converges():
    gmm = toy_gmm()
    z = torch.randn(2000, 2, generator=torch.Generator().manual_seed(0))
    assert float(common.cosine_alpha_sigma(1.0)[0]) == 0.0 and float(common.cosine_alpha_sigma(1.0)[1]) == 1.0
    ref = gmm.sample(2000, torch.Generator().manual_seed(1))
    sw1 = common.sw_to(pd.pd_sample(gmm, z, 1), ref)
    sw64 = common.sw_to(pd.pd_sample(gmm, z, 64), ref)
    assert sw64 < 0.15 < sw1
    # one step from SNR = 0 returns the data mean for every noise draw
    torch.testing.assert_close(pd.pd_sample(gmm, z[:4], 1), gmm.mean().float().expand(4, 2))


@pytest.mark.parametrize("N", [0, 3, 6, -2, 2.0])
def test_step_counts_must_be_powers_of_two(N):
    with pytest.raises((ValueError, TypeError), match="N"):
        pd.check_steps(N)


def test_progressive_distill_runs_and_halves():
    gmm = toy_gmm()
    students, losses = pd.progressive_distill(gmm, gmm, N=4, to=1, steps=5, batch_size=32, init_steps=5, hidden=16)
    assert sorted(students) == [1, 2] and all(math.isfinite(v) for v in losses[1])
    with pytest.raises(ValueError, match="to must be smaller"):
        pd.progressive_distill(gmm, gmm, N=4, to=4)


# -- consistency models ----------------------------------------------------------------------
def test_boundary_condition_holds_exactly():
    c_skip, c_out, _ = cm.boundary(cm.EPS, 0.7)
    assert float(c_skip) == 1.0 and float(c_out) == 0.0
    torch.manual_seed(0)
    f = cm.ConsistencyModel(sigma_d=0.7, hidden=16)
    x = _x(10).float()
    assert torch.equal(f(x, cm.EPS), x)
    assert not torch.allclose(f(x, 1.0), x)
    with pytest.raises(ValueError, match="sigma must be >= eps"):
        f(x, 1e-4)


def test_heun_step_follows_the_gaussian_ode():
    """For data N(0, v) the PF-ODE is x(s) = x(s0) sqrt((v + s^2) / (v + s0^2))."""
    v = 0.5
    D = lambda x, s: x * v / (v + cm._col(torch.as_tensor(s), x) ** 2)
    x = _x(8).float()
    s0, s1 = torch.full((8,), 2.0), torch.full((8,), 1.5)
    torch.testing.assert_close(cm.heun_step(D, x, s0, s1), x * math.sqrt((v + 1.5 ** 2) / (v + 4.0)), atol=2e-3, rtol=2e-3)


def test_sigma_teacher_is_dd_sigma_denoiser_for_the_gmm():
    gmm, x = toy_gmm(), _x(8).float()
    D = cm.sigma_teacher(gmm)
    ref = dd.sigma_denoiser(gmm.as_denoiser(dd.linear_schedule(100)))
    torch.testing.assert_close(D(x, torch.full((8,), 0.8)), ref(x, 0.8), atol=1e-5, rtol=1e-5)


def test_curricula():
    assert cm.ct_schedule(0, 100)[0] == 2 and cm.ct_schedule(100, 100)[0] == 151
    assert cm.ct_schedule(0, 100)[1] == pytest.approx(0.9)
    assert cm.ict_schedule(0, 800) == 11 and cm.ict_schedule(799, 800) == 1281
    assert [cm.ict_schedule(k, 800) for k in (0, 100, 200)] == [11, 21, 41]
    n = cm.lognormal_index(11, 5000, torch.Generator().manual_seed(0))
    assert 0 <= int(n.min()) and int(n.max()) <= 9
    grid = cm.karras_grid(11)
    assert float(grid[0]) == pytest.approx(cm.EPS) and float(grid[-1]) == pytest.approx(cm.SIGMA_MAX)


def test_pseudo_huber_is_the_whole_vector_norm():
    a, b = _x(4, 1), _x(4, 2)
    torch.testing.assert_close(cm.pseudo_huber(a, b, 0.0), (a - b).norm(dim=1))
    small = 1e-4 * a
    torch.testing.assert_close(cm.pseudo_huber(small, 0 * a, 1.0), (small ** 2).sum(1) / 2, rtol=1e-3, atol=1e-12)


@pytest.mark.parametrize("method", ["cd", "ct", "ict"])
def test_consistency_entries_run(method):
    gmm = toy_gmm()
    if method == "cd":
        m, losses = cm.consistency_distill(gmm, gmm, steps=4, batch_size=16, hidden=16)
    else:
        m, losses = cm.consistency_train(gmm, method, steps=4, batch_size=16, hidden=16)
    assert all(math.isfinite(v) for v in losses)
    z = torch.randn(8, 2)
    assert cm.cm_sample(m, z).shape == (8, 2) and cm.cm_sample(m, z, (80.0, 1.0, 0.1)).shape == (8, 2)
    with pytest.raises(ValueError, match="decreasing"):
        cm.cm_sample(m, z, (1.0, 2.0))
    with pytest.raises(ValueError, match="method"):
        cm.consistency_train(gmm, "cm")


# -- guidance distillation -------------------------------------------------------------------
def test_cfg_teacher_endpoints_and_the_package_guide():
    gmm, x = toy_gmm(), _x(8).float()
    t = torch.full((8,), 0.4, dtype=torch.float64)
    ab = common.cosine_alpha_sigma(t)[0] ** 2
    lt, x0 = common.level_teacher(gmm), gd.cfg_teacher(gmm)
    y = torch.full((8,), 2)
    torch.testing.assert_close(x0(x, t, y, 1.0), lt(x, ab, y=y))
    torch.testing.assert_close(x0(x, t, y, 0.0), lt(x, ab))
    sched = dd.linear_schedule(100)
    from diffedu.exact.guidance import exact_cfg_denoiser
    ab40 = float(sched.alpha_bar[40])
    t40 = torch.full((8,), math.acos(math.sqrt(ab40)) * 2 / math.pi, dtype=torch.float64)
    torch.testing.assert_close(x0(x, t40, y, 2.5), exact_cfg_denoiser(gmm, sched, 2, 2.5)(x, 40), atol=1e-5, rtol=1e-5)
    assert gd.meng_w(1.0) == 0.0 and gd.meng_w(3.0) == 2.0


def test_guidance_student_refuses_w_outside_its_range_and_unlabelled_data():
    gmm = toy_gmm()
    st, losses = gd.guidance_distill(gmm, steps=3, batch_size=16, hidden=16)
    assert st.w_range == (0.0, 4.0) and all(math.isfinite(v) for v in losses)
    z = torch.randn(4, 2)
    assert gd.gd_sample(st, z, 2, 1, 3.0).shape == (4, 2)
    for bad in (-0.5, 4.5, float("nan")):
        with pytest.raises(ValueError, match="trained range"):
            gd.gd_sample(st, z, 2, 1, bad)
    with pytest.raises(ValueError, match="labelled"):
        gd.guidance_distill(dd.GaussianMixture([1.0], [[0.0, 0.0]]), steps=1)
    students, _ = gd.gd_step_distill(st, gmm, N=2, to=1, steps=2, batch_size=16)
    assert students[1].w_range == (0.0, 4.0)


# -- adversarial diffusion distillation ------------------------------------------------------
def test_r1_is_the_gradient_norm_at_the_real_inputs():
    from diffedu.distill import adversarial as ad
    x = _x(16).float()
    disc = lambda v: (v ** 2).sum(1)                   # grad = 2 x
    torch.testing.assert_close(ad.r1_penalty(disc, x), (4 * x ** 2).sum(1).mean())
    D = ad.FeatureDiscriminator(2)                     # only the heads are trainable
    assert all(not p.requires_grad for p in D.features.parameters()) and all(p.requires_grad for p in D.heads.parameters())


def test_adversarial_distill_runs_and_mode_coverage():
    from diffedu.distill import adversarial as ad
    gmm = toy_gmm()
    init = common.LevelMLP(hidden=16)
    for adv in (True, False):
        st, losses = ad.adversarial_distill(gmm, gmm, init, steps=3, batch_size=16, adversarial=adv)
        assert all(math.isfinite(v) for v in losses) and not any(p.requires_grad for p in st.parameters())
    cov = ad.mode_coverage(gmm.sample(4000, torch.Generator().manual_seed(0)), gmm)
    assert sum(cov) == pytest.approx(1.0) and max(abs(c - w) for c, w in zip(cov, gmm.weights.tolist())) < 0.05
    with pytest.raises(TypeError, match="teacher must be"):
        ad.adversarial_distill("no", gmm, init, steps=1)
