"""Shapes with known keypoints, carried through random warps, colours and textures.

Scope: the data of chapter 15. diffedu's `shapes` (data/images.py) draws one grey circle,
square or triangle per image, at any angle, with named keypoints (`canonical_keypoints`). For
semantic correspondence two things change here:
  1. the angle stays within +-`max_angle`, so "the top-left corner" names one corner (at any
     angle a square's four corners look alike and no feature could tell them apart);
  2. every image gets its own colours, textures and a smooth non-rigid warp, so the colour of
     a pixel says nothing about where it sits on the shape: raw pixels fail, and a feature has
     to know the shape's geometry to find the same corner again.

Notation (pixels, (x, y), y down, pixel (i, j) has its centre at (j + 0.5, i + 0.5)):
  c, s, R(a)   centre, circumradius and rotation of the shape: canonical point u sits at
               q = c + s R(a) u in the unwarped plane (as in data.images.Shapes)
  d(p)         the warp's displacement field: the image shows at pixel p what the unwarped
               plane shows at q = p + d(p); d is a sum of a few low-frequency sinusoids with
               |grad d| < 1, so p -> p + d(p) is invertible
  k            a keypoint in the image: the solution of k + d(k) = c + s R(a) u (fixed point)
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .._validate import check_int, check_positive_int, check_real
from ..data.images import SHAPE_CLASSES, _inside_canonical, canonical_keypoints, check_shape_classes

__all__ = ["WarpedShapes", "warped_shapes", "same_class_pairs", "bounding_boxes", "KEYPOINT_NAMES"]

KEYPOINT_NAMES = {"circle": ("right", "bottom", "left", "top"),          # y points down on screen
                  "square": ("bottom-right", "bottom-left", "top-left", "top-right"),
                  "triangle": ("bottom", "top-left", "top-right")}


def _displacement(p: torch.Tensor, amp, freq, phase, direction) -> torch.Tensor:
    """d(p) for p: (N, P, 2) pixels; amp (N, M), freq (N, M, 2), phase (N, M), direction (N, M, 2).
    d(p) = sum_m amp_m * direction_m * sin(<freq_m, p> + phase_m): (N, P, 2)."""
    arg = torch.einsum("npd,nmd->npm", p, freq) + phase[:, None]          # (N, P, M)
    return torch.einsum("npm,nmd->npd", amp[:, None] * torch.sin(arg), direction)


def _textures(coords: torch.Tensor, g: torch.Generator, n: int, size: int) -> torch.Tensor:
    """Random stripe textures in [-1, 1]: (N, 1, H, W). coords: (H*W, 2) pixel centres."""
    theta = math.pi * torch.rand(n, generator=g)
    wavelength = size * (0.12 + 0.25 * torch.rand(n, generator=g))
    phase = 2 * math.pi * torch.rand(n, generator=g)
    k = torch.stack([torch.cos(theta), torch.sin(theta)], 1) * (2 * math.pi / wavelength)[:, None]
    return torch.sin(coords @ k.T + phase).T.reshape(n, 1, size, size)


def bounding_boxes(masks: torch.Tensor) -> torch.Tensor:
    """Tight box of each mask, (N, 4) as (x_min, y_min, x_max, y_max) in pixel-edge units (a
    1-pixel object at (i, j) gives (j, i, j + 1, i + 1)). masks: (N, 1, H, W) or (N, H, W) bool."""
    if masks.ndim == 4:
        masks = masks[:, 0]
    if masks.ndim != 3:
        raise ValueError(f"masks must have shape (N, 1, H, W) or (N, H, W), got {tuple(masks.shape)}")
    if not bool(masks.flatten(1).any(1).all()):
        raise ValueError("every mask must hold at least one pixel to have a bounding box")
    rows, cols = masks.any(2), masks.any(1)                                   # (N, H), (N, W)
    first = lambda m: m.float().argmax(1)                                     # noqa: E731
    last = lambda m: m.shape[1] - 1 - m.flip(1).float().argmax(1)             # noqa: E731
    return torch.stack([first(cols), first(rows), last(cols) + 1, last(rows) + 1], 1).float()


@dataclass(frozen=True)
class WarpedShapes:
    """Output of `warped_shapes`. Unpacks as `images, labels = data`.

    images: (N, 3, H, W) float32 in [-1, 1]; labels: (N,) long, index into `classes`;
    masks: (N, 1, H, W) bool (pixels whose warped centre lies inside the shape);
    keypoints: list of N tensors (K_n, 2), pixel (x, y) of the class's canonical keypoints
    (K = 4, 4, 3 for circle, square, triangle; names in KEYPOINT_NAMES) after the warp;
    boxes: (N, 4) the masks' tight boxes (x_min, y_min, x_max, y_max);
    center, scale, angle: (N, 2), (N,), (N,) the similarity transform before the warp.
    """
    images: torch.Tensor
    labels: torch.Tensor
    masks: torch.Tensor
    keypoints: list
    boxes: torch.Tensor
    center: torch.Tensor
    scale: torch.Tensor
    angle: torch.Tensor
    classes: tuple

    def __iter__(self):
        return iter((self.images, self.labels))

    def __len__(self):
        return self.images.shape[0]

    def keypoint_names(self, n: int) -> tuple:
        """Names of image n's keypoints, in the order of `keypoints[n]`."""
        return KEYPOINT_NAMES[self.classes[int(self.labels[n])]]


def warped_shapes(n: int, size: int = 32, seed: int = 0, classes=SHAPE_CLASSES, max_angle: float = math.pi / 6,
                  warp: float = 0.05, colours: bool = True, textures: bool = True) -> WarpedShapes:
    """n images of one shape each, with keypoints, under random similarity transforms, smooth
    warps, colours and stripe textures (the seed fixes everything).

    size: side in pixels (>= 16); classes: subset of ("circle", "square", "triangle");
    max_angle: rotations are uniform in [-max_angle, max_angle] (radians, < pi / 4 keeps the
    keypoints' names meaningful); warp: displacement amplitude as a fraction of `size` (0: none);
    colours: random foreground and background colours (else white on black); textures: stripes
    of random wavelength, angle and phase, one on the shape and another on the background.
    The circumradius is uniform in [0.28, 0.4] * size. Returns a `WarpedShapes`.
    """
    check_positive_int("n", n)
    check_positive_int("size", size)
    if size < 16:
        raise ValueError(f"size must be >= 16, got {size}")
    classes = check_shape_classes(classes)
    max_angle = check_real("max_angle", max_angle, lo=0, hi=math.pi / 4)
    warp = check_real("warp", warp, lo=0, hi=0.1)

    g = torch.Generator().manual_seed(seed)
    u = lambda *shape: torch.rand(*shape, generator=g)                        # noqa: E731
    labels = torch.randint(len(classes), (n,), generator=g)
    scale = size * (0.28 + 0.12 * u(n))
    margin = scale[:, None] + warp * size * 2 + 1.0
    center = margin + (size - 2 * margin).clamp(min=0) * u(n, 2)
    angle = max_angle * (2 * u(n) - 1)
    # Warp: M = 3 sinusoids of wavelength >= size (so |grad d| <= 3 * amp * 2 pi / size < 1).
    M = 3
    amp = warp * size * u(n, M) / M
    freq = (2 * math.pi / size) * (2 * u(n, M, 2) - 1)
    phase, direction = 2 * math.pi * u(n, M), torch.nn.functional.normalize(torch.randn(n, M, 2, generator=g), dim=-1)

    coords = torch.arange(size, dtype=torch.float32) + 0.5
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    pix = torch.stack([xx, yy], dim=-1).reshape(-1, 2)                        # (H*W, 2)
    q = pix[None] + _displacement(pix.expand(n, -1, -1), amp, freq, phase, direction)   # (N, H*W, 2)
    c, s = torch.cos(angle), torch.sin(angle)
    R = torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)  # (N, 2, 2)
    canon = (q - center[:, None]) @ R / scale[:, None, None]                  # R^T (q - c) / s
    masks = _inside_canonical(canon, labels[:, None], classes).reshape(n, 1, size, size)

    # Appearance: colours with a contrast of at least 0.8 (Euclidean, RGB in [-1, 1]).
    if colours:
        fg, bg = 2 * u(n, 3) - 1, 2 * u(n, 3) - 1
        low = (fg - bg).norm(dim=1) < 0.8
        bg[low] = -fg[low].sign() * 0.8                                      # push the background away
    else:
        fg, bg = torch.ones(n, 3), -torch.ones(n, 3)
    fg_img, bg_img = fg[:, :, None, None].expand(n, 3, size, size), bg[:, :, None, None].expand(n, 3, size, size)
    if textures:
        tex_fg, tex_bg = _textures(pix, g, n, size), _textures(pix, g, n, size)
        fg_img, bg_img = fg_img + 0.35 * tex_fg, bg_img + 0.35 * tex_bg
    images = torch.where(masks, fg_img, bg_img).clamp(-1, 1).float()

    # Keypoints: solve k + d(k) = c + s R u by the fixed point k <- target - d(k) (a contraction),
    # all images at once with every class padded to 4 points (the triangle repeats its last).
    canon = torch.stack([torch.cat([canonical_keypoints(name), canonical_keypoints(name)[-1:]])[:4]
                         for name in classes])                                # (classes, 4, 2)
    target = center[:, None] + scale[:, None, None] * canon[labels] @ R.transpose(1, 2)   # (N, 4, 2)
    k = target.clone()
    for _ in range(30):
        k = target - _displacement(k, amp, freq, phase, direction)
    counts = [len(canonical_keypoints(name)) for name in classes]
    keypoints = [k[i, :counts[int(labels[i])]] for i in range(n)]
    return WarpedShapes(images, labels, masks, keypoints, bounding_boxes(masks), center, scale, angle, classes)


def same_class_pairs(data: WarpedShapes, n_pairs: int, seed: int = 0) -> torch.Tensor:
    """n_pairs random (source, target) index pairs of different images of the same class,
    (n_pairs, 2) long (the seed fixes them)."""
    check_positive_int("n_pairs", n_pairs)
    check_int("seed", seed)
    g = torch.Generator().manual_seed(seed)
    by_class = [torch.nonzero(data.labels == k).flatten() for k in range(len(data.classes))]
    usable = [idx for idx in by_class if len(idx) >= 2]
    if not usable:
        raise ValueError("data must hold at least two images of one class to make pairs")
    pairs = []
    for _ in range(n_pairs):
        idx = usable[int(torch.randint(len(usable), (1,), generator=g))]
        a, b = torch.randperm(len(idx), generator=g)[:2]
        pairs.append((int(idx[a]), int(idx[b])))
    return torch.tensor(pairs, dtype=torch.long)
