"""E(n)-equivariant diffusion on point clouds (diffedu.domains.equivariant): the subspace projection in
closed form, the EGNN's equivariance (and the MLP's lack of it, so the check can fail), the polygon data
against the exact N-gon, the distance statistics against scipy, and the subspace sampler against the exact
posterior mean of a Gaussian in the subspace."""
import math

import pytest
import torch

import diffedu as dd
from diffedu.domains import equivariant as E


def _g(seed=0):
    return torch.Generator().manual_seed(seed)


def test_remove_mean_is_the_orthogonal_projection_onto_the_subspace():
    N, n = 5, 3
    basis = torch.eye(N * n, dtype=torch.float64).reshape(N * n, N, n)
    P = E.remove_mean(basis).reshape(N * n, N * n)
    want = torch.kron(torch.eye(N, dtype=torch.float64) - 1.0 / N, torch.eye(n, dtype=torch.float64))
    torch.testing.assert_close(P, want)
    torch.testing.assert_close(P @ P, P)                                    # idempotent and symmetric
    torch.testing.assert_close(P, P.T)
    z = E.zero_mean_noise((40000, N, n), _g(1), torch.float64).reshape(40000, -1)
    torch.testing.assert_close(z.T @ z / 40000, want, atol=0.03, rtol=0)    # covariance P: (N - 1) n dimensions
    assert float(z.reshape(-1, N, n).mean(1).abs().max()) < 1e-12


def test_random_rotations_are_orthogonal_with_the_right_determinant():
    R = E.random_rotation(6, 3, _g(2))
    torch.testing.assert_close(R @ R.transpose(1, 2), torch.eye(3, dtype=torch.float64).expand(6, 3, 3))
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(6, dtype=torch.float64))
    dets = torch.linalg.det(E.random_rotation(6, 2, _g(3), reflect=True))
    assert sorted(dets.round().tolist()) == [-1.0] * 3 + [1.0] * 3


def test_polygons_match_the_exact_n_gon_in_any_pose():
    x = E.polygon_clouds(20, 6, 3, radius=1.3, jitter=0.0, generator=_g(4), dtype=torch.float64)
    assert float(x.mean(1).abs().max()) < 1e-12
    assert E.shape_error(x, radius=1.3) < 1e-12
    d = E.pairwise_distances(x)
    brute = torch.stack([torch.pdist(c) for c in x]).sort(dim=1).values
    torch.testing.assert_close(d, brute)
    torch.testing.assert_close(E.polygon_distances(6, 1.3)[[0, 6, 12]], torch.tensor([1.3, 1.3 * math.sqrt(3), 2.6],
                                                                                     dtype=torch.float64))
    assert E.shape_error(E.polygon_clouds(20, 6, jitter=0.05, generator=_g(5))) > 0.02


def test_distance_w1_against_scipy():
    scipy_stats = pytest.importorskip("scipy.stats")
    x, y = E.polygon_clouds(300, generator=_g(6)), E.polygon_clouds(200, jitter=0.2, generator=_g(7))
    ref = scipy_stats.wasserstein_distance(E.pairwise_distances(x).reshape(-1).numpy(),
                                           E.pairwise_distances(y).reshape(-1).numpy())
    assert abs(E.distance_w1(x, y) - ref) < 2e-3 * max(ref, 1e-3) + 1e-4


@pytest.mark.parametrize("dim", [2, 3])
def test_egnn_is_e_n_and_permutation_equivariant_and_the_mlp_is_not(dim):
    torch.manual_seed(0)
    net = E.EGNN(hidden=16, layers=2).double()
    x = E.polygon_clouds(4, 5, dim, generator=_g(8), dtype=torch.float64) + 0.3
    t = torch.tensor([0, 10, 500, 999])
    assert E.equivariance_error(net, x, t, _g(9)) < 1e-12                 # rotations, reflections, translations
    perm = torch.tensor([3, 0, 4, 1, 2])
    torch.testing.assert_close(net(x[:, perm], t), net(x, t)[:, perm])
    out = net(x, t)
    assert float(out.mean(1).abs().max()) < 1e-12 and float(out.abs().max()) > 1e-3
    mlp = E.PointMLP(5, dim, hidden=16).double()
    assert E.equivariance_error(mlp, x, t, _g(9)) > 1e-3                   # the check can fail


def test_mlp_foil_has_the_egnn_parameter_count():
    n_egnn = sum(p.numel() for p in E.EGNN().parameters())
    n_mlp = sum(p.numel() for p in E.PointMLP(6, 2, E.mlp_hidden_for(n_egnn, 6, 2)).parameters())
    assert abs(n_mlp - n_egnn) / n_egnn < 0.01


def test_edm_loss_of_the_zero_predictor_is_the_subspace_dimension():
    zero = lambda x, t: torch.zeros_like(x)                               # noqa: E731
    x0 = E.polygon_clouds(4000, 6, 2, generator=_g(10), dtype=torch.float64)
    loss = E.edm_loss(zero, x0, dd.linear_schedule(1000), _g(11))
    assert abs(float(loss) - 5 / 6) < 0.02                                 # E|P z|^2 / (N n) = (N - 1) / N


def test_subspace_sampler_samples_a_gaussian_in_the_subspace_exactly():
    """Data x0 ~ N(0, s^2 P): the exact denoiser is E[x0 | x_t] = sqrt(ab) s^2 / (ab s^2 + 1 - ab) x_t. With all
    T steps DDPM's "small" variance is near exact (respaced to few steps it under-disperses: that is DDPM's, not P's)."""
    s, sch = 0.5, dd.linear_schedule(1000)

    def exact(xt, t):
        ab = sch.alpha_bar_of(t, like=xt)
        return ab.sqrt() * s ** 2 / (ab * s ** 2 + 1 - ab) * E.remove_mean(xt)
    xT = E.zero_mean_noise((1500, 4, 2), _g(12), torch.float64)
    x, xs, _ = E.sample_edm(dd.as_denoiser(exact, sch), xT, sch, generator=_g(13), return_trajectory=True)
    assert float(xs.mean(2).abs().max()) < 1e-12                           # every step stays centred
    var = x.reshape(len(x), -1).var(0)
    torch.testing.assert_close(var, torch.full_like(var, s ** 2 * 3 / 4), atol=0.025, rtol=0)   # s^2 (N - 1) / N
    assert abs(float(var.mean()) / (s ** 2 * 3 / 4) - 1) < 0.03
    _, drift, _ = dd.ddpm(dd.as_denoiser(exact, sch), xT[:50], sch, steps=50, generator=_g(13), return_trajectory=True)
    assert float(drift.mean(2).abs().max()) > 1e-3                         # full-space noise moves the centre


def test_bad_clouds_get_clear_errors():
    with pytest.raises(ValueError, match=r"\(B, N, n\)"):
        E.check_clouds("x", torch.zeros(3, 1, 2))
    with pytest.raises(ValueError, match="centred"):
        E.sample_edm(lambda x, t: x, torch.ones(2, 3, 2), dd.linear_schedule(10))
    with pytest.raises(ValueError, match="n_nodes"):
        E.polygon_clouds(3, n_nodes=2)
    with pytest.raises(ValueError, match=r"\(B, 6, 2\)"):
        E.PointMLP(6, 2)(torch.zeros(1, 5, 2), torch.zeros(1, dtype=torch.long))


def test_shipped_egnn_beats_the_mlp_on_distance_statistics():
    g, sch = _g(14), dd.linear_schedule(1000)
    ref = E.polygon_clouds(300, generator=g)
    err = {}
    for kind in ("egnn", "mlp"):
        x = E.sample_edm(dd.to_denoiser(E.load_shipped(kind), sch), E.zero_mean_noise((300, 6, 2), g), sch, 50, g)
        err[kind] = E.distance_w1(x, ref)
    assert err["egnn"] < err["mlp"], err


def test_polygon_player_moves_points_to_the_chosen_step():
    import matplotlib
    matplotlib.use("Agg")
    from diffedu.viz.widgets import geometry as WG
    xs = torch.randn(5, 3, 6, 2, generator=_g(15))
    box = WG.polygon_player({"a": xs, "b": 2 * xs}, clouds=2)
    box.slider.value = 2
    torch.testing.assert_close(torch.as_tensor(box.figure.axes[3].collections[0].get_offsets()).float(), 2 * xs[2, 1])
    with pytest.raises(ValueError, match="same number of steps"):
        WG.polygon_player({"a": xs, "b": xs[:3]}, clouds=2)
