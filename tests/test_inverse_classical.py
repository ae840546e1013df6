"""Classical solvers and plug-and-play: TV closed forms, TV denoising against scikit-image,
convergence of the primal-dual iterations, Tikhonov / Wiener against direct solves, and
every solver beating the measurement and the pseudo-inverse on a blurred, noisy
piecewise-constant image."""
import math

import numpy as np
import pytest
import torch

import diffedu.inverse as inv
from diffedu.metrics import psnr


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def phantom(n=32):
    """(1, 1, n, n) piecewise-constant test image in [-1, 1]: two rectangles and a disc."""
    x = torch.full((n, n), -0.8, dtype=torch.float64)
    x[6:20, 8:26] = 0.6
    x[14:28, 4:14] = -0.1
    yy, xx = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    x[(yy - 22) ** 2 + (xx - 22) ** 2 < 25] = 0.9
    return x[None, None]


# ----------------------------------------------------------------------------- TV

def test_grad_div_adjoint():
    g = _gen(0)
    x = torch.randn(2, 3, 5, 7, generator=g, dtype=torch.float64)
    p = torch.randn(2, 3, 5, 7, 2, generator=g, dtype=torch.float64)
    torch.testing.assert_close((inv.grad2d(x) * p).sum(), -(x * inv.div2d(p)).sum())


def test_tv_closed_forms():
    h = 0.7
    # a vertical step edge in an N x N image: one jump of h on each of the N rows
    N = 10
    step = torch.zeros(1, 1, N, N, dtype=torch.float64)
    step[..., 4:] = h
    assert inv.total_variation(step).item() == pytest.approx(N * h)
    # an s x s square of height h inside the image: perimeter 4 s times h, except the
    # bottom-right corner pixel where both forward differences jump, giving sqrt(2) h
    # instead of 2 h (the staircase of the isotropic discretisation)
    s = 4
    sq = torch.zeros(1, 1, 10, 10, dtype=torch.float64)
    sq[..., 3:3 + s, 3:3 + s] = h
    assert inv.total_variation(sq).item() == pytest.approx((4 * s - 2 + math.sqrt(2)) * h)
    # constants have no variation; TV sums over channels and is per image
    two = torch.cat([torch.cat([step, sq], 1), torch.full((1, 2, 10, 10), 0.3, dtype=torch.float64)])
    torch.testing.assert_close(inv.total_variation(two),
                               torch.tensor([N * h + (4 * s - 2 + math.sqrt(2)) * h, 0.0],
                                            dtype=torch.float64))


def test_tv_denoise_matches_skimage_and_reduces_tv():
    from skimage.restoration import denoise_tv_chambolle
    x = phantom()
    y = x + 0.2 * torch.randn(x.shape, generator=_gen(0), dtype=torch.float64)
    lam = 0.15
    xd = inv.tv_denoise(y, lam, iters=300)
    # skimage's weight is our lam: both minimise 1/2 ||x - y||^2 + lam TV(x)
    xs = torch.from_numpy(denoise_tv_chambolle(y[0, 0].numpy(), weight=lam, eps=1e-8,
                                               max_num_iter=3000))[None, None]
    E_ours, E_sk = inv.tv_objective(xd, y, None, lam=lam).item(), inv.tv_objective(xs, y, None, lam=lam).item()
    assert abs(E_ours - E_sk) <= 1e-4 * E_sk
    assert (xd - xs).abs().max() < 1e-2
    assert inv.total_variation(xd).item() < 0.5 * inv.total_variation(y).item()
    assert inv.tv_objective(xd, y, None, lam=lam).item() < inv.tv_objective(y, y, None, lam=lam).item()
    assert psnr(xd, x).item() > psnr(y, x).item() + 5


def test_tv_denoise_per_image_weights_and_zero_weight():
    y = torch.randn(2, 1, 8, 8, generator=_gen(1), dtype=torch.float64)
    both = inv.tv_denoise(y, torch.tensor([0.0, 0.3], dtype=torch.float64), iters=50)
    torch.testing.assert_close(both[:1], y[:1])                    # lam = 0: x = y
    torch.testing.assert_close(both[1:], inv.tv_denoise(y[1:], 0.3, iters=50))


def _objective_trace(y, op, lam, method, iters):
    trace = []
    inv.tv_reconstruct(y, op, lam=lam, iters=iters, method=method,
                       callback=lambda d: trace.append(inv.tv_objective(d["x"], y, op, lam=lam).item()))
    return trace


def test_tv_reconstruct_objective_decreases():
    x = phantom(16)
    op = inv.Blur(inv.gaussian_kernel(5, 1.0), 16, channels=1)
    y = op.measure(x, 0.05, _gen(0))
    lam = 0.02
    E0 = inv.tv_objective(op.A_adjoint(y), y, op, lam=lam).item()
    pd = _objective_trace(y, op, lam, "pdhg", 400)
    checkpoints = [pd[i] for i in (0, 10, 50, 150, 399)]
    assert all(a > b for a, b in zip(checkpoints, checkpoints[1:]))   # decreasing on the whole
    assert pd[-1] <= min(pd) + 1e-4 * abs(min(pd)) and pd[-1] < E0
    gd = _objective_trace(y, op, lam, "gd", 200)                     # smoothed TV: monotone
    assert all(b <= a + 1e-9 for a, b in zip(gd, gd[1:]))
    assert pd[-1] < gd[-1]                                            # PDHG gets further


def test_tv_reconstruct_with_identity_is_tv_denoise():
    y = phantom(16) + 0.2 * torch.randn(1, 1, 16, 16, generator=_gen(2), dtype=torch.float64)
    ident = inv.Inpainting(torch.ones(16, 16), channels=1)          # A = I
    a = inv.tv_reconstruct(y, ident, lam=0.1, iters=1500)
    b = inv.tv_denoise(y, 0.1, iters=300)
    assert abs(inv.tv_objective(a, y, None, lam=0.1).item() - inv.tv_objective(b, y, None, lam=0.1).item()) < 1e-3
    assert (a - b).abs().max() < 2e-2


# ----------------------------------------------------------------------------- linear solvers

def test_tikhonov_matches_direct_solve():
    H = torch.randn(5, 8, generator=_gen(0), dtype=torch.float64)
    y = torch.randn(3, 5, generator=_gen(1), dtype=torch.float64)
    lam = 0.3
    want = torch.linalg.solve(H.T @ H + lam * torch.eye(8, dtype=torch.float64), H.T @ y.T).T
    torch.testing.assert_close(inv.tikhonov(y, inv.Dense(H), lam=lam), want)          # SVD path
    turb = inv.Turbulence(8, channels=1)                                           # CG path
    yt = torch.randn(1, 1, 8, 8, generator=_gen(2), dtype=torch.float64)
    xt = inv.tikhonov(yt, turb, lam=lam)
    torch.testing.assert_close(turb.A_adjoint(turb.A(xt)) + lam * xt, turb.A_adjoint(yt))
    torch.testing.assert_close(inv.pseudo_inverse(y, inv.Dense(H)), y @ torch.linalg.pinv(H).T)


def test_wiener_is_tikhonov_for_flat_spectrum():
    op = inv.Blur(inv.motion_kernel(5, seed=0), 12, channels=2)
    y = torch.randn(2, 2, 12, 12, generator=_gen(0), dtype=torch.float64)
    torch.testing.assert_close(inv.wiener(y, op, noise_to_signal=0.05), inv.tikhonov(y, op, lam=0.05))
    torch.testing.assert_close(inv.wiener(y, op, noise_to_signal=torch.full((12, 12), 0.05)),
                               inv.tikhonov(y, op, lam=0.05))


@pytest.fixture(scope="module")
def deblur_problem():
    x = phantom(32)
    op = inv.Blur(inv.gaussian_kernel(7, 1.5), 32, channels=1)
    sigma_y = 0.03
    return x, op, op.measure(x, sigma_y, _gen(0)), sigma_y


def test_solvers_beat_measurement_and_pseudo_inverse(deblur_problem):
    x, op, y, sigma_y = deblur_problem
    score = {"measurement": psnr(y, x).item(),
             "pinv": psnr(inv.pseudo_inverse(y, op), x).item(),
             "tikhonov": psnr(inv.tikhonov(y, op, lam=1e-2), x).item(),
             "wiener": psnr(inv.wiener(y, op, noise_to_signal=1e-2), x).item(),
             "tv": psnr(inv.tv_reconstruct(y, op, lam=0.01, iters=300), x).item(),
             "pnp_tv": psnr(inv.pnp_hqs(y, op, inv.tv_denoiser(1.0), sigma_y=sigma_y), x).item()}
    # measured: measurement 18.7, pinv -55 (noise blown up), tikhonov 20.9, tv 25.6, pnp 25.3 dB
    assert score["pinv"] < score["measurement"]
    assert score["tikhonov"] > score["measurement"] + 1
    assert score["wiener"] == pytest.approx(score["tikhonov"])
    assert score["tv"] > score["tikhonov"] + 3
    assert score["pnp_tv"] > score["tikhonov"] + 3


def test_solvers_on_superresolution_and_inpainting():
    x = phantom(32)
    sr = inv.SuperResolution(2, 32, mode="bicubic", channels=1)
    y = sr.measure(x, 0.01, _gen(1))
    base = psnr(inv.pseudo_inverse(y, sr), x).item()
    assert psnr(inv.tv_reconstruct(y, sr, lam=0.005, iters=200), x).item() > base + 3
    assert psnr(inv.pnp_hqs(y, sr, inv.tv_denoiser(1.0), sigma_y=0.01), x).item() > base + 3
    ip = inv.Inpainting(inv.random_mask(32, 0.5, seed=0), channels=1)
    y = ip.measure(x, 0.01, _gen(2))
    base = psnr(inv.pseudo_inverse(y, ip), x).item()
    assert psnr(inv.tv_reconstruct(y, ip, lam=0.01, iters=200), x).item() > base + 8
    assert psnr(inv.pnp_hqs(y, ip, inv.tv_denoiser(1.0), sigma_y=0.01, iters=20), x).item() > base + 8


# ----------------------------------------------------------------------------- plug-and-play

def test_dpir_schedule():
    s = inv.dpir_sigmas(0.02, iters=8)
    assert s.shape == (8,) and s[0].item() == pytest.approx(2 * 49 / 255) and s[-1].item() == pytest.approx(0.02)
    assert np.allclose(np.diff(np.log(s.numpy())), math.log(0.02 / (2 * 49 / 255)) / 7)
    assert inv.dpir_sigmas(0.0)[-1].item() == pytest.approx(2 * 0.255 / 255)   # floor, as DPIR


def test_pnp_hqs_steps_follow_the_equations():
    """With the identity 'denoiser', each step is x_k = (A^T A + mu_k)^{-1}(A^T y + mu_k z)."""
    op = inv.Blur(inv.gaussian_kernel(3, 1.0), 8, channels=1)
    y = torch.randn(1, 1, 8, 8, generator=_gen(0), dtype=torch.float64)
    steps = []
    out = inv.pnp_hqs(y, op, lambda x, sigma: x, sigmas=[0.5, 0.1], lam=0.5, sigma_y=0.05,
                      callback=steps.append)
    z = op.A_adjoint(y)
    for d, sigma in zip(steps, [0.5, 0.1]):
        mu = 0.5 * 0.05**2 / sigma**2
        assert d["mu"] == pytest.approx(mu)
        z = torch.linalg.solve(_dense(op) + mu * torch.eye(64, dtype=torch.float64),
                               (op.A_adjoint(y) + mu * z).flatten()).view(1, 1, 8, 8)
        torch.testing.assert_close(d["x"], z)
    torch.testing.assert_close(out, z)


def _dense(op):
    """A^T A as a dense matrix, built column by column."""
    n = math.prod(op.in_shape)
    E = torch.eye(n, dtype=torch.float64).view((n,) + op.in_shape)
    return op.A_adjoint(op.A(E)).reshape(n, n).T


def test_bad_solver_inputs():
    op = inv.Blur(inv.gaussian_kernel(3, 1.0), 8, channels=1)
    y = torch.zeros(1, 1, 8, 8)
    with pytest.raises(ValueError, match="lam must be"):
        inv.tikhonov(y, op, lam=0.0)
    with pytest.raises(ValueError, match="unknown method 'admm'"):
        inv.tv_reconstruct(y, op, lam=0.1, method="admm")
    with pytest.raises(TypeError, match="operator must be a diffedu.inverse.Blur"):
        inv.wiener(y, inv.Inpainting(torch.ones(8, 8), channels=1), noise_to_signal=0.1)
    with pytest.raises(ValueError, match="noise_to_signal"):
        inv.wiener(y, op, noise_to_signal=-1.0)
    with pytest.raises(ValueError, match=r"y must have shape \(B, 1, 8, 8\)"):
        inv.tv_reconstruct(torch.zeros(1, 1, 4, 4), op, lam=0.1)
    with pytest.raises(TypeError, match="linear"):
        inv.tikhonov(y, inv.PhaseRetrieval(), lam=0.1)
    with pytest.raises(ValueError, match="lam must be"):
        inv.tv_denoise(y, -1.0)
    with pytest.raises(ValueError, match="sigma_y must be"):
        inv.pnp_hqs(y, op, inv.tv_denoiser(), sigma_y=-0.1)
    with pytest.raises(TypeError, match="denoiser must be"):
        inv.pnp_hqs(y, op, None, sigma_y=0.1)
    with pytest.raises(ValueError, match="sigmas must be"):
        inv.pnp_hqs(y, op, inv.tv_denoiser(), sigmas=[0.1, -0.1], sigma_y=0.1)
    with pytest.raises(TypeError, match="operator must be a diffedu.inverse Operator"):
        inv.tikhonov(y, torch.eye(64), lam=0.1)
    with pytest.raises(TypeError, match="pnp_hqs needs a linear operator"):
        inv.pnp_hqs(y, inv.PhaseRetrieval(), inv.tv_denoiser(), sigma_y=0.1)
    with pytest.raises(ValueError, match="lam must be a finite number"):
        inv.tv_reconstruct(y, op, lam=float("nan"))
    with pytest.raises(ValueError, match="lam must be"):
        inv.tv_reconstruct(y, op, lam=torch.tensor([0.1, float("nan")]))
    with pytest.raises(ValueError, match="sigmas must be"):
        inv.pnp_hqs(y, op, inv.tv_denoiser(), sigmas=[0.1, float("inf")], sigma_y=0.1)


@pytest.mark.parametrize("call", [
    lambda y, op: inv.tikhonov(y, op, 0.1),
    lambda y, op: inv.wiener(y, op, 0.1),
    lambda y, op: inv.tv_reconstruct(y, op, 0.1),
    lambda y, op: inv.tv_objective(y, y, op, 0.1),
    lambda y, op: inv.tv_denoise(y, 0.1, 10),
    lambda y, op: inv.pnp_hqs(y, op, inv.tv_denoiser(), [0.5], 0.2, sigma_y=0.1),
], ids=["tikhonov", "wiener", "tv_reconstruct", "tv_objective", "tv_denoise", "pnp_hqs"])
def test_hyperparameters_are_keyword_only(call):
    """solver(y, operator[, denoiser], *, hyperparameters): a positional one is refused."""
    op = inv.Blur(inv.gaussian_kernel(3, 1.0), 8, channels=1)
    with pytest.raises(TypeError, match="positional argument"):
        call(torch.zeros(1, 1, 8, 8), op)


def test_the_operator_argument_is_called_operator():
    op = inv.Blur(inv.gaussian_kernel(3, 1.0), 8, channels=1)
    y = torch.randn(1, 1, 8, 8, generator=_gen(0), dtype=torch.float64)
    torch.testing.assert_close(inv.tikhonov(y=y, operator=op, lam=0.1), inv.tikhonov(y, op, lam=0.1))
    torch.testing.assert_close(inv.pseudo_inverse(y=y, operator=op), op.A_dagger(y))
    torch.testing.assert_close(inv.wiener(y=y, operator=op, noise_to_signal=0.1), inv.tikhonov(y, op, lam=0.1))
    torch.testing.assert_close(inv.tv_objective(y, y, operator=op, lam=0.0), 0.5 * (op.A(y) - y).pow(2).sum()[None])
    torch.testing.assert_close(inv.tv_reconstruct(y=y, operator=op, lam=0.1, iters=5),
                               inv.tv_reconstruct(y, op, lam=0.1, iters=5))
    torch.testing.assert_close(inv.pnp_hqs(y=y, operator=op, denoiser=lambda x, s: x, sigma_y=0.1, iters=2),
                               inv.pnp_hqs(y, op, lambda x, s: x, sigma_y=0.1, iters=2))
