"""The geometry of the chapter-14b manifolds: the sphere S^2 as unit vectors (B, 3) and the flat
torus T^2 = R^2 / (2 pi Z)^2 as angle pairs (B, 2) in [0, 2 pi); the check that points lie on
them, exp / log maps, geodesic distances and the uniform distribution. manifold.py builds
Riemannian flow matching on these.
"""
from __future__ import annotations

import math

import torch

from .._validate import check_choice, check_positive_int, check_tensor

__all__ = ["TOL", "MANIFOLDS", "check_on_manifold", "sphere_exp", "sphere_log", "sphere_dist", "tangent",
           "wrap", "torus_exp", "torus_log", "torus_dist", "exp_map", "log_map", "dist", "uniform"]

TOL = 1e-5                          # how far off the manifold a point may lie (|x| - 1 on S^2; angles outside [0, 2 pi))
TWO_PI = 2 * math.pi
MANIFOLDS = ("sphere", "torus")


# -- checks -----------------------------------------------------------------------------------

def check_on_manifold(name: str, x, manifold: str, tol: float = TOL) -> torch.Tensor:
    """x: (B, 3) unit vectors (sphere) or (B, 2) angles in [0, 2 pi) (torus), to `tol`; else a
    ValueError naming the argument, the worst point and the tolerance."""
    check_choice("manifold", manifold, MANIFOLDS)
    dim = 3 if manifold == "sphere" else 2
    check_tensor(name, x, ndim=2, finite=True)
    if x.shape[1] != dim:
        raise ValueError(f"{name} must be points of the {manifold} as shape (B, {dim}), got shape {tuple(x.shape)}")
    if len(x) == 0:
        return x
    if manifold == "sphere":
        err = (x.norm(dim=1) - 1).abs()
        what = "| |x| - 1 |"
    else:
        err = torch.clamp(-x, min=0).amax(1).maximum(torch.clamp(x - TWO_PI, min=0).amax(1))
        what = "the distance of an angle outside [0, 2 pi)"
    worst = int(err.argmax())
    if float(err[worst]) > tol:
        hint = "normalise with x / x.norm(dim=1, keepdim=True)" if manifold == "sphere" else "wrap with manifold.wrap(x)"
        raise ValueError(f"{name} has points off the {manifold}: row {worst} has {what} = {float(err[worst]):.3g}, "
                         f"above the tolerance tol={tol:g}; {hint}")
    return x


def _geo(manifold: str):
    check_choice("manifold", manifold, MANIFOLDS)
    return (sphere_exp, sphere_log, sphere_dist) if manifold == "sphere" else (torus_exp, torus_log, torus_dist)


# -- the sphere S^2 in R^3 --------------------------------------------------------------------

def tangent(x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Projection of v: (B, 3) onto the tangent plane of the sphere at x: (B, 3), v - <x, v> x."""
    return v - (x * v).sum(-1, keepdim=True) * x


def sphere_exp(x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """exp_x(v) = cos|v| x + sin|v| v / |v| for x: (B, 3) on S^2 and v: (B, 3) tangent at x."""
    n = v.norm(dim=-1, keepdim=True)
    sinc = torch.where(n > 1e-8, torch.sin(n) / n.clamp_min(1e-8), 1 - n ** 2 / 6)   # sin(n)/n, stable at 0
    return torch.cos(n) * x + sinc * v


def sphere_dist(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Great-circle distance (B,) between x, y: (B, 3) (or broadcasting), as atan2(|x cross y|, <x, y>),
    accurate for near and near-antipodal points alike (arccos is not)."""
    return torch.atan2(torch.linalg.cross(x, y, dim=-1).norm(dim=-1), (x * y).sum(-1))


def sphere_log(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """log_x(y): (B, 3), the tangent vector at x of length d(x, y) pointing to y (undefined for antipodes,
    where every direction is a shortest path; there it returns a vector of the right length anyway)."""
    u = tangent(x, y - x)                                     # = y - <x, y> x, the direction to y
    n = u.norm(dim=-1, keepdim=True)
    return sphere_dist(x, y)[..., None] * u / n.clamp_min(1e-12)


# -- the flat torus T^2 = R^2 / (2 pi Z)^2 ----------------------------------------------------

def wrap(a: torch.Tensor) -> torch.Tensor:
    """Angles a: (...) into [0, 2 pi)."""
    return torch.remainder(a, TWO_PI)


def torus_log(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """log_x(y): (B, 2), the wrapped difference y - x in [-pi, pi)^2: the short way round each circle."""
    return torch.remainder(y - x + math.pi, TWO_PI) - math.pi


def torus_exp(x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """exp_x(v) = wrap(x + v): straight lines in the angle square, re-entering at the opposite edge."""
    return wrap(x + v)


def torus_dist(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Flat-torus geodesic distance (B,) = |torus_log(x, y)|."""
    return torus_log(x, y).norm(dim=-1)


def exp_map(manifold: str, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """exp_x(v) on `manifold` ("sphere" or "torus"); x, v: (B, 3) or (B, 2)."""
    return _geo(manifold)[0](x, v)


def log_map(manifold: str, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """log_x(y) on `manifold`; x, y: (B, 3) or (B, 2)."""
    return _geo(manifold)[1](x, y)


def dist(manifold: str, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Geodesic distance (B,) on `manifold`."""
    return _geo(manifold)[2](x, y)


def uniform(manifold: str, n: int, generator: torch.Generator | None = None, dtype=torch.float32) -> torch.Tensor:
    """n points of the uniform distribution on `manifold`: (n, 3) normalised Gaussians, or (n, 2) angles."""
    check_choice("manifold", manifold, MANIFOLDS)
    check_positive_int("n", n)
    if manifold == "sphere":
        z = torch.randn(n, 3, generator=generator, dtype=torch.float64)
        return (z / z.norm(dim=1, keepdim=True)).to(dtype)
    return (TWO_PI * torch.rand(n, 2, generator=generator, dtype=torch.float64)).to(dtype)
