"""Exercises of chapters 07-08: inverse problems, classical regularisation and plug-and-play.

Each one asks for a prediction or a derivation that the chapter does not print: the student
writes a closed form, the checker grades it on fixed inputs, and `_self_check` (run by the
tests) checks every reference against what the package computes.

Notation: y = A x + sigma_y n; images (B, C, H, W); SVD A = U diag(s) V^T with s: (n,) (zeros
for the null space) and x_coef = V^T x: (B, n); HQS weight mu; diffusion
x_t = sqrt(ab) x0 + sqrt(1 - ab) eps.
"""
from __future__ import annotations

import math

import torch

from . import Exercise


def _rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _mask(*shape, seed=0):
    return (torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) > 0.4).double()


def _f64(v):
    return torch.as_tensor(v, dtype=torch.float64)


# -- reference solutions (kept short: they are what `solution` prints) --------------------
# chapter 07
def pinv_expected_mse(x_coef, s, sigma_y, rcond):
    """E ||A^+ y - x||^2 / n for y = A x + sigma_y n, from the SVD alone. x_coef = V^T x: (B, n);
    s: (n,); A^+ inverts the s_i > rcond * max(s) and drops the rest. Returns (B,)."""
    kept = s > rcond * s.max()
    dropped = (x_coef**2 * ~kept).sum(-1)               # bias: the coefficients v_i^T x that A^+ cannot see
    noise = sigma_y**2 * (1 / s[kept] ** 2).sum()        # variance: u_i^T n ~ N(0, sigma_y^2), divided by s_i
    return (dropped + noise) / s.numel()


def tikhonov_cutoff(lam, level):
    """The singular value s at which Tikhonov's filter factor s^2 / (s^2 + lam) equals `level`
    (level = 1/2: s = sqrt(lam); components with smaller s are mostly suppressed)."""
    return _f64(math.sqrt(lam * level / (1 - level)))


def tikhonov_inpainting_lam(x, mask, sigma_y):
    """The lam minimising E ||x_lam - x||^2 for Tikhonov on inpainting, x_lam = mask * y / (1 + lam),
    y = mask * (x + sigma_y n): lam* = sigma_y^2 / (mean of x^2 over the observed pixels). x: (B, C, H, W); (B,).
    For sigma_y = 0.02, lam* ~ 1e-3: it trims the observed pixels' small noise error (by a factor ~ 1 - lam*),
    while the error is the missing pixels' x^2, which no lam changes: Tikhonov = A^+ to within 0.1 dB."""
    observed = (mask * torch.ones_like(x)).flatten(1)
    return sigma_y**2 * observed.sum(1) / (mask * x**2).flatten(1).sum(1)


def tv_step_jump(h, m, lam):
    """The jump left by 1D ROF denoising, argmin 1/2 ||u - f||^2 + lam TV(u), of a clean step f of
    height h with m pixels on each side: each plateau moves lam / m towards the other."""
    return _f64(max(h - 2 * lam / m, 0.0))


# chapter 08
def hqs_data_step_inpainting(z, y, mask, mu):
    """argmin_x ||y - mask * x||^2 + mu ||x - z||^2, pixel by pixel."""
    return (mask * y + mu * z) / (mask + mu)


def pnp_hole_value(z0, mean, var, sigmas):
    """The value left in a hole pixel (mask = 0) after PnP-HQS with the per-pixel Gaussian denoiser
    D(x, sigma) = mean + var / (var + sigma^2) (x - mean), started at z0 (any shape); sigmas: (K,).
    y never enters: no information reaches the hole, which only decays towards the prior mean."""
    shrink = torch.prod(var / (var + sigmas**2))        # in the hole the data step returns z unchanged
    return mean + (z0 - mean) * shrink


def sds_gradient_gaussian(x, m, C, alpha_bar, lam):
    """E_eps of the score-distillation gradient 2 lam sqrt(ab) (eps_hat - eps) for a N(m, C) prior
    and its exact eps_hat. x: (B, D); m: (D,); C: (D, D). Returns (B, D)."""
    S_t = alpha_bar * C + (1 - alpha_bar) * torch.eye(len(m), dtype=C.dtype)     # Cov(x_t)
    return 2 * lam * alpha_bar * (1 - alpha_bar) ** 0.5 * torch.linalg.solve(S_t, (x - m).T).T


def _pinv_cases():
    cases = []
    for k, (sigma_y, rcond) in enumerate(((0.0, 1e-6), (0.02, 1e-6), (0.1, 0.2))):
        s = torch.rand(12, generator=torch.Generator().manual_seed(k), dtype=torch.float64) + 0.01
        s[8:] = 0.0                                                        # a null space of dimension 4
        cases.append({"x_coef": _rand(3, 12, seed=k), "s": s, "sigma_y": sigma_y, "rcond": rcond})
    return cases


def _spd(d, seed):
    a = _rand(d, d, seed=seed)
    return a @ a.T / d + 0.1 * torch.eye(d, dtype=torch.float64)


EXERCISES = [
    Exercise("pinv_expected_mse", "07",
             "predict E ||A^+ y - x||^2 / n from the SVD: the coefficients A^+ drops plus the noise it inverts",
             pinv_expected_mse, _pinv_cases,
             "In the V basis the error of A^+ y is, coordinate by coordinate, -v_i^T x where s_i counts as zero "
             "and sigma_y (u_i^T n) / s_i where it is inverted; u_i^T n ~ N(0, 1). Square, take expectations, sum, "
             "divide by n = len(s)."),
    Exercise("tikhonov_cutoff", "07",
             "the singular value at which Tikhonov's filter factor s^2 / (s^2 + lam) equals a level (1/2: the cut-off)",
             tikhonov_cutoff,
             lambda: [{"lam": lam, "level": lv} for lam, lv in ((1e-4, 0.5), (1e-2, 0.5), (1.0, 0.1), (0.3, 0.9))],
             "Solve s^2 / (s^2 + lam) = level for s > 0."),
    Exercise("tikhonov_inpainting_lam", "07",
             "derive the best Tikhonov weight for inpainting (B,) from the images, the mask and sigma_y",
             tikhonov_inpainting_lam,
             lambda: [{"x": _rand(2, 1, 5, 5, seed=k), "mask": _mask(5, 5, seed=k), "sigma_y": sy}
                      for k, sy in enumerate((0.02, 0.1, 0.5))],
             "Missing pixels come out 0 whatever lam is. On an observed pixel x_lam = (x + sigma_y n) / (1 + lam): "
             "write its expected squared error (bias^2 + variance), sum over observed pixels, set d/dlam = 0."),
    Exercise("tv_step_jump", "07",
             "predict the jump that 1D TV denoising (ROF) leaves of a clean step of height h, m pixels a side",
             tv_step_jump,
             lambda: [{"h": h, "m": m, "lam": lam} for h, m, lam in ((1.0, 32, 0.3), (2.0, 8, 1.0), (0.5, 4, 2.0))],
             "Guess the solution is still a step, a on the left and b on the right. Minimise "
             "m/2 (a - 0)^2 + m/2 (b - h)^2 + lam (b - a) over a, b; what if the result has b < a?"),
    Exercise("hqs_data_step_inpainting", "08", "derive the HQS data step for inpainting (closed form, per pixel)",
             hqs_data_step_inpainting,
             lambda: [{"z": _rand(2, 1, 5, 5, seed=k), "y": _mask(1, 1, 5, 5, seed=k) * _rand(2, 1, 5, 5, seed=5 + k),
                       "mask": _mask(1, 1, 5, 5, seed=k), "mu": mu} for k, mu in enumerate((1e-3, 0.5, 4.0))],
             "Set the gradient to zero: (A^T A + mu I) x = A^T y + mu z, and A^T A = diag(mask)."),
    Exercise("pnp_hole_value", "08",
             "predict what PnP-HQS leaves in a hole when the denoiser is a per-pixel Gaussian shrinkage",
             pnp_hole_value,
             lambda: [{"z0": _rand(3, 4, seed=k), "mean": mean, "var": var,
                       "sigmas": torch.logspace(-0.4, -1.7, n, dtype=torch.float64)}
                      for k, (mean, var, n) in enumerate(((0.0, 0.25, 8), (-0.5, 0.1, 24), (0.3, 1.0, 3)))],
             "Where mask = 0 the data step's formula (see hqs_data_step_inpainting) no longer contains y. "
             "Then each prior step multiplies the distance to the mean by var / (var + sigma_k^2)."),
    Exercise("sds_gradient_gaussian", "08",
             "derive the expected score-distillation gradient for a Gaussian prior N(m, C)",
             sds_gradient_gaussian,
             lambda: [{"x": _rand(4, 3, seed=k), "m": _rand(3, seed=10 + k), "C": _spd(3, 20 + k), "alpha_bar": ab,
                       "lam": lam} for k, (ab, lam) in enumerate(((0.9, 1.0), (0.3, 0.5), (0.02, 4.0)))],
             "x_t = sqrt(ab) x + sqrt(1 - ab) eps ~ N(sqrt(ab) m, S_t) with S_t = ab C + (1 - ab) I, and the exact "
             "eps_hat(x_t) = sqrt(1 - ab) S_t^{-1} (x_t - sqrt(ab) m) is affine in eps: its mean is its value at eps = 0."),
]


def _self_check():
    """The references agree with the package (run by the tests)."""
    from ..exact import GaussianMixture
    from ..inverse import Blur, Inpainting, SuperResolution, pnp_hqs, tikhonov, tv_denoise
    g = torch.Generator().manual_seed(0)
    # pinv_expected_mse = bias ||A^+ A x - x||^2 + sigma_y^2 ||A^+||_F^2, exactly, on three small operators
    x = _rand(2, 1, 8, 8, seed=1)
    for op in (SuperResolution(2, 8, "avgpool", channels=1), Blur(torch.rand(3, 3, generator=g, dtype=torch.float64), 8,
               channels=1), Inpainting(_mask(8, 8, seed=2), channels=1)):
        basis = torch.eye(op._m, dtype=torch.float64).view(op._m, *op.out_shape)
        frob2 = op.A_dagger(basis).pow(2).sum()
        want = ((op.A_dagger(op.A(x)) - x).pow(2).flatten(1).sum(1) + 0.1**2 * frob2) / op._n
        torch.testing.assert_close(pinv_expected_mse(op.V_T(x), op.singular_values(), 0.1, op.rcond), want)
    # Tikhonov's filter factors, measured from the package, cross `level` at tikhonov_cutoff
    op = Blur(torch.rand(3, 3, generator=g, dtype=torch.float64), 8, channels=1)
    s, ones = op.singular_values(), torch.ones(1, 64, dtype=torch.float64)
    phi = op.V_T(tikhonov(op.A(op.V(ones)), op, lam=0.01))[0]
    torch.testing.assert_close(phi, s**2 / (s**2 + 0.01))
    for level in (0.5, 0.1, 0.9):
        assert bool(((phi > level) == (s > tikhonov_cutoff(0.01, level))).all())
    # tikhonov_inpainting_lam minimises the package's expected error (bias from tikhonov(A x), variance from the mask)
    inp, sy = Inpainting(_mask(8, 8, seed=3), channels=1), 0.3
    err = lambda lam: ((tikhonov(inp.A(x), inp, lam=lam) - x).pow(2).flatten(1).sum(1)
                       + sy**2 * tikhonov(inp.mask[None].expand_as(x), inp, lam=lam).pow(2).flatten(1).sum(1))
    lam = tikhonov_inpainting_lam(x, inp.mask, sy)
    for b in range(len(x)):
        assert all(err(float(lam[b]))[b] < err(float(lam[b]) * f)[b] for f in (0.9, 1.1))
    # tv_step_jump is what the package's ROF solver leaves of a clean step (1 x 2m image)
    for h, m, lam_tv in ((1.0, 16, 2.0), (1.0, 8, 6.0)):
        f = torch.cat([torch.zeros(m), h * torch.ones(m)]).double().view(1, 1, 1, 2 * m)
        u = tv_denoise(f, lam_tv, iters=3000)[0, 0, 0]
        assert abs((u[m] - u[m - 1]).item() - float(tv_step_jump(h, m, lam_tv))) < 1e-3
    # the inpainting data step is the package's normal-equations solve
    z, yb = _rand(1, 1, 8, 8, seed=6), _rand(1, 1, 8, 8, seed=4)
    inp = Inpainting(_mask(8, 8, seed=7), channels=1)
    torch.testing.assert_close(hqs_data_step_inpainting(z, inp.A(yb), inp.mask, 0.3),
                               inp.solve_normal(inp.A_adjoint(inp.A(yb)) + 0.3 * z, 0.3))
    # pnp_hole_value: run pnp_hqs with the per-pixel Gaussian denoiser and read the hole
    sig = torch.logspace(-0.4, -1.7, 8, dtype=torch.float64)
    den = lambda v, sigma: 0.2 + 0.3 / (0.3 + sigma**2) * (v - 0.2)
    got = pnp_hqs(inp.A(yb), inp, den, sigmas=sig, lam=0.23, sigma_y=0.02, x_init=z)
    hole = inp.mask[0] == 0
    torch.testing.assert_close(got[0, 0][hole], pnp_hole_value(z[0, 0][hole], 0.2, 0.3, sig))
    # sds_gradient_gaussian: 2 lam sqrt(ab) eps_hat at eps = 0 with the exact GMM denoiser (eps_hat is affine in eps)
    m, C, ab, lam = _rand(3, seed=8), _spd(3, 9), 0.4, 1.5
    xs = _rand(5, 3, seed=10)
    xt = ab**0.5 * xs
    eps_hat = (xt - ab**0.5 * GaussianMixture([1.0], m[None], C[None]).denoiser(xt, ab)) / (1 - ab) ** 0.5
    torch.testing.assert_close(sds_gradient_gaussian(xs, m, C, ab, lam), 2 * lam * ab**0.5 * eps_hat)
