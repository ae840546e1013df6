"""Distances and quality scores.

Point clouds (B, D): sliced Wasserstein and MMD between two sample sets.
Images (B, C, H, W) in [-1, 1] (so the default data_range, max - min of the signal, is 2.0):
PSNR and SSIM, one value per image. SSIM follows Wang, Bovik, Sheikh & Simoncelli (2004),
"Image Quality Assessment: From Error Visibility to Structural Similarity", with their
constants K1 = 0.01, K2 = 0.03 and an 11 x 11 Gaussian window of std 1.5; it matches
`skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=...)`.
"""
from __future__ import annotations

import numbers

import torch
import torch.nn.functional as F

from ._validate import check_choice, check_positive_int, check_real, check_tensor, rows

__all__ = ["sliced_wasserstein", "mmd", "psnr", "ssim"]

def _flat_pair(x, y):
    # one number for a whole sample set: a single NaN row would make it NaN, so refuse it here
    check_tensor("x", x, min_ndim=2, nonempty=True, finite=True)
    check_tensor("y", y, min_ndim=2, nonempty=True, finite=True)
    x, y = rows(x), rows(y)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have the same dimension per sample, got {x.shape[1]} and {y.shape[1]}")
    return x.double(), y.double()


def sliced_wasserstein(x: torch.Tensor, y: torch.Tensor, n_proj: int = 256,
                       generator: torch.Generator | None = None, p: int = 2) -> float:
    """Sliced Wasserstein-p distance between point clouds x: (N, D) and y: (M, D).

    Projects both on `n_proj` random unit directions, and on each compares the sorted 1D
    samples (the exact 1D optimal transport) at N' = min(N, M) matched quantiles;
    returns (mean over directions of W_p^p) ** (1/p).
    """
    x, y = _flat_pair(x, y)
    check_positive_int("n_proj", n_proj)
    p = check_real("p", p, lo=1)
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    dirs = torch.randn(x.shape[1], n_proj, generator=generator, dtype=torch.float64)
    dirs = (dirs / dirs.norm(dim=0, keepdim=True)).to(x.device)
    px, _ = torch.sort(x @ dirs, dim=0)                    # (N, n_proj)
    py, _ = torch.sort(y @ dirs, dim=0)                    # (M, n_proj)
    n = min(len(px), len(py))
    q = (torch.arange(n, dtype=torch.float64, device=x.device) + 0.5) / n   # matched quantiles
    px = px[(q * len(px)).long()]
    py = py[(q * len(py)).long()]
    return float(((px - py).abs() ** p).mean() ** (1.0 / p))


def mmd(x: torch.Tensor, y: torch.Tensor, bandwidths=(0.1, 0.2, 0.5, 1.0, 2.0)) -> float:
    """Unbiased squared maximum mean discrepancy, x: (N, D), y: (M, D), with a sum of RBF
    kernels exp(-|a - b|^2 / (2 h^2)) over the given bandwidths h."""
    x, y = _flat_pair(x, y)
    if len(x) < 2 or len(y) < 2:
        raise ValueError("mmd needs at least 2 samples in each of x and y")
    if isinstance(bandwidths, (str, bytes)) or not hasattr(bandwidths, "__iter__"):
        raise TypeError(f"bandwidths must be a sequence of numbers > 0, got {type(bandwidths).__name__}")
    bandwidths = [check_real("bandwidths", h, lo=0, lo_open=True) for h in bandwidths]
    if not bandwidths:
        raise ValueError("bandwidths must hold at least one number > 0")

    def k(a, b):
        d2 = torch.cdist(a, b).pow(2)
        return sum(torch.exp(-d2 / (2 * h * h)) for h in bandwidths)

    n, m = len(x), len(y)
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    sxx = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
    syy = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return float(sxx + syy - 2 * kxy.mean())


# -- images --------------------------------------------------------------------------------


def _pair_check(x, y, data_range):
    check_tensor("x", x, ndim=4)
    check_tensor("y", y, ndim=4)
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape (B, C, H, W), got {tuple(x.shape)} "
                         f"and {tuple(y.shape)}")
    check_real("data_range", data_range, lo=0, lo_open=True)
    return x.double(), y.double()


def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = 2.0) -> torch.Tensor:
    """Peak signal-to-noise ratio 10 log10(data_range^2 / MSE) in dB, per image.
    x, y: (B, C, H, W) -> (B,) (inf where x == y)."""
    x64, y64 = _pair_check(x, y, data_range)
    mse = (x64 - y64).pow(2).flatten(1).mean(1)
    return (10 * torch.log10(data_range**2 / mse)).to(x.dtype)


def _gaussian_window(win_size, sigma):
    r = torch.arange(win_size, dtype=torch.float64) - (win_size - 1) / 2
    w = torch.exp(-r**2 / (2 * sigma**2))
    return w / w.sum()


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 2.0, window: str = "gaussian",
         win_size: int | None = None, sigma: float = 1.5, K1: float = 0.01, K2: float = 0.03,
         sample_covariance: bool = False) -> torch.Tensor:
    """Structural similarity (Wang et al. 2004), per image. x, y: (B, C, H, W) -> (B,).

    Local statistics mu_x, mu_y, sigma_x^2, sigma_y^2, sigma_xy under a sliding window
    ("gaussian": std `sigma`, size 2 * int(3.5 sigma + 0.5) + 1 = 11 for sigma = 1.5;
    "uniform": win_size x win_size box, default 7), then
        SSIM = (2 mu_x mu_y + C1)(2 sigma_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(sigma_x^2 + sigma_y^2 + C2)),
        C1 = (K1 L)^2, C2 = (K2 L)^2, L = data_range,
    averaged over the positions where the window fits inside the image and over channels.
    `sample_covariance=True` rescales the variances by N / (N - 1) (skimage's default for
    the uniform window).
    """
    x64, y64 = _pair_check(x, y, data_range)
    check_choice("window", window, {"gaussian", "uniform"})
    K1, K2 = check_real("K1", K1, lo=0, lo_open=True), check_real("K2", K2, lo=0, lo_open=True)
    if win_size is not None and (isinstance(win_size, bool) or not isinstance(win_size, numbers.Integral)):
        raise ValueError(f"win_size must be an odd integer >= 3, got {win_size!r}")
    if window == "gaussian":
        sigma = check_real("sigma", sigma, lo=0, lo_open=True)
        win_size = 2 * int(3.5 * sigma + 0.5) + 1 if win_size is None else win_size
    else:
        win_size = 7 if win_size is None else win_size
    if isinstance(win_size, bool) or not isinstance(win_size, numbers.Integral) or win_size < 2 or win_size % 2 == 0:
        raise ValueError(f"win_size must be an odd integer >= 3, got {win_size!r}")
    win_size = int(win_size)
    if window == "gaussian":
        w1 = _gaussian_window(win_size, sigma)
    else:
        w1 = torch.full((win_size,), 1.0 / win_size, dtype=torch.float64)
    B, C, H, W = x.shape
    if H < win_size or W < win_size:
        raise ValueError(f"x must be at least win_size = {win_size} pixels in H and W, got {(H, W)}")
    w1 = w1.to(x64.device)
    # separable "valid" filtering over each channel: (B * C, 1, H, W) -> (B * C, 1, H', W')
    kv, kh = w1.view(1, 1, -1, 1), w1.view(1, 1, 1, -1)

    def filt(t):
        return F.conv2d(F.conv2d(t.reshape(B * C, 1, H, W), kv), kh)

    mx, my = filt(x64), filt(y64)
    vx, vy, cxy = filt(x64 * x64) - mx**2, filt(y64 * y64) - my**2, filt(x64 * y64) - mx * my
    if sample_covariance:
        n = win_size**2
        vx, vy, cxy = vx * n / (n - 1), vy * n / (n - 1), cxy * n / (n - 1)
    C1, C2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    s = ((2 * mx * my + C1) * (2 * cxy + C2)) / ((mx**2 + my**2 + C1) * (vx + vy + C2))
    return s.reshape(B, -1).mean(1).to(x.dtype)
