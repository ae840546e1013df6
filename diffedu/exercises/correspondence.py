"""Exercises of chapter 15 (semantic correspondence), each graded on fixed random inputs.

    pck_at_alpha    PCK@alpha per point, with the target boxes' larger side as the normaliser
    cosine_match    the target pixel whose feature has the largest cosine similarity with a descriptor
"""
from __future__ import annotations

import torch

from . import Exercise


def _rand(*shape, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(*shape, generator=g)


# -- reference solutions (kept short: they are what `solution` prints) --------------------
def pck_at_alpha(pred, target, boxes, alpha):
    """Fraction of points with |pred - target| <= alpha * max(box width, box height).
    pred, target: (P, 2); boxes: (P, 4) as (x_min, y_min, x_max, y_max) of each point's target object."""
    size = torch.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    return ((pred - target).norm(dim=1) <= alpha * size).float().mean()


def cosine_match(v, feat):
    """For descriptors v: (P, C) and a feature map feat: (C, H, W), the (x, y) pixel centre (j + 0.5, i + 0.5)
    of the best cosine match of each descriptor: (P, 2)."""
    C, H, W = feat.shape
    f = feat.reshape(C, -1)
    sim = (v / v.norm(dim=1, keepdim=True)) @ (f / f.norm(dim=0, keepdim=True))      # (P, H*W)
    best = sim.argmax(1)
    return torch.stack([best % W, best // W], 1).float() + 0.5


def _pck_case(k, alpha):
    target = 30 * torch.rand(12, 2, generator=torch.Generator().manual_seed(k))
    lo = target - 2 - 8 * torch.rand(12, 2, generator=torch.Generator().manual_seed(50 + k))
    boxes = torch.cat([lo, lo + 6 + 14 * torch.rand(12, 2, generator=torch.Generator().manual_seed(90 + k))], 1)
    return {"pred": target + _rand(12, 2, seed=20 + k, scale=2.0), "target": target, "boxes": boxes, "alpha": alpha}


EXERCISES = [
    Exercise("pck_at_alpha", "15",
             "write PCK@alpha: the fraction of predicted points within alpha * max(h, w) of the target box",
             pck_at_alpha,
             lambda: [_pck_case(k, a) for k, a in enumerate([0.05, 0.1, 0.2])],
             "The box's larger side is max(x_max - x_min, y_max - y_min); a point is correct when its Euclidean "
             "distance is <= alpha times that side; return the mean of the correct flags as a float."),
    Exercise("cosine_match", "15",
             "return, for each descriptor, the pixel centre (x, y) of its best cosine match in a feature map",
             cosine_match,
             lambda: [{"v": _rand(5, 8, seed=k), "feat": _rand(8, 6, 7, seed=30 + k)} for k in range(3)],
             "Normalise the descriptors over C and every pixel's feature over C, take the (P, H*W) matrix of dot "
             "products, then argmax; a flat index b is row b // W, column b % W, centre (column + 0.5, row + 0.5)."),
]


def _self_check():
    """The references agree with the package (the exercises cannot drift from diffedu.correspondence)."""
    from ..correspondence import dift, pck
    c = _pck_case(0, 0.1)
    correct = pck.correct_keypoints(c["pred"], c["target"], pck.box_size(c["boxes"]), 0.1)
    assert abs(pck_at_alpha(**c).item() - pck.pck(correct)["per_point"]) < 1e-6
    feat = _rand(8, 6, 7, seed=3)
    pts = torch.tensor([[0.5, 0.5], [3.5, 2.5], [6.5, 5.5]])
    torch.testing.assert_close(cosine_match(dift.sample_at(feat, pts), feat), pts)      # a point matches itself
    torch.testing.assert_close(cosine_match(dift.sample_at(feat, pts), feat * 2 + 0),
                               dift.match_points(feat, feat * 2, pts))
