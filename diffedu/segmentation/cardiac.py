"""Synthetic short-axis cardiac MRI with several annotators per image (chapter 12b, survey
sections 6.2 and 6.3).

Scope: a data set small enough to train a segmentation U-Net on a CPU in minutes, with the two
properties the chapter needs: four classes with real anatomy-like structure (survey 6.2:
multi-class segmentation of cardiac MRI), and ground truth that is a *distribution* because
annotators disagree (survey 6.3: conditional segmentation when there is no single right mask).

Classes (`CLASSES`): 0 background, 1 left-ventricle (LV) blood pool, 2 myocardium (the ring of
muscle around the LV), 3 right ventricle (RV) blood pool.

One slice, with S = size pixels and every length in pixels:
    1. anatomy: centre c (jittered), LV ellipse radii r_lv * (e, 1/e) rotated by theta, the
       myocardium as the ring r_lv < rho < r_lv + w, the RV as a crescent on the left of the
       LV (an ellipse minus the dilated LV), 0-2 papillary muscles (small dark blobs inside the
       LV), and an RV "outflow" lobe drawn with half the blood contrast;
    2. image: intensities per tissue (blood bright, muscle dark, body grey, air black) with soft
       edges (a logistic of the signed distance, partial volume), times a smooth bias field
       1 + b . (x, y) + q (x^2 + y^2), plus Gaussian noise; mapped to [-1, 1];
    3. annotators: each draws its own boundaries from the same anatomy: the endo- and
       epicardial radii and the RV radii move by Gaussian offsets (sub-pixel to a pixel), each
       papillary muscle is labelled myocardium or LV blood pool (a coin per annotator: the real
       ambiguity of cardiac contouring), and the faint outflow lobe is included in the RV or
       not (another coin). So the "right" mask is a distribution over these choices.

Everything is drawn from an explicit `torch.Generator`; the same seed gives the same slices.
"""
from __future__ import annotations

import math

import torch

from .._validate import check_int, check_real

__all__ = ["CLASSES", "NUM_CLASSES", "cardiac_slices", "more_annotators", "draw_anatomy", "render_image", "annotate"]

CLASSES = ("background", "LV blood pool", "myocardium", "RV blood pool")
NUM_CLASSES = len(CLASSES)

# Tissue intensities in [0, 1] before the bias field and noise (T1-weighted cine look).
_BLOOD, _MUSCLE, _BODY, _AIR = 0.85, 0.22, 0.45, 0.04


def _u(n, lo, hi, g):
    return lo + (hi - lo) * torch.rand(n, generator=g, dtype=torch.float64)


def draw_anatomy(n: int, size: int = 24, generator: torch.Generator | None = None) -> dict:
    """Random anatomy parameters of n slices (a dict of (n,) or (n, k) float64 tensors, pixels)."""
    n = check_int("n", n, lo=1)
    size = check_int("size", size, lo=16)
    g, S = generator, size
    a = {"cx": S / 2 + _u(n, -1.5, 1.5, g) + 0.12 * S, "cy": S / 2 + _u(n, -1.5, 1.5, g),
         "r_lv": _u(n, 0.13, 0.19, g) * S, "ecc": _u(n, 0.88, 1.12, g), "theta": _u(n, 0, math.pi, g),
         "w": _u(n, 0.075, 0.105, g) * S,
         "rv_a": _u(n, 0.20, 0.26, g) * S, "rv_b": _u(n, 0.30, 0.38, g) * S, "rv_phi": _u(n, -0.35, 0.35, g),
         "n_pap": torch.randint(0, 3, (n,), generator=g).double(),
         "pap_ang": _u(n, 0, 2 * math.pi, g), "pap_r": _u(n, 0.8, 1.2, g),
         "lobe_ang": _u(n, 0.6, 1.1, g) * torch.where(torch.rand(n, generator=g) < 0.5, 1.0, -1.0).double(),
         "body_a": _u(n, 0.42, 0.48, g) * S, "body_b": _u(n, 0.36, 0.44, g) * S,
         "bias": torch.randn(n, 2, generator=g, dtype=torch.float64) * 0.12,
         "bias_q": _u(n, -0.15, 0.1, g), "noise": _u(n, 0.03, 0.08, g)}
    a["size"] = torch.full((n,), float(S), dtype=torch.float64)
    return a


def _grid(S):
    ys, xs = torch.meshgrid(torch.arange(S, dtype=torch.float64) + 0.5, torch.arange(S, dtype=torch.float64) + 0.5,
                            indexing="ij")
    return xs, ys


def _sdf(a, i, d_endo=0.0, d_epi=0.0, d_rv=0.0):
    """Signed distances (negative inside) of one slice's structures on the S x S grid, with
    boundary offsets (pixels) for an annotator. Returns a dict of (S, S) float64 tensors."""
    S = int(a["size"][i])
    xs, ys = _grid(S)
    dx, dy = xs - a["cx"][i], ys - a["cy"][i]
    c, s = math.cos(a["theta"][i]), math.sin(a["theta"][i])
    u, v = (c * dx + s * dy) / a["ecc"][i], (-s * dx + c * dy) * a["ecc"][i]
    rho = (u ** 2 + v ** 2).sqrt()                                     # elliptic radius around the LV
    r_in, r_out = a["r_lv"][i] + d_endo, a["r_lv"][i] + a["w"][i] + d_epi
    # RV: ellipse centred left of the LV, minus the dilated epicardium (a crescent).
    phi = a["rv_phi"][i]
    off = a["r_lv"][i] + a["w"][i] * 0.6
    rx, ry = a["cx"][i] - off * math.cos(phi), a["cy"][i] - off * math.sin(phi)
    ex, ey = (xs - rx) / (a["rv_a"][i] + d_rv), (ys - ry) / (a["rv_b"][i] + d_rv)
    rv_ell = ((ex ** 2 + ey ** 2).sqrt() - 1) * (a["rv_a"][i] + d_rv)
    rv = torch.maximum(rv_ell, -(rho - (r_out + 0.8)))
    # Outflow lobe: a disc beyond the RV's tip (up or down, by lobe_ang's sign).
    la = math.pi + a["lobe_ang"][i]
    lx = a["cx"][i] + (a["r_lv"][i] + a["w"][i] + 0.5 * a["rv_a"][i]) * math.cos(la)
    ly = a["cy"][i] + (a["r_lv"][i] + a["w"][i] + 0.9 * a["rv_b"][i]) * math.sin(la)
    lobe = torch.maximum(((xs - lx) ** 2 + (ys - ly) ** 2).sqrt() - 0.09 * S, -(rho - (r_out + 0.8)))
    paps = []
    for k in range(int(a["n_pap"][i])):
        ang = a["pap_ang"][i] + k * 2.2
        px, py = a["cx"][i] + 0.62 * a["r_lv"][i] * math.cos(ang), a["cy"][i] + 0.62 * a["r_lv"][i] * math.sin(ang)
        paps.append(((xs - px) ** 2 + (ys - py) ** 2).sqrt() - a["pap_r"][i])
    bx, by = (xs - S / 2) / a["body_a"][i], (ys - S / 2) / a["body_b"][i]
    body = ((bx ** 2 + by ** 2).sqrt() - 1) * a["body_a"][i]
    return {"lv": rho - r_in, "epi": rho - r_out, "rv": rv, "lobe": lobe, "paps": paps, "body": body}


def _soft(d, width=0.45):
    return torch.sigmoid(-d / width)                                   # 1 inside, 0 outside, partial volume


def render_image(a: dict, generator: torch.Generator | None = None) -> torch.Tensor:
    """Images (n, 1, S, S) in [-1, 1] of the anatomy `a` (from draw_anatomy): soft tissue
    edges, a smooth multiplicative bias field and Gaussian noise (module doc, step 2)."""
    n, S = len(a["cx"]), int(a["size"][0])
    xs, ys = _grid(S)
    out = torch.empty(n, 1, S, S, dtype=torch.float64)
    for i in range(n):
        d = _sdf(a, i)
        body, epi, lv, rv, lobe = (_soft(d[k]) for k in ("body", "epi", "lv", "rv", "lobe"))
        img = _AIR + (_BODY - _AIR) * body
        img = img + (_MUSCLE - img) * epi                              # myocardium (and LV, filled next)
        img = img + (_BLOOD - img) * lv
        for p in d["paps"]:
            img = img + (_MUSCLE + 0.08 - img) * _soft(p)
        img = img + (_BLOOD - img) * rv
        img = img + ((_BLOOD + _BODY) / 2 - img) * lobe * (1 - rv)      # the faint outflow lobe
        X, Y = (xs - S / 2) / S, (ys - S / 2) / S
        bias = 1 + a["bias"][i, 0] * X * 2 + a["bias"][i, 1] * Y * 2 + a["bias_q"][i] * 4 * (X ** 2 + Y ** 2)
        out[i, 0] = img * bias
    noise = torch.randn(out.shape, generator=generator, dtype=torch.float64) * a["noise"].view(n, 1, 1, 1)
    return ((out + noise) * 2 - 1).clamp(-1, 1).float()


def annotate(a: dict, annotators: int = 4, generator: torch.Generator | None = None,
             spread: float = 1.0) -> torch.Tensor:
    """Label maps (n, annotators, S, S) long in {0, 1, 2, 3} of the anatomy `a`, one per
    annotator, each with its own boundaries (module doc, step 3). spread scales the boundary
    offsets (0: every annotator agrees on the boundaries; the two coins still differ)."""
    annotators = check_int("annotators", annotators, lo=1)
    spread = check_real("spread", spread, lo=0)
    n, S, g = len(a["cx"]), int(a["size"][0]), generator
    out = torch.zeros(n, annotators, S, S, dtype=torch.long)
    offs = torch.randn(n, annotators, 3, generator=g, dtype=torch.float64) * torch.tensor([0.35, 0.55, 0.6]) * spread
    coins = torch.rand(n, annotators, 2, generator=g) < 0.5           # (papillary as muscle, lobe as RV)
    for i in range(n):
        for j in range(annotators):
            d = _sdf(a, i, *offs[i, j].tolist())
            lab = torch.zeros(S, S, dtype=torch.long)
            lab[d["epi"] < 0] = 2
            lab[d["lv"] < 0] = 1
            if coins[i, j, 0]:
                for p in d["paps"]:
                    lab[(p < 0) & (d["lv"] < 0)] = 2
            rv = d["rv"] < 0
            if coins[i, j, 1]:
                rv = rv | ((d["lobe"] < 0) & (d["epi"] >= 0))
            lab[rv & (d["epi"] >= 0)] = 3
            out[i, j] = lab
    return out


def cardiac_slices(n: int, size: int = 24, annotators: int = 4, seed: int = 0, spread: float = 1.0):
    """n synthetic short-axis slices and their annotations, reproducible from `seed`.

    Returns (images (n, 1, S, S) float32 in [-1, 1], labels (n, annotators, S, S) long in
    {0, 1, 2, 3} = CLASSES). Train on (image, one annotator drawn at random); evaluate against
    all annotators (the distribution)."""
    n = check_int("n", n, lo=1)
    size = check_int("size", size, lo=16)
    seed = check_int("seed", seed, lo=0)
    g = torch.Generator().manual_seed(seed)
    a = draw_anatomy(n, size, g)
    return render_image(a, g), annotate(a, annotators, g, spread)


def more_annotators(n: int, size: int = 24, seed: int = 0, annotators: int = 4, annotator_seed: int = 1,
                    spread: float = 1.0) -> torch.Tensor:
    """Fresh annotators for the slices of cardiac_slices(n, size, seed=seed): the same anatomy,
    new independent label maps (n, annotators, S, S) drawn with `annotator_seed`. They are
    samples from the very distribution the annotators come from: an oracle ensemble."""
    n, size = check_int("n", n, lo=1), check_int("size", size, lo=16)
    g = torch.Generator().manual_seed(check_int("seed", seed, lo=0))
    a = draw_anatomy(n, size, g)
    g2 = torch.Generator().manual_seed(check_int("annotator_seed", annotator_seed, lo=0))
    return annotate(a, annotators, g2, spread)
