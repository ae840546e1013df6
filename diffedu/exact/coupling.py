"""Couplings of data and noise, and the straight lines flow matching trains on (chapter 04).

A coupling is a set of pairs (x0_i, x1_i), data and noise; conditional flow matching regresses the
velocity x1 - x0 along the straight line x_tau = (1 - tau) x0 + tau x1 of each pair. Where lines of
different pairs cross, one point x_tau carries several targets and the learned (marginal) velocity
averages them, so the flow's own paths bend. The paths of an ODE never cross (its solutions are
unique), whatever the coupling; the *training lines* of an independent coupling cross often, those
of a reflow coupling (x0 = ODE(x1)) rarely. `crossing_fraction` counts them in the plane.
"""
from __future__ import annotations

import torch

from .._validate import check_tensor

__all__ = ["crossing_fraction"]


def _orient(p: torch.Tensor, q: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """sign of the 2D cross product (q - p) x (r - p), broadcast over leading dimensions."""
    return torch.sign((q[..., 0] - p[..., 0]) * (r[..., 1] - p[..., 1]) - (q[..., 1] - p[..., 1]) * (r[..., 0] - p[..., 0]))


def crossing_fraction(x0: torch.Tensor, x1: torch.Tensor) -> float:
    """The fraction of pairs i < j whose segments [x0_i, x1_i] and [x0_j, x1_j] cross in the plane
    (proper crossings: each segment's ends lie strictly on both sides of the other's line).
    x0, x1: (N, 2) with N >= 2. Memory O(N^2): keep N to a few thousand."""
    check_tensor("x0", x0, ndim=2)
    check_tensor("x1", x1, ndim=2)
    if x0.shape != x1.shape or x0.shape[1] != 2 or len(x0) < 2:
        raise ValueError(f"x0 and x1 must both have shape (N, 2) with N >= 2, got {tuple(x0.shape)} and {tuple(x1.shape)}")
    a0, a1 = x0.double(), x1.double()
    P, Q, R, S = a0[:, None], a1[:, None], a0[None], a1[None]          # segment i against segment j
    cross = (_orient(P, Q, R) * _orient(P, Q, S) < 0) & (_orient(R, S, P) * _orient(R, S, Q) < 0)
    n = len(a0)
    return float(cross.triu(1).sum()) / (n * (n - 1) / 2)
