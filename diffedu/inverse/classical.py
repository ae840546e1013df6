"""Classical (learning-free) solvers for y = A x + sigma_y n, each called
`solver(y, operator, *, hyperparameters)`.

Scope: the baselines that the diffusion solvers are compared with: the pseudo-inverse,
Tikhonov / Wiener filtering, and total-variation (TV) regularisation, solved by the
Chambolle-Pock primal-dual algorithm (or plain gradient descent on a smoothed TV, for
teaching). Images are (B, C, H, W); TV acts on each channel separately.

Notation
    grad x : (B, C, H, W, 2) forward differences (d/dy, d/dx), zero across the last row /
             column (Neumann boundary); div = -grad^T
    TV(x)  = sum_pixels sqrt((d_y x)^2 + (d_x x)^2)           isotropic, per channel, summed
    objective  E(x) = 1/2 ||A x - y||^2 + lam TV(x)
"""
from __future__ import annotations

import math

import torch

from .._validate import check_choice, check_nonneg, check_operator, check_positive_int, check_real, check_tensor
from .operators import Blur, LinearOperator

__all__ = ["pseudo_inverse", "tikhonov", "wiener", "grad2d", "div2d", "total_variation",
           "tv_objective", "tv_denoise", "tv_reconstruct"]


def _measurement(y, operator, who):
    """Check that `operator` is a LinearOperator and y: (B, *out_shape); return y."""
    check_operator(operator, linear=True, who=who)
    return check_tensor("y", operator._check_y(y), nonempty=True)


def _lam_per_sample(lam, B, like):
    """lam: a number >= 0 or a (B,) tensor -> (B, 1, 1, 1, 1) tensor for the dual projection."""
    if isinstance(lam, torch.Tensor) and lam.numel() > 1:
        if lam.shape != (B,) or not bool(torch.isfinite(lam).all()) or bool((lam < 0).any()):
            raise ValueError(f"lam must be a number >= 0 or a (B,) = ({B},) tensor of finite "
                             f"numbers >= 0, got shape {tuple(lam.shape)}")
        return lam.to(like).view(B, 1, 1, 1, 1)
    lam = check_nonneg("lam", lam)
    return torch.full((B, 1, 1, 1, 1), lam, dtype=like.dtype, device=like.device)


# ----------------------------------------------------------------------------- linear solvers

def pseudo_inverse(y: torch.Tensor, operator: LinearOperator) -> torch.Tensor:
    """x = A^+ y, the minimum-norm least-squares solution. y: (B, *out_shape) -> (B, *in_shape).
    With noise it amplifies n along the small singular values: the baseline to beat."""
    y = _measurement(y, operator, "pseudo_inverse")
    return operator.A_dagger(y)


def tikhonov(y: torch.Tensor, operator: LinearOperator, *, lam: float, iters: int = 200) -> torch.Tensor:
    """x = argmin 1/2 ||A x - y||^2 + lam/2 ||x||^2 = (A^T A + lam I)^{-1} A^T y.
    y: (B, *out_shape) -> (B, *in_shape).

    Solved in closed form where the operator diagonalises (Fourier division for `Blur`, i.e.
    Wiener filtering with a flat noise-to-signal ratio lam; the SVD filter s / (s^2 + lam)
    for SVD operators), else by `iters` conjugate-gradient steps.
    """
    y = _measurement(y, operator, "tikhonov")
    lam = check_real("lam", lam, lo=0, lo_open=True)
    check_positive_int("iters", iters)
    return operator.solve_normal(operator._A_adjoint(y), lam, iters=iters)


def wiener(y: torch.Tensor, operator: Blur, *, noise_to_signal) -> torch.Tensor:
    """Wiener deconvolution  X = conj(K) Y / (|K|^2 + NSR)  in the Fourier domain.
    y: (B, C, H, W) -> (B, C, H, W).

    noise_to_signal: the ratio of noise to signal power spectra, a number > 0 (then this is
    `tikhonov(y, operator, lam=noise_to_signal)`) or an (H, W) tensor > 0 in `torch.fft.fft2`
    frequency layout (e.g. sigma_y^2 / |X_prior(f)|^2).
    """
    check_operator(operator, linear=True, who="wiener")
    if not isinstance(operator, Blur):
        raise TypeError(f"operator must be a diffedu.inverse.Blur for wiener (it divides by the "
                        f"blur's Fourier multiplier), got {type(operator).__name__}; use tikhonov")
    y = check_tensor("y", operator._check_y(y), nonempty=True)
    K = operator.fourier_multiplier
    if isinstance(noise_to_signal, torch.Tensor) and noise_to_signal.numel() > 1:
        if noise_to_signal.shape != K.shape or bool((noise_to_signal <= 0).any()):
            raise ValueError(f"noise_to_signal must be a number > 0 or an {tuple(K.shape)} tensor "
                             f"of positive values, got shape {tuple(noise_to_signal.shape)}")
        nsr = noise_to_signal.double().cpu()
    else:
        nsr = check_real("noise_to_signal", noise_to_signal, lo=0, lo_open=True)
    return operator._mult(y, K.conj() / (K.abs() ** 2 + nsr))


# ----------------------------------------------------------------------------- total variation

def grad2d(x: torch.Tensor) -> torch.Tensor:
    """Forward differences with Neumann boundary. x: (B, C, H, W) -> (B, C, H, W, 2) holding
    (x[i+1, j] - x[i, j], x[i, j+1] - x[i, j]), zero on the last row / column."""
    check_tensor("x", x, ndim=4)
    g = x.new_zeros(x.shape + (2,))
    g[..., :-1, :, 0] = x[..., 1:, :] - x[..., :-1, :]
    g[..., :, :-1, 1] = x[..., :, 1:] - x[..., :, :-1]
    return g


def div2d(p: torch.Tensor) -> torch.Tensor:
    """Discrete divergence, the negative adjoint of `grad2d`: <grad x, p> = -<x, div p>.
    p: (B, C, H, W, 2) -> (B, C, H, W)."""
    check_tensor("p", p, ndim=5)
    if p.shape[-1] != 2:
        raise ValueError(f"p must have shape (B, C, H, W, 2), got {tuple(p.shape)}")
    py, px = p[..., 0].clone(), p[..., 1].clone()
    py[..., -1, :] = 0
    px[..., :, -1] = 0
    d = py + px
    d[..., 1:, :] -= py[..., :-1, :]
    d[..., :, 1:] -= px[..., :, :-1]
    return d


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Isotropic TV per image: sum over channels and pixels of |grad x|. x: (B, C, H, W) -> (B,).
    For a piecewise-constant image it is the jump height times the length of the jumps
    (with the staircase metric of the pixel grid; see the tests' worked examples)."""
    check_tensor("x", x, ndim=4)
    return grad2d(x).norm(dim=-1).flatten(1).sum(1)


def tv_objective(x: torch.Tensor, y: torch.Tensor, operator: LinearOperator | None, *, lam) -> torch.Tensor:
    """E(x) = 1/2 ||A x - y||^2 + lam TV(x) per image (B,); operator=None means A = I.
    x: (B, C, H, W); y: (B, *out_shape); lam: a number >= 0 or a (B,) tensor."""
    check_tensor("x", x, ndim=4)
    Ax = x if operator is None else check_operator(operator, who="tv_objective").A(x)
    if check_tensor("y", y).shape != Ax.shape:
        raise ValueError(f"y must have the shape of A x {tuple(Ax.shape)}, got {tuple(y.shape)}")
    lamB = _lam_per_sample(lam, len(x), x).flatten()
    return 0.5 * (Ax - y).pow(2).flatten(1).sum(1) + lamB * total_variation(x)


def _project(p, lam):
    """Project each 2-vector p[b, c, i, j, :] onto the disc of radius lam (the dual TV ball)."""
    return p / (p.norm(dim=-1, keepdim=True) / lam.clamp_min(1e-30)).clamp_min(1.0)


def tv_denoise(y: torch.Tensor, lam, *, iters: int = 200, callback=None) -> torch.Tensor:
    """ROF denoising: x = argmin 1/2 ||x - y||^2 + lam TV(x). y: (B, C, H, W) -> (B, C, H, W).

    lam: a number >= 0 or a (B,) tensor (one weight per image). Chambolle & Pock (2011),
    Algorithm 2 (accelerated, the data term is 1-strongly convex), with K = grad,
    ||K||^2 <= 8:
        1. p     <- proj_{|p| <= lam}(p + sigma grad x_bar)
        2. x_new <- (x + tau div p + tau y) / (1 + tau)          (prox of tau/2 ||. - y||^2)
        3. theta <- 1 / sqrt(1 + 2 tau); tau <- theta tau; sigma <- sigma / theta
        4. x_bar <- x_new + theta (x_new - x)
    starting from tau = sigma = 1 / sqrt(8); converges as O(1 / iters^2).
    skimage's `denoise_tv_chambolle(image, weight=lam)` solves the same problem (weight = lam).
    `callback({'i', 'x'})` is called after each iteration.
    """
    check_tensor("y", y, ndim=4)
    check_positive_int("iters", iters)
    lam = _lam_per_sample(lam, len(y), y)
    tau = sigma = 1.0 / math.sqrt(8.0)
    x, x_bar = y.clone(), y.clone()
    p = y.new_zeros(y.shape + (2,))
    for i in range(iters):
        p = _project(p + sigma * grad2d(x_bar), lam)                        # 1.
        x_new = (x + tau * div2d(p) + tau * y) / (1 + tau)                  # 2.
        theta = 1.0 / math.sqrt(1 + 2 * tau)                                # 3.
        tau, sigma = theta * tau, sigma / theta
        x_bar = x_new + theta * (x_new - x)                                 # 4.
        x = x_new
        if callback is not None:
            callback({"i": i, "x": x})
    return x


def tv_reconstruct(y: torch.Tensor, operator: LinearOperator, *, lam, iters: int = 300,
                   method: str = "pdhg", x_init: torch.Tensor | None = None, eps: float = 1e-2,
                   callback=None) -> torch.Tensor:
    """x = argmin 1/2 ||A x - y||^2 + lam TV(x). y: (B, *out_shape) -> x: (B, C, H, W).

    method "pdhg": Chambolle & Pock (2011), Algorithm 1 (theta = 1), splitting
    K x = (A x, grad x), F(u, g) = 1/2 ||u - y||^2 + lam ||g||_{2,1}, G = 0, so that only A
    and A^T are needed (no inner solves):
        1. q     <- (q + sigma (A x_bar - y)) / (1 + sigma)        (prox of sigma F_1^*)
        2. p     <- proj_{|p| <= lam}(p + sigma grad x_bar)       (prox of sigma F_2^*)
        3. x_new <- x - tau (A^T q - div p)
        4. x_bar <- 2 x_new - x
    Step sizes tau = sigma = 0.99 / L with L^2 = ||A||^2 + 8 >= ||K||^2, so tau sigma L^2 < 1
    (||grad||^2 <= 8; ||A|| exact from the SVD or estimated by power iteration).

    method "gd": gradient descent on the smoothed TV sum sqrt(|grad x|^2 + eps^2), step
    1 / (||A||^2 + 8 lam / eps) (the inverse Lipschitz constant of the gradient), so the
    smoothed objective decreases monotonically; slower, shown for comparison.

    lam: a number >= 0 or a (B,) tensor (one weight per image). x_init: starting point
    (default A^T y). `callback({'i', 'x'})` after each iteration.
    """
    y = _measurement(y, operator, "tv_reconstruct")
    check_choice("method", method, {"pdhg", "gd"})
    check_positive_int("iters", iters)
    if operator.in_shape is None or len(operator.in_shape) != 3:
        raise ValueError(f"tv_reconstruct needs an image operator with in_shape (C, H, W), "
                         f"got in_shape {operator.in_shape}")
    lamB = _lam_per_sample(lam, len(y), y)
    x = operator._A_adjoint(y) if x_init is None else operator._check_x(x_init, "x_init").clone()
    normA = operator.norm()
    if method == "pdhg":
        tau = sigma = 0.99 / math.sqrt(normA**2 + 8.0)
        x_bar = x.clone()
        q = torch.zeros_like(y)
        p = x.new_zeros(x.shape + (2,))
        for i in range(iters):
            q = (q + sigma * (operator._A(x_bar) - y)) / (1 + sigma)             # 1.
            p = _project(p + sigma * grad2d(x_bar), lamB)                        # 2.
            x_new = x - tau * (operator._A_adjoint(q) - div2d(p))                # 3.
            x_bar = 2 * x_new - x                                                # 4.
            x = x_new
            if callback is not None:
                callback({"i": i, "x": x})
        return x
    eps = check_real("eps", eps, lo=0, lo_open=True)
    step = 1.0 / (normA**2 + 8.0 * float(lamB.max()) / eps)
    for i in range(iters):
        g = grad2d(x)
        w = g / torch.sqrt(g.pow(2).sum(-1, keepdim=True) + eps**2)           # d TV_eps / d grad x
        x = x - step * (operator._A_adjoint(operator._A(x) - y) - lamB[..., 0] * div2d(w))
        if callback is not None:
            callback({"i": i, "x": x})
    return x
