"""Exercises of chapter 12b (segmentation by diffusion), each graded on fixed random label maps.

    dice_per_class   Dice of one label map against another, per class, with the empty-empty convention
    ged              the squared generalized energy distance between a set of samples and of annotations
    ensemble         the implicit ensemble: class probabilities and the variance map of K sampled masks
"""
from __future__ import annotations

import torch

from . import Exercise

C = 4


def _labels(*shape, seed=0, hi=C):
    return torch.randint(0, hi, shape, generator=torch.Generator().manual_seed(seed))


# -- reference solutions (kept short: they are what `solution` prints) --------------------
def dice_per_class(pred, target, num_classes):
    """pred, target: (H, W) label maps -> (num_classes,) Dice; 1 where a class is in neither map."""
    out = torch.ones(num_classes, dtype=torch.float64)
    for c in range(num_classes):
        p, y = pred == c, target == c
        den = p.sum() + y.sum()
        if den > 0:
            out[c] = 2 * (p & y).sum() / den
    return out


def ged(samples, annotations, num_classes):
    """samples (M, H, W), annotations (N, H, W) -> GED^2 = 2 E d(S, Y) - E d(S, S') - E d(Y, Y'),
    d = 1 - mean IoU over the classes 1..C-1 (IoU = 1 for a class in neither map), all pairs."""
    def d(a, b):
        ious = []
        for c in range(1, num_classes):
            inter, union = ((a == c) & (b == c)).sum(), ((a == c) | (b == c)).sum()
            ious.append(1.0 if union == 0 else float(inter) / float(union))
        return 1 - sum(ious) / len(ious)

    def mean_d(A, B):
        return sum(d(a, b) for a in A for b in B) / (len(A) * len(B))
    return torch.tensor(2 * mean_d(samples, annotations) - mean_d(samples, samples) - mean_d(annotations, annotations),
                        dtype=torch.float64)


def ensemble(samples, num_classes):
    """samples (K, H, W) label maps -> (probs (num_classes, H, W), variance (H, W)):
    probs = the mean of the one-hot samples, variance = sum_c probs_c (1 - probs_c)."""
    onehot = torch.nn.functional.one_hot(samples, num_classes).double()    # (K, H, W, C)
    probs = onehot.mean(0).permute(2, 0, 1)
    return probs, (probs * (1 - probs)).sum(0)


EXERCISES = [
    Exercise("dice_per_class", "12b",
             "write the Dice score of a predicted label map against a target, one number per class "
             "(1 when the class is in neither map)",
             dice_per_class,
             lambda: [{"pred": _labels(6, 6, seed=k, hi=hp), "target": _labels(6, 6, seed=10 + k, hi=hy), "num_classes": C}
                      for k, (hp, hy) in enumerate([(4, 4), (4, 2), (2, 2)])],
             "Dice_c = 2 |P_c and Y_c| / (|P_c| + |Y_c|) with P_c = (pred == c). When both are empty the "
             "denominator is 0: return 1 there (the two maps agree that class c is absent)."),
    Exercise("ged", "12b",
             "write the squared generalized energy distance between M sampled masks and N annotations, "
             "with d = 1 - mean foreground IoU",
             ged,
             lambda: [{"samples": _labels(m, 5, 5, seed=k), "annotations": _labels(n, 5, 5, seed=20 + k, hi=hi),
                       "num_classes": C} for k, (m, n, hi) in enumerate([(3, 4, 4), (1, 3, 4), (2, 2, 3)])],
             "Average d over every pair (sample, annotation), every pair of samples and every pair of annotations "
             "(the pairs of one mask with itself included, where d = 0): GED^2 = 2 cross - samples - annotations. "
             "d(a, b) = 1 - mean over c = 1..C-1 of |a=c and b=c| / |a=c or b=c|, IoU = 1 when the union is empty."),
    Exercise("ensemble", "12b",
             "from K sampled label maps, return the class probabilities (mean of the one-hot samples) and the "
             "variance map sum_c p_c (1 - p_c)",
             ensemble,
             lambda: [{"samples": _labels(k, 4, 4, seed=30 + k), "num_classes": C} for k in (1, 5, 10)],
             "One-hot the samples to (K, H, W, C) and average over K: that is p. The variance of a 0/1 "
             "variable with mean p is p (1 - p); sum it over the classes. Return (probs (C, H, W), variance (H, W))."),
]


def _self_check():
    """The references agree with diffedu.segmentation (the exercises cannot drift from the package)."""
    from ..segmentation import diffseg, metrics
    p, y = _labels(6, 6, seed=1), _labels(6, 6, seed=2, hi=2)
    torch.testing.assert_close(dice_per_class(p, y, C), metrics.dice(p[None], y[None], C)[0])
    s, a = _labels(3, 5, 5, seed=3), _labels(4, 5, 5, seed=4)
    torch.testing.assert_close(ged(s, a, C), metrics.generalized_energy_distance(s[None], a[None], C)[0])
    k = _labels(5, 4, 4, seed=5)
    probs, _, var = diffseg.ensemble_stats(k[None], C)
    torch.testing.assert_close(ensemble(k, C), (probs[0], var[0]))
