"""Segmentation metrics: overlap per class, distance between mask distributions, calibration,
and whether an uncertainty map points at the errors (chapter 12b, survey sections 6.2, 6.3).

Notation: B images, C classes (0 = background), H x W pixels; a label map is a long tensor
(B, H, W) with values in {0, ..., C-1}; a set of masks per image (samples or annotators) is
(B, M, H, W); class probabilities are (B, C, H, W).

    dice(p, y) = 2 |P_c & Y_c| / (|P_c| + |Y_c|)   per class c (the F1 score of the pixels)
    iou(p, y)  =   |P_c & Y_c| / |P_c | Y_c|       per class c (the Jaccard index)
    Empty-empty convention: when class c is absent from both maps, Dice = IoU = 1 (the two
    agree perfectly about c). It is the convention of Kohl et al. (2018) for the GED.

    d(p, y) = 1 - mean_{c >= 1} iou_c(p, y)      the distance inside the GED (foreground classes)
    GED^2(S, Y) = 2 E d(S, Y) - E d(S, S') - E d(Y, Y')      (Kohl et al. 2018, eq. 4)
      with S, S' drawn from the M predicted samples and Y, Y' from the N annotations, all pairs
      (i = i' included, where d = 0), as the published estimator does. A deterministic method
      (M identical samples) has E d(S, S') = 0 and pays the full cross term: it cannot match a
      distribution.

    ECE = sum_b (n_b / n) |acc_b - conf_b|   (Guo et al. 2017), bins b of the confidence
      max_c p_c; acc_b is the fraction of annotators that agree with argmax_c p_c (the expected
      accuracy against an annotator drawn at random, so ambiguous pixels are graded softly).

Every function checks label maps: a value outside {0, ..., C-1} (an unknown class) raises a
ValueError that names the argument and the unknown values.
"""
from __future__ import annotations

import torch

from .._validate import check_int, check_positive_int, check_tensor

__all__ = ["check_labels", "confusion_counts", "dice", "iou", "mask_distance", "generalized_energy_distance",
           "expected_calibration_error", "reliability", "uncertainty_error_correlation", "annotator_error"]


def check_labels(name: str, labels, num_classes: int, ndim: int = 3) -> torch.Tensor:
    """labels: an integer tensor with `ndim` dimensions and values in {0, ..., num_classes-1};
    returned as long. Floats are refused (a probability map is not a label map), and so are
    unknown classes, named in the message."""
    num_classes = check_positive_int("num_classes", num_classes)
    check_tensor(name, labels, floating=False)
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise TypeError(f"{name} must be an integer label map (values 0..{num_classes - 1}), got dtype "
                        f"{labels.dtype}; turn probabilities into labels with .argmax(1)")
    if labels.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {tuple(labels.shape)}")
    labels = labels.long()
    bad = (labels < 0) | (labels >= num_classes)
    if bool(bad.any()):
        unknown = sorted(set(labels[bad].unique().tolist()))
        raise ValueError(f"{name} holds unknown classes {unknown[:10]}; this task has {num_classes} classes, "
                         f"labels must lie in 0..{num_classes - 1}")
    return labels


def confusion_counts(pred: torch.Tensor, target: torch.Tensor, num_classes: int):
    """Per image and class, (|P_c & Y_c|, |P_c|, |Y_c|), each (B, C) float64.
    pred, target: (B, H, W) label maps."""
    pred = check_labels("pred", pred, num_classes)
    target = check_labels("target", target, num_classes)
    if pred.shape != target.shape:
        raise ValueError(f"pred has shape {tuple(pred.shape)} but target has {tuple(target.shape)}; they must match")
    P = torch.nn.functional.one_hot(pred.flatten(1), num_classes).double()      # (B, HW, C)
    Y = torch.nn.functional.one_hot(target.flatten(1), num_classes).double()
    return (P * Y).sum(1), P.sum(1), Y.sum(1)


def dice(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Dice per image and class, (B, C) float64 (1 where class c is in neither map).
    pred, target: (B, H, W) label maps."""
    inter, p, y = confusion_counts(pred, target, num_classes)
    den = p + y
    return torch.where(den > 0, 2 * inter / den.clamp_min(1), torch.ones_like(den))


def iou(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """IoU per image and class, (B, C) float64 (1 where class c is in neither map).
    pred, target: (B, H, W) label maps."""
    inter, p, y = confusion_counts(pred, target, num_classes)
    union = p + y - inter
    return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))


def mask_distance(a: torch.Tensor, b: torch.Tensor, num_classes: int) -> torch.Tensor:
    """d = 1 - mean over the foreground classes 1..C-1 of IoU (module doc), (B,) float64.
    a, b: (B, H, W) label maps."""
    return 1 - iou(a, b, num_classes)[:, 1:].mean(1)


def _pairwise(A: torch.Tensor, Bm: torch.Tensor, C: int) -> torch.Tensor:
    """d between every mask of A (B, M, H, W) and of Bm (B, N, H, W): (B, M, N)."""
    B, M, N = A.shape[0], A.shape[1], Bm.shape[1]
    a = A[:, :, None].expand(B, M, N, *A.shape[2:]).reshape(B * M * N, *A.shape[2:])
    b = Bm[:, None].expand(B, M, N, *Bm.shape[2:]).reshape(B * M * N, *Bm.shape[2:])
    return mask_distance(a, b, C).reshape(B, M, N)


def generalized_energy_distance(samples: torch.Tensor, annotations: torch.Tensor, num_classes: int) -> torch.Tensor:
    """The squared generalized energy distance D^2_GED per image (module doc), (B,) float64.

    samples: (B, M, H, W) predicted label maps (M = 1 for a deterministic method);
    annotations: (B, N, H, W) the annotators' label maps. 0 when both sets are the same set."""
    samples = check_labels("samples", samples, num_classes, ndim=4)
    annotations = check_labels("annotations", annotations, num_classes, ndim=4)
    if samples.shape[0] != annotations.shape[0] or samples.shape[2:] != annotations.shape[2:]:
        raise ValueError(f"samples {tuple(samples.shape)} and annotations {tuple(annotations.shape)} must share "
                         f"the batch and image size (B, ., H, W)")
    cross = _pairwise(samples, annotations, num_classes).mean((1, 2))
    ss = _pairwise(samples, samples, num_classes).mean((1, 2))
    yy = _pairwise(annotations, annotations, num_classes).mean((1, 2))
    return 2 * cross - ss - yy


def _check_probs(probs):
    check_tensor("probs", probs, ndim=4, finite=True)
    s = probs.sum(1)
    if bool((probs < -1e-6).any()) or not torch.allclose(s, torch.ones_like(s), atol=1e-4):
        raise ValueError("probs must be class probabilities (B, C, H, W): non-negative, summing to 1 over C")
    return probs


def annotator_error(pred: torch.Tensor, annotations: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Per pixel, the fraction of annotators that disagree with pred: (B, H, W) float64.
    pred: (B, H, W); annotations: (B, N, H, W)."""
    pred = check_labels("pred", pred, num_classes)
    annotations = check_labels("annotations", annotations, num_classes, ndim=4)
    return (annotations != pred[:, None]).double().mean(1)


def reliability(probs: torch.Tensor, annotations: torch.Tensor, bins: int = 10):
    """Reliability diagram data: (confidence (K,), accuracy (K,), count (K,)) per confidence bin
    [k/K, (k+1)/K) (the last bin closed); empty bins give NaN confidence and accuracy.
    probs: (B, C, H, W); annotations: (B, N, H, W)."""
    probs = _check_probs(probs)
    bins = check_int("bins", bins, lo=1)
    conf, pred = probs.double().max(1)                                     # (B, H, W)
    acc = 1 - annotator_error(pred, annotations, probs.shape[1])
    k = (conf * bins).long().clamp(0, bins - 1).flatten()
    count = torch.bincount(k, minlength=bins).double()
    s_conf = torch.bincount(k, conf.flatten(), minlength=bins)
    s_acc = torch.bincount(k, acc.flatten(), minlength=bins)
    return s_conf / count, s_acc / count, count


def expected_calibration_error(probs: torch.Tensor, annotations: torch.Tensor, bins: int = 10) -> float:
    """ECE of pixel-wise class probabilities against the annotators (module doc).
    probs: (B, C, H, W); annotations: (B, N, H, W)."""
    conf, acc, count = reliability(probs, annotations, bins)
    keep = count > 0
    return float(((count[keep] / count.sum()) * (acc[keep] - conf[keep]).abs()).sum())


def uncertainty_error_correlation(uncertainty: torch.Tensor, error: torch.Tensor) -> float:
    """Pearson correlation of an uncertainty map with an error map over all pixels of all
    images (pooled). uncertainty, error: (B, H, W) float. NaN-free: constant maps give 0."""
    check_tensor("uncertainty", uncertainty, ndim=3, finite=True)
    check_tensor("error", error, ndim=3, finite=True)
    if uncertainty.shape != error.shape:
        raise ValueError(f"uncertainty {tuple(uncertainty.shape)} and error {tuple(error.shape)} must have one shape")
    u, e = uncertainty.double().flatten(), error.double().flatten()
    u, e = u - u.mean(), e - e.mean()
    den = (u.pow(2).sum() * e.pow(2).sum()).sqrt()
    return float((u * e).sum() / den) if den > 0 else 0.0
