"""Blur kernels for blind restoration: Gaussian (anisotropic), motion and defocus, drawn at
random, and the kernel <-> "kernel image" map that lets a diffusion model learn them.

Scope: every kernel here is a (k, k) float32 tensor, k odd in [3, 15], non-negative, summing
to 1, centred at (k // 2, k // 2) (the convention of `inverse.operators.Blur`). The random
draws are functions of a `torch.Generator`, so a seed fixes a whole data set.

    gaussian_kernel2d(k, sigma_x, sigma_y, theta)   exp(-r^T Sigma^-1 r / 2), Sigma rotated by theta
    defocus_kernel(k, radius)                        a uniform disk (the out-of-focus lens), 4x4 supersampled
    motion_kernel(L, seed, intensity)                `operators.masks.motion_kernel` (a random camera
                                                     path), reused; `random_kernel` centres it in k x k
    random_kernel(k, generator, kinds)               one of the three with random parameters -> (kernel, info)
    kernel_dataset(n, k, seed)                       (n, k, k), the kernel prior's training data

The kernel prior of Blind-DPS is a diffusion model on `kernel_to_image(kernel)`: the kernel
divided by its maximum and mapped to [-1, 1] (the peak at +1, empty pixels at -1), so that
kernels of every width use the whole range images use. `image_to_kernel` inverts it up to
the normalisation: clamp at 0, then divide by the sum (the estimate always sums to 1).
"""
from __future__ import annotations

import math

import torch

from ..._validate import check_int, check_real, check_tensor
from ..operators.masks import motion_kernel

__all__ = ["KINDS", "check_kernel_size", "gaussian_kernel2d", "defocus_kernel", "random_kernel", "kernel_dataset",
           "kernel_to_image", "image_to_kernel", "kernel_error", "centre_kernel"]

KINDS = ("gaussian", "motion", "defocus")
MIN_SIZE, MAX_SIZE = 3, 15          # a kernel wider than 15 px would blur a 16 x 16 digit into a blob


def check_kernel_size(k, name: str = "kernel_size") -> int:
    """k: an odd integer in [3, 15] (the centre pixel must exist, and the kernel must fit)."""
    k = check_int(name, k)
    if not MIN_SIZE <= k <= MAX_SIZE or k % 2 == 0:
        raise ValueError(f"{name} must be an odd integer in [{MIN_SIZE}, {MAX_SIZE}] (a centred kernel), got {k}")
    return k


def _normalise(k: torch.Tensor) -> torch.Tensor:
    return (k / k.sum()).float()


def gaussian_kernel2d(size: int, sigma_x: float, sigma_y: float | None = None, theta: float = 0.0) -> torch.Tensor:
    """(size, size) anisotropic Gaussian: std sigma_x along the direction at angle theta
    (radians), sigma_y across it (default sigma_x: isotropic); normalised to sum 1."""
    size = check_kernel_size(size, "size")
    sx = check_real("sigma_x", sigma_x, lo=0.1, hi=10)
    sy = sx if sigma_y is None else check_real("sigma_y", sigma_y, lo=0.1, hi=10)
    theta = check_real("theta", theta)
    r = torch.arange(size, dtype=torch.float64) - size // 2
    Y, X = torch.meshgrid(r, r, indexing="ij")
    c, s = math.cos(theta), math.sin(theta)
    u, v = c * X + s * Y, -s * X + c * Y                   # coordinates along / across theta
    return _normalise(torch.exp(-0.5 * (u ** 2 / sx ** 2 + v ** 2 / sy ** 2)))


def defocus_kernel(size: int, radius: float) -> torch.Tensor:
    """(size, size) uniform disk of `radius` pixels (0.5 <= radius <= size / 2), its edge
    anti-aliased by 4 x 4 supersampling of each pixel; normalised to sum 1."""
    size = check_kernel_size(size, "size")
    radius = check_real("radius", radius, lo=0.5, hi=size / 2)
    sub = (torch.arange(4, dtype=torch.float64) + 0.5) / 4 - 0.5          # 4 sub-pixel offsets
    r = torch.arange(size, dtype=torch.float64) - size // 2
    pos = (r[:, None] + sub[None, :]).reshape(-1)                          # (4 size,)
    Y, X = torch.meshgrid(pos, pos, indexing="ij")
    inside = (X ** 2 + Y ** 2 <= radius ** 2).double()
    return _normalise(inside.reshape(size, 4, size, 4).mean((1, 3)))


def centre_kernel(kernel: torch.Tensor, size: int) -> torch.Tensor:
    """A (s, s) kernel (s <= size, s odd) zero-padded to the middle of (size, size)."""
    size = check_kernel_size(size, "size")
    s = kernel.shape[-1]
    if s > size:
        raise ValueError(f"a kernel of size {s} does not fit in size {size}")
    out = kernel.new_zeros(size, size)
    a = (size - s) // 2
    out[a:a + s, a:a + s] = kernel
    return out


def random_kernel(size: int, generator: torch.Generator, kinds=KINDS):
    """One random kernel of one of `kinds`, its parameters drawn from `generator`:
        gaussian: sigma_x, sigma_y ~ U(0.4, 0.28 size) (0.28 size ~ 2 px for size 7), theta ~ U(0, pi)
        motion:   a path of length L ~ U{3, ..., size} (odd) and turning intensity ~ U(0, 1)
        defocus:  a disk of radius ~ U(0.8, size / 2)
    Returns (kernel (size, size), info: a dict naming the kind and its parameters)."""
    size = check_kernel_size(size, "size")
    kinds = tuple(kinds)
    if not kinds or any(k not in KINDS for k in kinds):
        raise ValueError(f"kinds must be a non-empty subset of {KINDS}, got {kinds!r}")
    u = lambda lo, hi: lo + (hi - lo) * float(torch.rand((), generator=generator, dtype=torch.float64))  # noqa: E731
    kind = kinds[int(torch.randint(len(kinds), (), generator=generator))]
    if kind == "gaussian":
        info = dict(sigma_x=u(0.4, 0.28 * size), sigma_y=u(0.4, 0.28 * size), theta=u(0, math.pi))
        k = gaussian_kernel2d(size, **info)
    elif kind == "motion":
        L = 2 * int(torch.randint(1, size // 2 + 1, (), generator=generator)) + 1
        info = dict(length=L, seed=int(torch.randint(2 ** 31 - 1, (), generator=generator)), intensity=u(0, 1))
        k = centre_kernel(motion_kernel(L, seed=info["seed"], intensity=info["intensity"]), size)
    else:
        info = dict(radius=u(0.8, size / 2))
        k = defocus_kernel(size, info["radius"])
    return k.float(), {"kind": kind, **info}


def kernel_dataset(n: int, size: int = 7, seed: int = 0, kinds=KINDS) -> torch.Tensor:
    """(n, size, size) random kernels (`random_kernel`), a function of `seed`."""
    n = check_int("n", n, lo=1)
    g = torch.Generator().manual_seed(check_int("seed", seed, lo=0))
    return torch.stack([random_kernel(size, g, kinds)[0] for _ in range(n)])


def kernel_to_image(kernel: torch.Tensor) -> torch.Tensor:
    """Kernels (..., k, k) (non-negative) -> kernel images in [-1, 1]: 2 k / max(k) - 1."""
    check_tensor("kernel", kernel, min_ndim=2)
    peak = kernel.amax((-2, -1), keepdim=True).clamp_min(1e-12)
    return 2 * kernel / peak - 1


def image_to_kernel(image: torch.Tensor) -> torch.Tensor:
    """Kernel images (..., k, k) -> kernels: max((image + 1) / 2, 0), normalised to sum 1
    (a kernel image that is -1 everywhere gives the delta kernel). Differentiable."""
    check_tensor("image", image, min_ndim=2)
    k = ((image + 1) / 2).clamp_min(0)
    s = k.sum((-2, -1), keepdim=True)
    delta = torch.zeros_like(k)
    delta[..., k.shape[-2] // 2, k.shape[-1] // 2] = 1
    return torch.where(s > 1e-8, k / s.clamp_min(1e-8), delta)


def kernel_error(estimate: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Relative L2 error ||k_hat - k|| / ||k|| per kernel; estimate, truth: (B, k, k) -> (B,)."""
    check_tensor("estimate", estimate, min_ndim=2)
    check_tensor("truth", truth, min_ndim=2)
    if estimate.shape != truth.shape:
        raise ValueError(f"estimate has shape {tuple(estimate.shape)} but truth has {tuple(truth.shape)}")
    d = (estimate - truth).flatten(-2).norm(dim=-1)
    return d / truth.flatten(-2).norm(dim=-1).clamp_min(1e-12)
