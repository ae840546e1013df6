"""Distances between samples: sliced Wasserstein and MMD for point clouds (B, D).
Image quality (PSNR, SSIM) lives in image_metrics and is re-exported here."""
from __future__ import annotations

import torch

from ._validate import check_tensor
from .image_metrics import psnr, ssim  # noqa: F401  (re-exported: dd.psnr, dd.ssim)


def _flat_pair(x, y):
    check_tensor("x", x, min_ndim=2)
    check_tensor("y", y, min_ndim=2)
    x, y = x.reshape(len(x), -1), y.reshape(len(y), -1)
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

    def k(a, b):
        d2 = torch.cdist(a, b).pow(2)
        return sum(torch.exp(-d2 / (2 * h * h)) for h in bandwidths)

    n, m = len(x), len(y)
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    sxx = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
    syy = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return float(sxx + syy - 2 * kxy.mean())
