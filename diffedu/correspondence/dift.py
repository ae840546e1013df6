"""DIFT: diffusion features as dense descriptors for semantic correspondence (Tang et al. 2023).

Notation (Tang et al. 2023, section 4 "Diffusion Features"; their eq. 1 is the forward process):
  x_0            a clean image (B, C, H, W) in [-1, 1]
  t              the step at which features are read (their t = 261 of 1000 for SD)
  x_t            sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps, eps ~ N(0, I)
  f_l(x_t, t)    the activation of layer l of the denoising network (nets/features.py hook)
  F              the DIFT feature map: the mean of f_l over n_noise draws of eps, upsampled
                 (bilinear) to the image size

Matching a source point p (their section 5.1):
  1. F_s = F(x_0^src), F_t = F(x_0^tgt)                    (the same t, layer and noise seeds)
  2. v   = F_s at p (bilinear: p is in pixel coordinates, not on the grid)
  3. s(q) = <v, F_t(q)> / (|v| |F_t(q)|) for every target pixel q (cosine similarity)
  4. match(p) = the centre of argmax_q s(q)

Controls of the chapter: raw pixel patches (`pixel_features`), the same network untrained,
and a supervised classifier's features (`classifier_features`). Pixel (i, j) has its centre
at (x, y) = (j + 0.5, i + 0.5), the convention of data.images.Shapes.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .._validate import check_int, check_positive_int, check_schedule, check_tensor
from ..nets.features import record_features, select_layers

__all__ = ["noisy", "feature_layers", "dift_features", "pixel_features", "classifier_layers", "classifier_features",
           "sample_at", "cosine_map", "match_points"]


def noisy(x0: torch.Tensor, t: int, schedule, generator: torch.Generator | None = None) -> torch.Tensor:
    """x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps for one integer step t: (B, ...) -> (B, ...)."""
    check_schedule(schedule)
    t = check_int("t", t, lo=0, hi=len(schedule) - 1)
    ab = float(schedule.alpha_bar[t])
    eps = torch.randn(x0.shape, generator=generator).to(x0)
    return ab ** 0.5 * x0 + (1 - ab) ** 0.5 * eps


def feature_layers(model, image_shape) -> list:
    """The layer names `model.features` offers for images of image_shape (C, H, W), in forward order."""
    x = torch.zeros(1, *image_shape)
    with torch.no_grad():
        return list(model.features(x, torch.zeros(1, dtype=torch.long)))


def _upsample(f: torch.Tensor, size) -> torch.Tensor:
    return f if tuple(f.shape[-2:]) == tuple(size) else F.interpolate(f, size=size, mode="bilinear", align_corners=False)


@torch.no_grad()
def dift_features(model, x0: torch.Tensor, t: int, layers, schedule, n_noise: int = 4, seed: int = 0,
                  cond=None, batch: int = 64) -> dict:
    """DIFT feature maps {layer: (B, C_l, H, W)} of images x0: (B, C, H, W), at step t, averaged
    over n_noise draws of eps (independent for every image, seeded by `seed`: shared noise
    would let features match by position alone) and upsampled to H x W. `layers`: a name or a list of
    names of `model.features` (a ValueError lists the valid ones)."""
    check_tensor("x0", x0, ndim=4, finite=True, nonempty=True)
    check_positive_int("n_noise", n_noise)
    if not hasattr(model, "features"):
        raise TypeError(f"model must be a diffedu net with a features(x_t, t, cond, layers) hook, got {type(model).__name__}")
    names = select_layers(feature_layers(model, x0.shape[1:]), layers)
    t = check_int("t", t, lo=0, hi=len(schedule) - 1)
    ab = float(schedule.alpha_bar[t])
    g = torch.Generator().manual_seed(seed)
    eps = torch.randn((n_noise, *x0.shape), generator=g).to(x0)     # independent draws for every image
    out = {name: [] for name in names}
    for start in range(0, len(x0), batch):
        x, acc = x0[start:start + batch], {}
        c = cond[start:start + batch] if isinstance(cond, torch.Tensor) else cond
        for k in range(n_noise):
            xt = ab ** 0.5 * x + (1 - ab) ** 0.5 * eps[k, start:start + batch]
            feats = model.features(xt, torch.full((len(x),), t, dtype=torch.long), c, names)
            for name in names:
                acc[name] = acc.get(name, 0) + feats[name].float() / n_noise
        for name in names:
            out[name].append(_upsample(acc[name], x0.shape[-2:]))
    return {name: torch.cat(v) for name, v in out.items()}


def pixel_features(x: torch.Tensor, patch: int = 5) -> torch.Tensor:
    """Raw-pixel descriptors: the patch x patch neighbourhood of every pixel, zero-padded,
    (B, C, H, W) -> (B, C * patch**2, H, W) (patch odd; 1 gives the pixel's colour)."""
    check_tensor("x", x, ndim=4, finite=True)
    check_positive_int("patch", patch)
    if patch % 2 == 0:
        raise ValueError(f"patch must be odd (centred on the pixel), got {patch}")
    B, C, H, W = x.shape
    return F.unfold(x, patch, padding=patch // 2).reshape(B, C * patch * patch, H, W)


def _classifier_taps(clf) -> dict:
    return {"input": (clf.input_conv, None),
            **{f"encoder.{k}": (m, None) for k, m in enumerate(clf.encoder)}, "out": (None, None)}


def classifier_layers(clf) -> list:
    """Layer names of an ImageClassifier for `classifier_features`: input, encoder.0, ..., out."""
    return list(_classifier_taps(clf))


@torch.no_grad()
def classifier_features(clf, x: torch.Tensor, layer: str, t: int = 0) -> torch.Tensor:
    """Activation of one layer of a nets.classifier.ImageClassifier on x: (B, C, H, W) at step
    t, upsampled to H x W: (B, C_l, H, W). layer: one of `classifier_layers(clf)`."""
    check_tensor("x", x, ndim=4, finite=True)
    taps = _classifier_taps(clf)
    select_layers(taps, [layer])
    if layer == "out":
        raise ValueError("layer 'out' holds logits, not a feature map; choose an 'encoder.k' layer or 'input'")
    f = record_features(taps, [layer], lambda: clf(x, t))[layer]
    return _upsample(f, x.shape[-2:])


def sample_at(feat: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Bilinear read of a feature map at pixel points. feat: (C, H, W); points: (P, 2) pixel
    (x, y) inside [0, W] x [0, H]. Returns (P, C)."""
    check_tensor("feat", feat, ndim=3)
    check_tensor("points", points, ndim=2, finite=True)
    C, H, W = feat.shape
    if points.shape[-1] != 2:
        raise ValueError(f"points must have shape (P, 2) as pixel (x, y), got {tuple(points.shape)}")
    outside = (points[:, 0] < 0) | (points[:, 0] > W) | (points[:, 1] < 0) | (points[:, 1] > H)
    if bool(outside.any()):
        raise ValueError(f"points must lie inside the image, x in [0, {W}] and y in [0, {H}]; "
                         f"got {points[outside][:3].tolist()} outside")
    grid = torch.stack([2 * points[:, 0] / W - 1, 2 * points[:, 1] / H - 1], -1)   # align_corners=False
    out = F.grid_sample(feat[None].float(), grid[None, None].float(), mode="bilinear", align_corners=False,
                        padding_mode="border")
    return out[0, :, 0].T                                                          # (P, C)


def cosine_map(v: torch.Tensor, feat: torch.Tensor) -> torch.Tensor:
    """Step 3: cosine similarity of descriptors v: (P, C) with every pixel of feat: (C, H, W) -> (P, H, W)."""
    check_tensor("v", v, ndim=2)
    check_tensor("feat", feat, ndim=3)
    if v.shape[1] != feat.shape[0]:
        raise ValueError(f"v has {v.shape[1]} channels but feat has {feat.shape[0]}")
    C, H, W = feat.shape
    sim = F.normalize(v.float(), dim=1) @ F.normalize(feat.reshape(C, -1).float(), dim=0)
    return sim.reshape(-1, H, W)


def match_points(feat_src: torch.Tensor, feat_tgt: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Steps 2-4: the target pixel centres (P, 2) that best match source points (P, 2) under
    cosine similarity. feat_src, feat_tgt: (C, H, W) feature maps of the two images."""
    sim = cosine_map(sample_at(feat_src, points), feat_tgt)                        # (P, H, W)
    W = sim.shape[-1]
    best = sim.flatten(1).argmax(1)
    return torch.stack([best % W, best // W], -1).float() + 0.5


def transfer(feats: torch.Tensor, data, pairs: torch.Tensor) -> tuple:
    """Match every keypoint of each (source, target) pair. feats: (N, C, H, W) feature maps of
    data.images; data: a warps.WarpedShapes; pairs: (M, 2) long. Returns (pred, true, size, pair):
    (P, 2) matched and true target points, (P,) the target boxes' larger side, (P,) pair index."""
    check_tensor("feats", feats, ndim=4)
    if len(feats) != len(data):
        raise ValueError(f"feats must hold one feature map per image ({len(data)}), got {len(feats)}")
    from .pck import box_size
    preds, trues, sizes, ids = [], [], [], []
    for m, (i, j) in enumerate(pairs.tolist()):
        if int(data.labels[i]) != int(data.labels[j]):
            raise ValueError(f"pair {m} = ({i}, {j}) joins two classes; keypoints only correspond within one class")
        preds.append(match_points(feats[i], feats[j], data.keypoints[i]))
        trues.append(data.keypoints[j])
        sizes.append(box_size(data.boxes[j]).expand(len(trues[-1])))
        ids.append(torch.full((len(trues[-1]),), m))
    return torch.cat(preds), torch.cat(trues), torch.cat(sizes), torch.cat(ids)


def pck_of(feats: torch.Tensor, data, pairs: torch.Tensor, alpha: float = 0.1) -> dict:
    """PCK@alpha ({"per_point", "per_image"}) of cosine matching with feats: (N, C, H, W) on pairs: (M, 2)."""
    from .pck import correct_keypoints, pck
    pred, true, size, pair = transfer(feats, data, pairs)
    return pck(correct_keypoints(pred, true, size, alpha), pair)
