"""Riemannian flow matching on S^2 and T^2 (diffedu.domains.manifold): geometry against closed forms, exact
samplers against their densities and moments, the geodesic kernel against brute force, samplers against
velocity fields whose flows are known."""
import math

import pytest
import torch

from diffedu.domains import manifold as M


def _g(seed=0):
    return torch.Generator().manual_seed(seed)


def _sphere_points(n, seed=0):
    return M.uniform("sphere", n, _g(seed), torch.float64)


def test_sphere_exp_log_closed_form_and_round_trip():
    a = torch.tensor([0.3, 1.2, 2.9], dtype=torch.float64)
    x = torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64).expand(3, 3)
    y = torch.stack([torch.sin(a), torch.zeros(3, dtype=torch.float64), torch.cos(a)], 1)   # angle a from the pole
    torch.testing.assert_close(M.sphere_log(x, y), torch.stack([a, 0 * a, 0 * a], 1))
    torch.testing.assert_close(M.sphere_dist(x, y), a)
    torch.testing.assert_close(M.sphere_exp(x, M.sphere_log(x, y)), y)
    p, q = _sphere_points(50), _sphere_points(50, seed=1)
    v = M.sphere_log(p, q)
    torch.testing.assert_close((p * v).sum(1), torch.zeros(50, dtype=torch.float64), atol=1e-12, rtol=0)   # tangent
    torch.testing.assert_close(v.norm(dim=1), torch.arccos((p * q).sum(1)))
    torch.testing.assert_close(M.sphere_exp(p, v), q)
    torch.testing.assert_close(M.sphere_exp(p, 0 * v), p)                                               # exp_x(0) = x


def test_torus_log_takes_the_short_way_across_the_seam():
    x = torch.tensor([[0.1, 3.0], [6.2, 0.5]], dtype=torch.float64)
    y = torch.tensor([[2 * math.pi - 0.1, 3.5], [0.1, 0.5]], dtype=torch.float64)
    torch.testing.assert_close(M.torus_log(x, y), torch.tensor([[-0.2, 0.5], [0.1 + 2 * math.pi - 6.2, 0.0]],
                                                               dtype=torch.float64))
    torch.testing.assert_close(M.torus_exp(x, M.torus_log(x, y)), y)
    torch.testing.assert_close(M.torus_dist(x, y), M.torus_log(x, y).norm(dim=1))


@pytest.mark.parametrize("manifold", M.MANIFOLDS)
def test_geodesic_path_velocity_is_log_over_remaining_time(manifold):
    x0, x1 = M.uniform(manifold, 40, _g(2), torch.float64), M.uniform(manifold, 40, _g(3), torch.float64)
    t = torch.rand(40, generator=_g(4), dtype=torch.float64) * 0.9
    xt, ut = M.geodesic_path(manifold, x0, x1, t)
    M.check_on_manifold("xt", xt, manifold, tol=1e-12)
    torch.testing.assert_close(ut, M.log_map(manifold, xt, x1) / (1 - t[:, None]))
    h = 1e-6                                                           # finite difference along the path
    xh, _ = M.geodesic_path(manifold, x0, x1, t + h)
    torch.testing.assert_close(M.log_map(manifold, xt, xh) / h, ut, atol=1e-5, rtol=1e-5)
    for s, end in ((0.0, x0), (1.0, x1)):
        torch.testing.assert_close(M.geodesic_path(manifold, x0, x1, torch.full((40,), s, dtype=torch.float64))[0], end)


def test_vmf_sampler_matches_its_closed_form_law():
    mu = torch.tensor([0.6, 0.0, -0.8], dtype=torch.float64)
    for kappa in (2.0, 30.0):
        x = M.vmf_sample(mu, kappa, 20000, _g(5))
        M.check_on_manifold("x", x, "sphere", tol=1e-12)
        w = (x @ mu).sort().values                        # its density is proportional to exp(kappa w) on [-1, 1]
        cdf = (torch.exp(kappa * (w - 1)) - math.exp(-2 * kappa)) / (1 - math.exp(-2 * kappa))
        emp = torch.arange(1, len(w) + 1, dtype=torch.float64) / len(w)
        assert float((cdf - emp).abs().max()) < 0.012, kappa      # Kolmogorov-Smirnov; the 99% bound is 0.0115
        mean_len = 1 / math.tanh(kappa) - 1 / kappa               # E[x] = A(kappa) mu
        torch.testing.assert_close(x.mean(0), mean_len * mu, atol=0.01, rtol=0)


def _lonlat_grid(n=200):
    lon = (torch.arange(2 * n, dtype=torch.float64) + 0.5) * math.pi / n
    lat = (torch.arange(n, dtype=torch.float64) + 0.5) * math.pi / n - math.pi / 2
    LO, LA = torch.meshgrid(lon, lat, indexing="ij")
    pts = torch.stack([LA.cos() * LO.cos(), LA.cos() * LO.sin(), LA.sin()], -1).reshape(-1, 3)
    return pts, (LA.cos() * (math.pi / n) ** 2).reshape(-1)           # area element cos(lat) dlon dlat


def test_densities_integrate_to_one():
    pts, dA = _lonlat_grid()
    lp = M.chapter_log_prob("sphere", pts)
    assert abs(float((lp.exp() * dA).sum()) - 1) < 1e-3
    n = 200
    a = (torch.arange(n, dtype=torch.float64) + 0.5) * 2 * math.pi / n
    grid = torch.stack(torch.meshgrid(a, a, indexing="ij"), -1).reshape(-1, 2)
    assert abs(float(M.chapter_log_prob("torus", grid).exp().sum() * (2 * math.pi / n) ** 2) - 1) < 1e-6


def test_wrapped_gaussian_circular_moments():
    m, s = torch.tensor([[6.0, 0.2]], dtype=torch.float64), 0.5
    x = M.wrapped_gaussian_sample(m, [s], [1.0], 40000, _g(6))
    M.check_on_manifold("x", x, "torus", tol=0)
    z = torch.complex(torch.cos(x), torch.sin(x)).mean(0)                # E[e^{i theta}] = e^{i m} e^{-s^2 / 2}
    want = torch.complex(torch.cos(m[0]), torch.sin(m[0])) * math.exp(-s * s / 2)
    assert float((z - want).abs().max()) < 0.01


@pytest.mark.parametrize("manifold", M.MANIFOLDS)
def test_geodesic_kernel_and_mmd_against_brute_force(manifold):
    x, y = M.uniform(manifold, 7, _g(7), torch.float64), M.uniform(manifold, 5, _g(8), torch.float64)
    d = lambda a, b: (M.sphere_dist(a, b) if manifold == "sphere" else M.torus_log(a, b).abs().sum())  # noqa: E731
    k = lambda a, b: sum(math.exp(-float(d(a, b)) / h) for h in (0.1, 0.3, 1.0))                       # noqa: E731
    brute = (sum(k(a, b) for a in x for b in x) / 49 + sum(k(a, b) for a in y for b in y) / 25
             - 2 * sum(k(a, b) for a in x for b in y) / 35)
    assert abs(M.geodesic_mmd(manifold, x, y) - brute) < 1e-12
    gram = M.geodesic_kernel(manifold, *(2 * [M.uniform(manifold, 200, _g(9), torch.float64)]))
    assert float(torch.linalg.eigvalsh(gram).min()) > -1e-9          # positive definite: MMD >= 0 and a metric
    p, q = x[:1], x[1:2]                                             # two point masses: 2 k(0) - 2 k(d)
    two = M.geodesic_mmd(manifold, torch.cat([p, p]), torch.cat([q, q]))
    assert abs(two - 2 * sum(1 - math.exp(-float(d(p[0], q[0])) / h) for h in (0.1, 0.3, 1.0))) < 1e-12


def test_off_manifold_points_get_an_error_naming_the_tolerance():
    x = _sphere_points(4)
    x[2] *= 1.001
    with pytest.raises(ValueError, match=r"row 2 .*tol=1e-05"):
        M.check_on_manifold("x0", x, "sphere")
    with pytest.raises(ValueError, match=r"off the torus.*tol=1e-05"):
        M.sample_rfm(M.VelocityMLP("torus"), "torus", torch.tensor([[0.5, 7.0]]))
    with pytest.raises(ValueError, match=r"shape \(B, 3\)"):
        M.check_on_manifold("x", torch.zeros(3, 2), "sphere")
    with pytest.raises(ValueError, match="manifold"):
        M.uniform("cylinder", 3)
    with pytest.raises(ValueError, match="weights"):
        M.wrapped_gaussian_sample([[0.0, 0.0]], [0.1], [0.5], 4)


@torch.no_grad()
def test_velocity_nets_respect_their_manifold():
    x, t = _sphere_points(8).float(), torch.rand(8, generator=_g(10))
    v = M.VelocityMLP("sphere")(x, t)
    assert float((v * x).sum(1).abs().max()) < 1e-5                            # tangent at x
    net, a = M.VelocityMLP("torus"), M.uniform("torus", 8, _g(11))
    torch.testing.assert_close(net(a + 2 * math.pi, t), net(a, t), atol=1e-5, rtol=1e-5)   # a function on the torus
    assert float((M.VelocityMLP("angles")(a + 2 * math.pi, t) - M.VelocityMLP("angles")(a, t)).abs().max()) > 0


class _Field(torch.nn.Module):
    """A velocity field with a known flow: rotation about the z axis (sphere) or a constant drift (torus)."""

    def __init__(self, w):
        super().__init__()
        self.w = torch.nn.Parameter(torch.as_tensor(w, dtype=torch.float64))

    def forward(self, x, t):
        return torch.linalg.cross(self.w.expand_as(x), x, dim=-1) if x.shape[1] == 3 else self.w.expand_as(x)


def test_sample_rfm_follows_known_flows_and_stays_on_the_manifold():
    x0 = _sphere_points(100)
    x1 = M.sample_rfm(_Field([0.0, 0.0, 1.2]), "sphere", x0, steps=400)        # rotate by 1.2 rad about z
    c, s = math.cos(1.2), math.sin(1.2)
    want = x0 @ torch.tensor([[c, s, 0], [-s, c, 0], [0, 0, 1]], dtype=torch.float64)
    assert float((x1 - want).abs().max()) < 5e-3                               # Euler on S^2: O(h)
    assert float((x1.norm(dim=1) - 1).abs().max()) < 1e-12
    a0 = M.uniform("torus", 50, _g(12), torch.float64)
    torch.testing.assert_close(M.sample_rfm(_Field([5.0, -7.0]), "torus", a0, steps=10), M.wrap(a0 + torch.tensor([5.0, -7.0],
                               dtype=torch.float64)))


def test_losses_are_zero_for_the_exact_conditional_field_and_positive_otherwise():
    x1 = M.chapter_data("torus", 64, _g(13)).float()
    zero = _Field([0.0, 0.0]).float()
    assert float(M.rfm_loss(zero, "torus", x1, _g(14))) > 1.0                  # |log_{x0} x1|^2 > 0 on average
    assert float(M.naive_loss(zero, "torus", x1, _g(14))) > float(M.rfm_loss(zero, "torus", x1, _g(14)))   # no wrap: longer


def test_shipped_rfm_is_at_the_floor_and_beats_the_foil_on_the_torus():
    g, out = _g(15), {}
    for manifold in M.MANIFOLDS:
        ref, ref2 = M.chapter_data(manifold, 600, g), M.chapter_data(manifold, 600, g)
        x = M.sample_rfm(M.load_shipped(manifold), manifold, M.uniform(manifold, 600, g), steps=50)
        y = M.sample_naive(M.load_shipped(manifold, True), manifold, M.naive_source(manifold, 600, g, torch.float32), steps=50)
        M.check_on_manifold("x", x, manifold)
        out[manifold] = [M.geodesic_mmd(manifold, v, ref) for v in (x, y, ref2)] + [M.stray_share(manifold, v, n_ref=5000)
                                                                                  for v in (x, y)]
        assert out[manifold][0] < 1.75 * out[manifold][2], (manifold, out)       # RFM near the floor (600 points: noisy)
    mmd_rfm, mmd_naive, _, stray_rfm, stray_naive = out["torus"]
    assert mmd_naive > mmd_rfm and stray_naive > 1.5 * stray_rfm, out         # the seam costs the foil


def test_chart_density_is_flat_for_the_uniform_law_and_the_player_swaps_frames():
    import matplotlib
    matplotlib.use("Agg")
    from diffedu.viz.widgets import geometry as WG
    for manifold in M.MANIFOLDS:              # equal-area charts (Archimedes on S^2): the uniform law is flat
        h = WG.chart_density(M.uniform(manifold, 100000, _g(16)), manifold, bins=8)
        assert abs(float(h.mean()) - 1) < 1e-12 and float((h - 1).abs().max()) < 0.1, manifold
    xs = torch.stack([M.uniform("torus", 300, _g(17)), M.chapter_data("torus", 300, _g(18)).float()])
    box = WG.density_player({"a": xs}, "torus", frames=2)
    im = box.figure.axes[0].images[0]
    torch.testing.assert_close(torch.as_tensor(im.get_array()).double(), torch.as_tensor(box.cache["a"][1]).double())
    box.slider.value = 0
    torch.testing.assert_close(torch.as_tensor(im.get_array()).double(), torch.as_tensor(box.cache["a"][0]).double())
    with pytest.raises(ValueError, match="manifold"):
        WG.chart_density(xs[0], "plane")


def test_geometry_exercises_accept_the_answer_and_refuse_plausible_mistakes():
    from diffedu import exercises as ex
    from diffedu.exercises import geometry
    geometry._self_check()

    def lerp_normalise(x, y, t):             # right at t = 1/2 only: the cases include other t
        p = (1 - t[:, None]) * x + t[:, None] * y
        return p / p.norm(dim=1, keepdim=True)
    assert ex.check("sphere_geodesic", geometry.sphere_geodesic, verbose=False)
    assert not ex.check("sphere_geodesic", lerp_normalise, verbose=False)
    assert not ex.check("zero_mean_projection", lambda x: x - x.mean(dim=(1, 2), keepdim=True), verbose=False)
