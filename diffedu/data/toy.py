"""Seeded 2D toy data sets, points (n, 2) float32 scaled to roughly unit variance.

Each function takes `n` and `seed` and returns the same points for the same seed.
`toy_gmm()` is the mixture with known parameters whose exact denoiser grades learned ones.
"""
from __future__ import annotations

import math

import torch

from .._validate import check_choice, check_positive_int
from ..exact.gmm import GaussianMixture


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


def moons(n: int = 2000, seed: int = 0, noise: float = 0.08) -> torch.Tensor:
    """Two interleaving half circles."""
    g = _gen(seed)
    k = torch.randint(0, 2, (n,), generator=g)
    th = torch.rand(n, generator=g) * math.pi
    x = torch.where(k == 0, torch.cos(th), 1 - torch.cos(th))
    y = torch.where(k == 0, torch.sin(th), 0.5 - torch.sin(th))
    pts = torch.stack([x - 0.5, y - 0.25], 1) + noise * torch.randn(n, 2, generator=g)
    return (pts * 1.2).float()


def swissroll(n: int = 2000, seed: int = 0, noise: float = 0.05) -> torch.Tensor:
    """A 2D swiss roll (spiral of growing radius)."""
    g = _gen(seed)
    u = 1.5 * math.pi * (1 + 2 * torch.rand(n, generator=g))
    pts = torch.stack([u * torch.cos(u), u * torch.sin(u)], 1) / 7.0
    return (pts + noise * torch.randn(n, 2, generator=g)).float()


def eight_gaussians(n: int = 2000, seed: int = 0, radius: float = 2.0, std: float = 0.1) -> torch.Tensor:
    """Eight Gaussians on a circle."""
    return eight_gaussians_gmm(radius, std).sample(n, _gen(seed))


def eight_gaussians_gmm(radius: float = 2.0, std: float = 0.1) -> GaussianMixture:
    ang = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
    means = radius * torch.stack([torch.cos(ang), torch.sin(ang)], 1)
    return GaussianMixture(torch.ones(8), means, std ** 2)


def checkerboard(n: int = 2000, seed: int = 0) -> torch.Tensor:
    """Uniform on the black squares of a 4x4 checkerboard over [-2, 2]^2."""
    g = _gen(seed)
    x = torch.rand(n, generator=g) * 4 - 2
    k = torch.randint(-1, 1, (n,), generator=g)                    # which row pair
    y = torch.rand(n, generator=g) + 2 * k + torch.floor(x) % 2    # floor(y) has floor(x)'s parity
    return torch.stack([x, y], 1).float()


def spirals(n: int = 2000, seed: int = 0, noise: float = 0.05) -> torch.Tensor:
    """Two interleaved spirals."""
    g = _gen(seed)
    u = torch.sqrt(torch.rand(n, generator=g)) * 3 * math.pi
    sign = torch.randint(0, 2, (n,), generator=g) * 2 - 1
    pts = sign[:, None] * torch.stack([u * torch.cos(u), u * torch.sin(u)], 1) / 5.0
    return (pts + noise * torch.randn(n, 2, generator=g)).float()


def toy_gmm() -> GaussianMixture:
    """A fixed, labelled 2D mixture (3 classes, anisotropic components) with known parameters."""
    means = [[-1.5, -1.0], [1.5, -1.0], [0.0, 1.5], [1.8, 1.6]]
    covs = [[[0.10, 0.05], [0.05, 0.20]], [[0.15, -0.06], [-0.06, 0.08]],
            [[0.25, 0.0], [0.0, 0.05]], [[0.05, 0.0], [0.0, 0.05]]]
    return GaussianMixture([0.3, 0.3, 0.25, 0.15], means, covs, labels=[0, 1, 2, 2])


def gmm_data(n: int = 2000, seed: int = 0, return_labels: bool = False):
    """Samples of `toy_gmm()` (and their class labels with return_labels)."""
    gmm = toy_gmm()
    x, k = gmm.sample(n, _gen(seed), return_labels=True)
    return (x, gmm.labels[k]) if return_labels else x


TOY = {"moons": moons, "swissroll": swissroll, "8gaussians": eight_gaussians,
       "checkerboard": checkerboard, "spirals": spirals, "gmm": gmm_data}


def get_toy(name: str, n: int = 2000, seed: int = 0) -> torch.Tensor:
    """Points (n, 2) of the toy set `name` (one of TOY)."""
    check_choice("toy data set", name, TOY)
    check_positive_int("n", n)
    return TOY[name](n, seed)
