"""One scoreboard for every segmentation method of chapter 12b, graded against all annotators.

A method hands in, per test image, M label maps (M = 1 for a deterministic method, M = K for
an ensemble) and, where it has them, class probabilities (B, C, H, W). `score` returns one
row: per-class Dice of its prediction (averaged over images and over annotators: the expected
Dice against an annotator drawn at random), the mean Dice of its single samples, the squared
GED of its M samples against the annotators, the ECE of its probabilities and the correlation
of its uncertainty map (sum_c p_c (1 - p_c)) with its error map (the fraction of annotators
that disagree with the prediction). See metrics.py for each definition.
"""
from __future__ import annotations

import torch

from . import metrics as M
from .diffseg import ensemble_stats

__all__ = ["SHORT", "dice_vs_annotators", "score", "format_table"]

SHORT = ("bg", "LV", "MYO", "RV")              # column names of cardiac.CLASSES


def dice_vs_annotators(pred: torch.Tensor, annotations: torch.Tensor, num_classes: int = 4) -> torch.Tensor:
    """Per-class Dice (C,) of pred (B, H, W) against each annotator of (B, N, H, W), averaged
    over images and annotators."""
    N = annotations.shape[1]
    return torch.stack([M.dice(pred, annotations[:, j], num_classes).mean(0) for j in range(N)]).mean(0)


def score(samples: torch.Tensor, annotations: torch.Tensor, probs: torch.Tensor | None = None,
          num_classes: int = 4, calls: int | None = None) -> dict:
    """One row of the scoreboard (module doc). samples: (B, M, H, W); annotations: (B, N, H, W);
    probs: (B, C, H, W) or None (then: the ensemble of the samples). Returns a dict of floats
    ("Dice LV", "Dice MYO", "Dice RV", "fg Dice", "single Dice", "GED2", "ECE", "corr") and "calls"."""
    samples = M.check_labels("samples", samples, num_classes, ndim=4)
    annotations = M.check_labels("annotations", annotations, num_classes, ndim=4)
    ens_probs, pred, _ = ensemble_stats(samples, num_classes)
    if probs is None:
        probs = ens_probs
    else:
        pred = probs.argmax(1)
    unc = (probs * (1 - probs)).sum(1)
    per_class = dice_vs_annotators(pred, annotations, num_classes)
    single = torch.stack([dice_vs_annotators(samples[:, k], annotations, num_classes)[1:].mean()
                          for k in range(samples.shape[1])]).mean()
    names = SHORT if num_classes == len(SHORT) else [f"class {c}" for c in range(num_classes)]
    row = {f"Dice {names[c]}": float(per_class[c]) for c in range(1, num_classes)}
    row.update({"fg Dice": float(per_class[1:].mean()), "single Dice": float(single),
                "GED2": float(M.generalized_energy_distance(samples, annotations, num_classes).mean()),
                "ECE": M.expected_calibration_error(probs, annotations),
                "corr": M.uncertainty_error_correlation(unc, M.annotator_error(pred, annotations, num_classes)),
                "calls": calls})
    return row


def format_table(rows: dict, digits: int = 2) -> str:
    """The scoreboard {method: row} as aligned text (numbers rounded to `digits`)."""
    cols = list(next(iter(rows.values())))
    w = max(len(m) for m in rows) + 2
    head = "method".ljust(w) + "".join(c[:11].rjust(12) for c in cols)
    lines = [head]
    for m, r in rows.items():
        cells = ["-" if r[c] is None else (f"{r[c]:.{digits}f}" if isinstance(r[c], float) else str(r[c])) for c in cols]
        lines.append(m.ljust(w) + "".join(s.rjust(12) for s in cells))
    return "\n".join(lines)
