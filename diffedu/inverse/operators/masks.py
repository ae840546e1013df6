"""Masks for inpainting and kernels for deblurring: (H, W) tensors that build the operators
of `linear.py` (`Inpainting(mask)`, `Blur(kernel, img_size)`). Masks are float, 1 = observed,
0 = missing; kernels are float, non-negative and sum to 1. Random ones are fixed by `seed`.
"""
from __future__ import annotations

import math

import torch

from ..._validate import check_int, check_positive_int, check_real
from .base import _pair

__all__ = ["box_mask", "random_mask", "freeform_mask", "gaussian_kernel", "motion_kernel"]


def _gen(seed):
    return torch.Generator().manual_seed(check_int("seed", seed))


def box_mask(img_size, box_size=None, seed: int | None = None) -> torch.Tensor:
    """(H, W) float mask, 1 = observed, with a box of 0s of size `box_size` (int or (h, w);
    default half the image) centred, or at a random place when `seed` is given."""
    H, W = _pair("img_size", img_size)
    bh, bw = (H // 2, W // 2) if box_size is None else _pair("box_size", box_size)
    if bh > H or bw > W:
        raise ValueError(f"box_size {(bh, bw)} does not fit in img_size {(H, W)}")
    if seed is None:
        top, left = (H - bh) // 2, (W - bw) // 2
    else:
        g = _gen(seed)
        top = int(torch.randint(0, H - bh + 1, (1,), generator=g))
        left = int(torch.randint(0, W - bw + 1, (1,), generator=g))
    m = torch.ones(H, W)
    m[top:top + bh, left:left + bw] = 0
    return m


def random_mask(img_size, p: float, seed: int = 0) -> torch.Tensor:
    """(H, W) float mask, 1 = observed: each pixel is missing independently with probability p."""
    H, W = _pair("img_size", img_size)
    check_real("p (the probability a pixel is missing)", p, lo=0, hi=1)
    return (torch.rand(H, W, generator=_gen(seed)) >= p).float()


def freeform_mask(img_size, seed: int = 0, strokes: int = 4, max_vertices: int = 6,
                  max_width: float | None = None) -> torch.Tensor:
    """(H, W) float mask, 1 = observed, with random brush strokes of 0s (as in free-form
    inpainting, Yu et al. 2019): each stroke is a random polyline of up to `max_vertices`
    segments painted with a round brush of random width up to `max_width` (default H / 8)."""
    H, W = _pair("img_size", img_size)
    check_positive_int("strokes", strokes)
    check_positive_int("max_vertices", max_vertices)
    g = _gen(seed)
    max_width = max(2.0, H / 8) if max_width is None else check_real("max_width", max_width, lo=1)
    yy, xx = torch.meshgrid(torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64),
                            indexing="ij")
    P = torch.stack([yy, xx], -1)                                                  # (H, W, 2)
    hole = torch.zeros(H, W, dtype=torch.bool)
    for _ in range(strokes):
        n_seg = int(torch.randint(1, max_vertices + 1, (1,), generator=g))
        width = 1.0 + (max_width - 1.0) * float(torch.rand(1, generator=g, dtype=torch.float64))
        a = torch.rand(2, generator=g, dtype=torch.float64) * torch.tensor([H - 1.0, W - 1.0])
        for _ in range(n_seg):
            angle = 2 * math.pi * float(torch.rand(1, generator=g))
            length = (0.1 + 0.3 * float(torch.rand(1, generator=g))) * max(H, W)
            b = a + length * torch.tensor([math.sin(angle), math.cos(angle)], dtype=torch.float64)
            b = torch.minimum(torch.maximum(b, torch.zeros(2, dtype=torch.float64)),
                              torch.tensor([H - 1.0, W - 1.0]))
            ab = b - a                                       # distance of pixels to segment [a, b]
            t = (((P - a) @ ab) / ab.dot(ab).clamp_min(1e-12)).clamp(0, 1)
            dist = (P - a - t[..., None] * ab).norm(dim=-1)
            hole |= dist <= width / 2
            a = b
    return (~hole).float()


def gaussian_kernel(size: int, sigma: float) -> torch.Tensor:
    """(size, size) normalised isotropic Gaussian blur kernel of std `sigma` pixels."""
    check_positive_int("size", size)
    sigma = check_real("sigma", sigma, lo=0, lo_open=True)
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    k1 = torch.exp(-r**2 / (2 * sigma**2))
    k = k1[:, None] * k1[None, :]
    return (k / k.sum()).float()


def motion_kernel(size: int, seed: int = 0, intensity: float = 0.5) -> torch.Tensor:
    """(size, size) normalised motion-blur kernel: a random camera trajectory (a random walk
    whose velocity turns by random angles, `intensity` in [0, 1] scaling how much it turns),
    centred, scaled to fit the kernel and splatted bilinearly."""
    check_positive_int("size", size)
    intensity = check_real("intensity", intensity, lo=0, hi=1)
    g = _gen(seed)
    n = 8 * size
    angle0 = 2 * math.pi * torch.rand(1, generator=g, dtype=torch.float64)
    turns = intensity * 0.6 * torch.randn(n, generator=g, dtype=torch.float64)
    angles = angle0 + torch.cumsum(turns, 0)
    speed = 1.0 + 0.5 * torch.rand(n, generator=g, dtype=torch.float64)
    path = torch.cumsum(torch.stack([speed * torch.sin(angles), speed * torch.cos(angles)], -1), 0)
    path = path - (path.amax(0) + path.amin(0)) / 2                 # centre the trajectory
    half = (size - 1) / 2
    path = path / path.abs().max().clamp_min(1e-12) * half + half   # fit in [0, size - 1]
    k = torch.zeros(size, size, dtype=torch.float64)
    i0 = path.floor().long().clamp(0, size - 1)
    f = path - i0
    for di in (0, 1):
        for dj in (0, 1):
            w = (f[:, 0] if di else 1 - f[:, 0]) * (f[:, 1] if dj else 1 - f[:, 1])
            ii, jj = (i0[:, 0] + di).clamp(max=size - 1), (i0[:, 1] + dj).clamp(max=size - 1)
            k.index_put_((ii, jj), w, accumulate=True)
    return (k / k.sum()).float()
