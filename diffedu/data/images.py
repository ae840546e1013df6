"""Small image sets that need no download (bundled or generated), and the registry of all.

Scope:
  digits(size)            scikit-learn's bundled 8x8 handwritten digits, upsampled
  shapes(n, size, seed)   circles / squares / triangles with known masks and known geometric
                          transforms (center, scale, angle): segmentation and correspondence
  phantoms(n, size, seed) CT-like ellipse phantoms (Shepp-Logan style) with lesions and masks
  get_dataset(name, **kw) the registry DATASETS by name, which also lists the downloaded sets
                          of `online` (mnist, fashion_mnist, medmnist)

Every function returns images (N, C, H, W) float32 in [-1, 1] and labels (N,) long, either as
a tuple or as a dataclass that unpacks the same way (`images, labels = shapes(100)`) and
carries the extra fields. Generated sets are a pure function of their seed.

Coordinates (shapes): a point is (x, y) in pixels, x to the right (column), y down (row);
pixel (row i, column j) covers [j, j+1) x [i, i+1) and has its center at (j + 0.5, i + 0.5).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .._validate import check_choice, check_positive_int
from ._convert import resize, to_unit_range
from .online import fashion_mnist, medmnist, mnist

__all__ = ["digits", "shapes", "Shapes", "SHAPE_CLASSES", "canonical_keypoints", "phantoms", "Phantoms",
           "DATASETS", "get_dataset"]


# ============================================================== digits (bundled)

def digits(size: int = 16, split: str | None = None):
    """scikit-learn's 1,797 handwritten digits (8x8, bundled: no download), upsampled.

    size: output side (>= 8), bilinear upsampling. split: None (all), "train" (the 4 of
    every 5 samples with index % 5 != 0: 1,437) or "test" (index % 5 == 0: 360).
    Returns images (N, 1, size, size) float32 in [-1, 1] and labels (N,) long in 0..9.
    """
    from sklearn.datasets import load_digits

    check_positive_int("size", size)
    if size < 8:
        raise ValueError(f"size must be >= 8 (the digits are 8x8), got {size}")
    if split not in (None, "train", "test"):
        raise ValueError(f"unknown split {split!r}; choose one of None, 'train', 'test'")
    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32)[:, None] / 16.0          # (N, 1, 8, 8) in [0, 1]
    y = torch.tensor(d.target, dtype=torch.long)
    if split is not None:
        keep = (torch.arange(len(y)) % 5 != 0) if split == "train" else (torch.arange(len(y)) % 5 == 0)
        x, y = x[keep], y[keep]
    return resize(to_unit_range(x), size).contiguous(), y


# ============================================================== shapes (generated)

SHAPE_CLASSES = ("circle", "square", "triangle")
CIRCLE_RADIUS = 0.8                      # canonical circle radius (square and triangle: circumradius 1)
_TRIANGLE_VERTEX_ANGLES = (math.pi / 2, math.pi / 2 + 2 * math.pi / 3, math.pi / 2 + 4 * math.pi / 3)


def canonical_keypoints(shape: str) -> torch.Tensor:
    """Named points of a canonical shape, (K, 2) in canonical (x, y) coordinates.

    circle: 4 points on its rim at angles 0, 90, 180, 270 degrees; square: its 4 corners
    (+-1/sqrt 2, +-1/sqrt 2) starting at (+, +) and turning; triangle: its 3 vertices at
    angles 90, 210, 330 degrees. Every canonical shape fits in the unit disc.
    """
    check_choice("shape", shape, SHAPE_CLASSES)
    if shape == "circle":
        angles, r = [0.0, math.pi / 2, math.pi, 3 * math.pi / 2], CIRCLE_RADIUS
    elif shape == "square":
        angles, r = [math.pi / 4 + k * math.pi / 2 for k in range(4)], 1.0
    else:
        angles, r = list(_TRIANGLE_VERTEX_ANGLES), 1.0
    a = torch.tensor(angles, dtype=torch.float64)
    return torch.stack([r * torch.cos(a), r * torch.sin(a)], dim=1).float()


def _inside_canonical(p: torch.Tensor, label: torch.Tensor, classes) -> torch.Tensor:
    """p: (..., 2) canonical points, label: broadcastable (...) class index -> bool (...)."""
    x, y = p[..., 0], p[..., 1]
    inside = torch.zeros(p.shape[:-1], dtype=torch.bool)
    for k, name in enumerate(classes):
        if name == "circle":
            m = x ** 2 + y ** 2 <= CIRCLE_RADIUS ** 2
        elif name == "square":
            m = torch.maximum(x.abs(), y.abs()) <= 1 / math.sqrt(2)
        else:  # equilateral triangle, circumradius 1, inradius 1/2: inside all three edges,
            # whose outward normals point away from the opposite vertices
            m = torch.ones_like(x, dtype=torch.bool)
            for va in _TRIANGLE_VERTEX_ANGLES:
                m &= -(x * math.cos(va) + y * math.sin(va)) <= 0.5
        inside |= m & (label == k)
    return inside


@dataclass(frozen=True)
class Shapes:
    """Output of `shapes`. Unpacks as `images, labels = data`.

    images: (N, 1, H, W) float32 in [-1, 1]: background -1, the shape at `intensity`.
    labels: (N,) long, index into `classes`.
    masks: (N, 1, H, W) bool, the pixels whose centers lie inside the shape.
    center: (N, 2) (x, y) pixels; scale: (N,) pixels; angle: (N,) radians; intensity: (N,).
    The transform of image n maps a canonical point p to center + scale * R(angle) p,
    R(a) = [[cos a, -sin a], [sin a, cos a]] (y points down, so a > 0 turns clockwise
    on screen).
    """
    images: torch.Tensor
    labels: torch.Tensor
    masks: torch.Tensor
    center: torch.Tensor
    scale: torch.Tensor
    angle: torch.Tensor
    intensity: torch.Tensor
    classes: tuple

    def __iter__(self):
        return iter((self.images, self.labels))

    def __len__(self):
        return self.images.shape[0]

    def _rotation(self):                                   # (N, 2, 2)
        c, s = torch.cos(self.angle), torch.sin(self.angle)
        return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)

    def to_image(self, points: torch.Tensor) -> torch.Tensor:
        """Canonical points (K, 2) or (N, K, 2) -> pixel (x, y) in each image: (N, K, 2)."""
        points = torch.as_tensor(points, dtype=torch.float32)
        if points.ndim == 2:
            points = points.expand(len(self), *points.shape)
        return self.center[:, None] + self.scale[:, None, None] * points @ self._rotation().transpose(1, 2)

    def to_canonical(self, points: torch.Tensor) -> torch.Tensor:
        """Pixel points (N, K, 2) (or (K, 2), the same in every image) -> canonical (N, K, 2)."""
        points = torch.as_tensor(points, dtype=torch.float32)
        if points.ndim == 2:
            points = points.expand(len(self), *points.shape)
        return (points - self.center[:, None]) @ self._rotation() / self.scale[:, None, None]

    def keypoints(self) -> list:
        """Each image's canonical keypoints (see `canonical_keypoints`) in pixels: a list of
        N tensors (K_n, 2) (K depends on the class)."""
        canon = [canonical_keypoints(name) for name in self.classes]
        R = self._rotation()
        return [self.center[n] + self.scale[n] * canon[int(lbl)] @ R[n].T
                for n, lbl in enumerate(self.labels)]

    def correspond(self, i: int, j: int, points: torch.Tensor) -> torch.Tensor:
        """Semantic correspondence: pixel points (K, 2) in image i -> the same canonical
        points in image j, (K, 2). (Meaningful when both images show the same class.)"""
        points = torch.as_tensor(points, dtype=torch.float32)
        R = self._rotation()
        canon = (points - self.center[i]) @ R[i] / self.scale[i]
        return self.center[j] + self.scale[j] * canon @ R[j].T


def check_shape_classes(classes) -> tuple:
    """classes: distinct names from SHAPE_CLASSES, as a tuple; else a ValueError that lists them."""
    classes = tuple(classes)
    if not classes or len(set(classes)) != len(classes):
        raise ValueError(f"classes must be distinct names from {SHAPE_CLASSES}, got {classes!r}")
    for c in classes:
        check_choice("shape class", c, SHAPE_CLASSES)
    return classes


def shapes(n: int, size: int = 32, seed: int = 0, classes=SHAPE_CLASSES) -> Shapes:
    """Random circles, squares and triangles, one per image, with known geometry.

    n: number of images; size: side in pixels (>= 8); seed: the data are a function of it;
    classes: which shapes, a subset of ("circle", "square", "triangle"), labels index it.
    Each image draws a class, a scale (circumradius) in [0.2, 0.35] * size pixels, a center
    keeping the shape inside the image, an angle in [0, 2 pi) and an intensity in [0.3, 1].
    Returns a `Shapes` (images (N, 1, H, W), labels, masks, center, scale, angle, ...).
    """
    check_positive_int("n", n)
    check_positive_int("size", size)
    if size < 8:
        raise ValueError(f"size must be >= 8, got {size}")
    classes = check_shape_classes(classes)

    g = torch.Generator().manual_seed(seed)
    u = lambda *shape: torch.rand(*shape, generator=g)           # noqa: E731
    labels = torch.randint(len(classes), (n,), generator=g)
    scale = size * (0.2 + 0.15 * u(n))                            # circumradius, pixels
    margin = scale[:, None] + 0.5
    center = margin + (size - 2 * margin) * u(n, 2)               # (x, y), shape inside the image
    angle = 2 * math.pi * u(n)
    intensity = 0.3 + 0.7 * u(n)

    # Render: pull every pixel center back to canonical coordinates and test membership.
    coords = torch.arange(size, dtype=torch.float32) + 0.5
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    pix = torch.stack([xx, yy], dim=-1).reshape(1, -1, 2)         # (1, H*W, 2)
    c, s = torch.cos(angle), torch.sin(angle)
    R = torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)   # (N, 2, 2)
    canon = (pix - center[:, None]) @ R / scale[:, None, None]   # (N, H*W, 2): R^T (p - center) / scale
    masks = _inside_canonical(canon, labels[:, None], classes).reshape(n, 1, size, size)
    images = torch.where(masks, intensity[:, None, None, None], torch.tensor(-1.0))
    return Shapes(images.float(), labels, masks, center, scale, angle, intensity, classes)


# ============================================================== CT phantoms (generated)

@dataclass(frozen=True)
class Phantoms:
    """Output of `phantoms`. Unpacks as `images, labels = data` (labels = has_lesion).

    images: (N, 1, H, W) float32 in [-1, 1] (attenuation 0..1 mapped to -1..1).
    masks: (N, 1, H, W) bool, the lesion pixels (all False without a lesion).
    has_lesion: (N,) long, 0 or 1.
    healthy: (N, 1, H, W) the same phantoms without their lesion (images == healthy exactly
      outside the mask, images > healthy on it).
    brain: (N, 1, H, W) bool, the inside of the skull.
    """
    images: torch.Tensor
    masks: torch.Tensor
    has_lesion: torch.Tensor
    healthy: torch.Tensor
    brain: torch.Tensor

    @property
    def labels(self):
        return self.has_lesion

    def __iter__(self):
        return iter((self.images, self.has_lesion))

    def __len__(self):
        return self.images.shape[0]


def _ellipse(x, y, cx, cy, a, b, theta):
    """Pixels inside the ellipses. x, y: (H, W) grid in [-1, 1]; cx .. theta: (N,) -> (N, H, W)."""
    e = lambda v: v[:, None, None]                                 # noqa: E731
    dx, dy = x - e(cx), y - e(cy)
    c, s = torch.cos(e(theta)), torch.sin(e(theta))
    u, v = c * dx + s * dy, -s * dx + c * dy
    return (u / e(a)) ** 2 + (v / e(b)) ** 2 <= 1


def phantoms(n: int, size: int = 64, seed: int = 0, lesion_prob: float = 0.5, n_inner: int = 3):
    """CT-like head phantoms in the style of Shepp & Logan (1974), randomised.

    Each phantom: a skull (attenuation 1.0) around a brain (0.3), `n_inner` random inner
    ellipses inside the brain adding U(-0.1, 0.1) each, and with probability `lesion_prob`
    one small lesion (semi-axes 0.05..0.1 of the half-width) adding U(0.15, 0.35). Values stay
    in [0, 1] and are mapped to [-1, 1]. size >= 16 (32 or 64 in the book).
    Returns a `Phantoms` (images, masks, has_lesion, healthy, brain).
    """
    check_positive_int("n", n)
    check_positive_int("size", size)
    if size < 16:
        raise ValueError(f"size must be >= 16, got {size}")
    if not 0.0 <= lesion_prob <= 1.0:
        raise ValueError(f"lesion_prob must be in [0, 1], got {lesion_prob!r}")
    if isinstance(n_inner, bool) or not isinstance(n_inner, int) or n_inner < 0:
        raise ValueError(f"n_inner must be a non-negative integer, got {n_inner!r}")

    g = torch.Generator().manual_seed(seed)
    U = lambda lo, hi, *shape: lo + (hi - lo) * torch.rand(*(shape or (n,)), generator=g)   # noqa: E731
    coords = (torch.arange(size, dtype=torch.float32) + 0.5) / size * 2 - 1
    y, x = torch.meshgrid(coords, coords, indexing="ij")          # (H, W), y down

    # 1. Skull and brain: two nested ellipses with a random center, size and tilt.
    cx, cy, th = U(-0.03, 0.03), U(-0.03, 0.03), U(-0.1, 0.1)
    a, b = U(0.66, 0.74), U(0.86, 0.94)
    skull = _ellipse(x, y, cx, cy, a, b, th)
    ab, bb = 0.92 * a, 0.93 * b
    brain = _ellipse(x, y, cx, cy, ab, bb, th)
    value = 1.0 * skull - 0.7 * brain                               # skull ring 1.0, brain 0.3

    def point_in_brain(rmax):
        """Random points inside the brain ellipse, within rmax of its (normalised) radius."""
        r, phi = rmax * torch.sqrt(U(0, 1)), U(0, 2 * math.pi)
        u, v = ab * r * torch.cos(phi), bb * r * torch.sin(phi)
        return cx + torch.cos(th) * u - torch.sin(th) * v, cy + torch.sin(th) * u + torch.cos(th) * v

    # 2. Inner structures (ventricles, spots), clipped to the brain.
    for _ in range(n_inner):
        px, py = point_in_brain(0.6)
        inner = _ellipse(x, y, px, py, U(0.06, 0.22), U(0.06, 0.22), U(0, math.pi)) & brain
        value = value + U(-0.1, 0.1)[:, None, None] * inner        # brain stays in [0, 0.6]

    # 3. Lesion: small and bright, inside the brain.
    has_lesion = (torch.rand(n, generator=g) < lesion_prob).long()
    px, py = point_in_brain(0.65)
    lesion = (_ellipse(x, y, px, py, U(0.05, 0.1), U(0.05, 0.1), U(0, math.pi))
              & brain & has_lesion.bool()[:, None, None])
    healthy = value
    value = value + U(0.15, 0.35)[:, None, None] * lesion

    to_img = lambda v: to_unit_range(v.clamp(0, 1))[:, None].float().contiguous()  # noqa: E731
    return Phantoms(to_img(value), lesion[:, None], has_lesion, to_img(healthy), brain[:, None])


# ============================================================== registry

DATASETS = {"digits": digits, "shapes": shapes, "phantoms": phantoms, "mnist": mnist,
            "fashion_mnist": fashion_mnist, "medmnist": medmnist}


def get_dataset(name: str, **kwargs):
    """DATASETS[name](**kwargs); e.g. get_dataset("shapes", n=256, size=16)."""
    check_choice("dataset name", name, DATASETS)
    return DATASETS[name](**kwargs)
