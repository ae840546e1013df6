"""Exercises of chapter 14b (manifold and invariant data), each graded on fixed random inputs.

    sphere_geodesic        the point a fraction t of the way along the shortest great circle from x to y (exp / log)
    zero_mean_projection   the projection of point clouds onto the zero-centre-of-mass subspace
"""
from __future__ import annotations

import torch

from . import Exercise


def _unit(n, seed):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 3, generator=g, dtype=torch.float64)
    return z / z.norm(dim=1, keepdim=True)


# -- reference solutions (kept short: they are what `solution` prints) --------------------
def sphere_geodesic(x, y, t):
    """gamma(t) = exp_x(t log_x(y)) on S^2; x, y: (B, 3) unit vectors, t: (B,) in [0, 1].
    log_x(y) = theta u / |u| with u = y - <x, y> x and theta = arccos <x, y>; exp_x(v) = cos|v| x + sin|v| v / |v|."""
    cos = (x * y).sum(1, keepdim=True).clamp(-1, 1)
    u = y - cos * x
    theta = torch.arccos(cos)
    v = theta * u / u.norm(dim=1, keepdim=True)
    s = t[:, None] * v
    n = s.norm(dim=1, keepdim=True)
    return torch.cos(n) * x + torch.sin(n) * s / n


def zero_mean_projection(x):
    """P x = x - (1/N) sum_i x_i for clouds x: (B, N, n): subtract each cloud's centre of mass."""
    return x - x.mean(dim=1, keepdim=True)


def _geodesic_cases():
    cases = []
    for k, t in enumerate((0.25, 0.5, 0.9)):
        cases.append({"x": _unit(6, k), "y": _unit(6, 10 + k), "t": torch.full((6,), t, dtype=torch.float64)})
    return cases


def _cloud_cases():
    out = []
    for k, (B, N, n) in enumerate([(4, 6, 2), (3, 5, 3), (2, 9, 2)]):
        g = torch.Generator().manual_seed(20 + k)
        out.append({"x": torch.randn(B, N, n, generator=g, dtype=torch.float64) + 3.0})
    return out


EXERCISES = [
    Exercise("sphere_geodesic", "14b",
             "write the point a fraction t of the way from x to y along the great circle, as exp_x(t log_x(y))",
             sphere_geodesic, _geodesic_cases,
             "log_x(y) is the tangent vector at x whose length is the angle arccos<x, y> and whose direction is "
             "y minus its component along x; exp_x(v) walks |v| radians from x in the direction v / |v| "
             "(Chen & Lipman 2024, section 3: the geodesic path)."),
    Exercise("zero_mean_projection", "14b",
             "project point clouds x: (B, N, n) onto the subspace where the points' mean is 0",
             zero_mean_projection, _cloud_cases,
             "Average over the N points of each cloud (dim=1, keepdim=True) and subtract (Hoogeboom et al. 2022, "
             "section 3.1): the result does not change under translations of the cloud."),
]


def _self_check():
    """The references agree with the package (the exercises cannot drift from diffedu.domains)."""
    from ..domains import equivariant, manifold
    c = _geodesic_cases()[1]
    torch.testing.assert_close(sphere_geodesic(**c), manifold.geodesic_path("sphere", c["x"], c["y"], c["t"])[0])
    torch.testing.assert_close(manifold.sphere_dist(c["x"], sphere_geodesic(**c)), 0.5 * manifold.sphere_dist(c["x"], c["y"]))
    x = _cloud_cases()[0]["x"]
    torch.testing.assert_close(zero_mean_projection(x), equivariant.remove_mean(x))
