"""Plug-and-play image restoration: a Gaussian denoiser used as the prior of an inverse problem.

Scope: half-quadratic splitting with DPIR's noise-level schedule (Zhang, Li, Zuo, Zhang,
Van Gool & Timofte, "Plug-and-Play Image Restoration with Deep Denoiser Prior", TPAMI 2021;
the HQS idea from Zhang et al., "Learning Deep CNN Denoiser Prior", CVPR 2017), and a
classical TV denoiser to plug in, so PnP runs without a network.

Denoiser convention (noise level): `denoiser(x, sigma)` returns an estimate of the clean
image from x = x_clean + sigma * n, n ~ N(0, I), for images in [-1, 1]. A diffusion model
becomes one by `dd.sigma_denoiser(D, schedule)` (diffedu/denoiser.py): alpha_bar = 1 / (1 +
sigma^2), x_t = sqrt(alpha_bar) x at the schedule entry nearest that level, and its x0
prediction (Tweedie).

Notation
    y = A x + sigma_y n        measurement, y: (B, *out_shape), x: (B, C, H, W)
    sigma_k, k = 1..K          denoiser noise levels, log-spaced from sigma_1 to sigma_y
    mu_k = lam sigma_y^2 / sigma_k^2   weight of the quadratic coupling (DPIR's alpha_k)
HQS minimises 1/2 ||y - A x||^2 / sigma_y^2 + lam R(x) by splitting x and z:
    x_k = argmin_x ||y - A x||^2 + mu_k ||x - z_{k-1}||^2 = (A^T A + mu_k I)^{-1}(A^T y + mu_k z_{k-1})
    z_k = denoiser(x_k, sigma_k)       (the proximal step of the prior, DPIR eq. (6)-(7))
"""
from __future__ import annotations

import math

import torch

from .._validate import check_callable, check_nonneg, check_output, check_positive_int, check_real, check_tensor
from .classical import _measurement, tv_denoise
from .operators import LinearOperator

__all__ = ["dpir_sigmas", "pnp_hqs", "tv_denoiser"]

# DPIR works on [0, 1] images with sigma_1 = 49 / 255 and floors sigma_y at 0.255 / 255;
# on [-1, 1] images (range 2) the same noise is twice as large.
SIGMA_MAX = 2 * 49 / 255
SIGMA_MIN = 2 * 0.255 / 255


def dpir_sigmas(sigma_y: float, iters: int = 8, sigma_max: float = SIGMA_MAX) -> torch.Tensor:
    """DPIR's schedule: `iters` noise levels log-spaced from sigma_max down to
    max(sigma_y, SIGMA_MIN) (both in [-1, 1] image units). Returns (iters,) float64."""
    sigma_y = max(check_nonneg("sigma_y", sigma_y), SIGMA_MIN)
    check_positive_int("iters", iters)
    sigma_max = check_nonneg("sigma_max", sigma_max)
    if sigma_max < sigma_y:
        raise ValueError(f"sigma_max ({sigma_max}) must be >= sigma_y ({sigma_y})")
    return torch.logspace(math.log10(sigma_max), math.log10(sigma_y), iters, dtype=torch.float64)


def pnp_hqs(y: torch.Tensor, operator: LinearOperator, denoiser, *, sigma_y: float, sigmas=None,
            lam: float = 0.23, iters: int = 8, sigma_max: float = SIGMA_MAX,
            x_init: torch.Tensor | None = None, cg_iters: int = 100, callback=None) -> torch.Tensor:
    """Plug-and-play half-quadratic splitting (DPIR, Zhang et al. 2021, Algorithm 1).
    y: (B, *out_shape) -> x: (B, *in_shape).

    denoiser: callable `denoiser(x, sigma) -> x_hat` (noise-level convention, see module doc;
    e.g. `tv_denoiser()` or `dd.sigma_denoiser(D, schedule)` for a diffusion denoiser D).
    sigmas: the noise levels sigma_1 > ... > sigma_K (default `dpir_sigmas(sigma_y, iters,
    sigma_max)`); lam: the regularisation weight (DPIR uses 0.23 for deblurring);
    sigma_y: the measurement noise std (floored at SIGMA_MIN so that mu_k > 0).
    x_init: z_0 (default A^T y when A maps images to images of the same shape, else A^+ y).

    For k = 1..K:
        1. mu_k = lam sigma_y^2 / sigma_k^2
        2. x_k  = (A^T A + mu_k I)^{-1} (A^T y + mu_k z_{k-1})   closed form for Inpainting,
                  Blur (Fourier) and SVD operators, conjugate gradient otherwise
        3. z_k  = denoiser(x_k, sigma_k)
    `callback({'i', 'sigma', 'mu', 'x', 'z'})` after each step; returns z_K.
    """
    y = _measurement(y, operator, "pnp_hqs")
    check_callable("denoiser", denoiser, "denoiser(x, sigma) -> x_hat (e.g. dd.sigma_denoiser(D, schedule))")
    sigma_y = max(check_nonneg("sigma_y", sigma_y), SIGMA_MIN)
    check_positive_int("cg_iters", cg_iters)
    if sigmas is None:
        sigmas = dpir_sigmas(sigma_y, iters, sigma_max)
    try:
        sigmas = torch.as_tensor(sigmas, dtype=torch.float64).flatten()
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(f"sigmas must be a sequence of numbers > 0, got {type(sigmas).__name__}") from err
    if len(sigmas) == 0 or not bool(torch.isfinite(sigmas).all()) or bool((sigmas <= 0).any()):
        raise ValueError(f"sigmas must be a non-empty sequence of finite numbers > 0, got {sigmas.tolist()}")
    lam = check_real("lam", lam, lo=0, lo_open=True)
    if callback is not None:
        check_callable("callback", callback, "callback(info: dict)")
    ATy = operator.A_adjoint(y)
    if x_init is not None:
        z = check_tensor("x_init", operator._check_x(x_init, "x_init"), finite=True)
        if len(z) != len(y):
            raise ValueError(f"x_init must have one row per row of y ({len(y)}), got {len(z)}")
    else:
        z = ATy if operator.in_shape == operator.out_shape else operator.A_dagger(y)
    for i, sigma in enumerate(sigmas.tolist()):
        mu = lam * sigma_y**2 / sigma**2                                    # 1.
        x = operator.solve_normal(ATy + mu * z, mu, iters=cg_iters)         # 2.
        z = check_output("denoiser", denoiser(x, sigma), x, f"at sigma={sigma:.4g}")   # 3.
        if callback is not None:
            callback({"i": i, "sigma": sigma, "mu": mu, "x": x, "z": z})
    if not bool(torch.isfinite(z).all()):          # one check at the end, naming the likely cause
        raise ValueError("pnp_hqs produced NaN or inf: check the denoiser (its output must be finite) "
                         "and the measurement y")
    return z


def tv_denoiser(lam_scale: float = 1.0, iters: int = 50):
    """A classical Gaussian denoiser for PnP: `denoiser(x, sigma) = tv_denoise(x, lam_scale *
    sigma)` (x: (B, C, H, W)). The TV weight grows linearly with the noise std, the usual
    rule for ROF (for a fixed image the optimal weight is roughly proportional to sigma)."""
    lam_scale = check_nonneg("lam_scale", lam_scale)
    check_positive_int("iters", iters)

    def denoiser(x: torch.Tensor, sigma) -> torch.Tensor:
        check_tensor("x", x, ndim=4)
        if isinstance(sigma, torch.Tensor) and sigma.numel() > 1:
            s = sigma.to(dtype=x.dtype, device=x.device)
            if s.shape != (len(x),) or not bool(torch.isfinite(s).all()) or bool((s < 0).any()):
                raise ValueError(f"sigma must be a number >= 0 or a ({len(x)},) tensor of finite numbers >= 0")
            return tv_denoise(x, lam_scale * s, iters=iters)
        return tv_denoise(x, lam_scale * check_nonneg("sigma", sigma), iters=iters)

    return denoiser
