"""PCK@alpha: the percentage of correct keypoints, the standard score of semantic correspondence.

A predicted point p for a true point q in the target image is correct when

    || p - q ||_2  <=  alpha * max(h, w)            (eq. 1)

with (h, w) the height and width of the target object's bounding box (the normalisation of
SPair-71k and of DIFT's Table 1; PF-PASCAL's older variant uses the image size instead).
Two averages are in use and papers differ on which they report:
  per point   correct points / all points, pooled over the data set
  per image   each image pair's fraction of correct points, then the mean over pairs
They agree when every pair has the same number of points (here: not for triangles, K = 3).
"""
from __future__ import annotations

import torch

from .._validate import check_real, check_tensor

__all__ = ["box_size", "correct_keypoints", "pck"]


def box_size(boxes: torch.Tensor) -> torch.Tensor:
    """max(h, w) of each box (x_min, y_min, x_max, y_max): boxes (..., 4) -> (...)."""
    check_tensor("boxes", boxes)
    if boxes.shape[-1] != 4:
        raise ValueError(f"boxes must have shape (..., 4) as (x_min, y_min, x_max, y_max), got {tuple(boxes.shape)}")
    return torch.maximum(boxes[..., 2] - boxes[..., 0], boxes[..., 3] - boxes[..., 1])


def correct_keypoints(pred: torch.Tensor, target: torch.Tensor, size: torch.Tensor, alpha: float = 0.1) -> torch.Tensor:
    """Eq. 1 per point. pred, target: (P, 2) pixel (x, y); size: (P,) or one number, the
    target object's max(h, w) in pixels; alpha > 0. Returns (P,) bool."""
    check_tensor("pred", pred, ndim=2, finite=True)
    check_tensor("target", target, ndim=2, finite=True)
    if pred.shape != target.shape or pred.shape[-1] != 2:
        raise ValueError(f"pred and target must both have shape (P, 2), got {tuple(pred.shape)} and {tuple(target.shape)}")
    alpha = check_real("alpha", alpha, lo=0, lo_open=True)
    size = torch.as_tensor(size, dtype=pred.dtype)
    if bool((size <= 0).any()):
        raise ValueError(f"size (the box's larger side) must be > 0, got {size}")
    return (pred - target).norm(dim=-1) <= alpha * size


def pck(correct: torch.Tensor, pair: torch.Tensor | None = None) -> dict:
    """PCK from per-point outcomes. correct: (P,) bool; pair: (P,) long, which image pair each
    point belongs to (None: one pair). Returns {"per_point": float, "per_image": float} in [0, 1]."""
    if not isinstance(correct, torch.Tensor) or correct.dtype != torch.bool or correct.ndim != 1:
        raise TypeError(f"correct must be a 1-D bool tensor, got {getattr(correct, 'dtype', type(correct).__name__)}")
    if correct.numel() == 0:
        raise ValueError("correct is empty: PCK needs at least one keypoint")
    if pair is None:
        pair = torch.zeros(len(correct), dtype=torch.long)
    if pair.shape != correct.shape:
        raise ValueError(f"pair must have shape {tuple(correct.shape)} (one id per point), got {tuple(pair.shape)}")
    ids, inverse = torch.unique(pair, return_inverse=True)
    hits = torch.zeros(len(ids)).index_add_(0, inverse, correct.float())
    counts = torch.zeros(len(ids)).index_add_(0, inverse, torch.ones(len(correct)))
    return {"per_point": correct.float().mean().item(), "per_image": (hits / counts).mean().item()}
