"""Small image data sets: generated or bundled (no download), plus loaders for online sets.

Scope:
  digits(size)            scikit-learn's bundled 8x8 handwritten digits, upsampled
  shapes(n, size, seed)   circles / squares / triangles with known masks and known geometric
                          transforms (center, scale, angle): segmentation and correspondence
  phantoms(n, size, seed) CT-like ellipse phantoms (Shepp-Logan style) with lesions and masks
  mnist, fashion_mnist, medmnist   online loaders (local files first, then download)
  get_dataset(name, **kw) the registry DATASETS by name

Every function returns images (N, C, H, W) float32 in [-1, 1] and labels (N,) long, either as
a tuple or as a dataclass that unpacks the same way (`images, labels = shapes(100)`) and
carries the extra fields. Generated sets are a pure function of their seed.

Coordinates (shapes): a point is (x, y) in pixels, x to the right (column), y down (row);
pixel (row i, column j) covers [j, j+1) x [i, i+1) and has its center at (j + 0.5, i + 0.5).
"""
from __future__ import annotations

import gzip
import math
import os
import shutil
import struct
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .._validate import check_choice, check_positive_int


def _to_unit_range(x01: torch.Tensor) -> torch.Tensor:
    """[0, 1] -> [-1, 1], clamped."""
    return (x01 * 2 - 1).clamp(-1, 1)


def _resize(images: torch.Tensor, size) -> torch.Tensor:
    """(N, C, h, w) -> (N, C, size, size), bilinear (no-op when size is None or equal)."""
    if size is None or tuple(images.shape[-2:]) == (size, size):
        return images
    check_positive_int("size", size)
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False).clamp(-1, 1)


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
    return _resize(_to_unit_range(x), size).contiguous(), y


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
    classes = tuple(classes)
    if not classes or len(set(classes)) != len(classes):
        raise ValueError(f"classes must be distinct names from {SHAPE_CLASSES}, got {classes!r}")
    for c in classes:
        check_choice("shape class", c, SHAPE_CLASSES)

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

    to_img = lambda v: _to_unit_range(v.clamp(0, 1))[:, None].float().contiguous()  # noqa: E731
    return Phantoms(to_img(value), lesion[:, None], has_lesion, to_img(healthy), brain[:, None])


# ============================================================== online loaders

_IDX_FILES = {True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
              False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
_IDX_MIRRORS = {
    "mnist": ["https://ossci-datasets.s3.amazonaws.com/mnist/",
              "https://storage.googleapis.com/cvdf-datasets/mnist/"],
    "fashion_mnist": ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
}
_TORCHVISION_NAMES = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}
MEDMNIST_NAMES = ("pathmnist", "chestmnist", "dermamnist", "octmnist", "pneumoniamnist",
                  "retinamnist", "breastmnist", "bloodmnist", "tissuemnist", "organamnist",
                  "organcmnist", "organsmnist")
_MEDMNIST_URL = "https://zenodo.org/records/10519652/files/{fname}?download=1"


def default_root() -> Path:
    """Where downloaded data go: $DIFFEDU_DATA, else ~/.cache/diffedu/data."""
    return Path(os.environ.get("DIFFEDU_DATA", Path.home() / ".cache" / "diffedu" / "data"))


def read_idx(path) -> np.ndarray:
    """Read an IDX file (the MNIST format; gzipped or not) into a numpy array.

    Format: 2 zero bytes, a type code (0x08 = uint8), the number of dimensions d, then d
    big-endian uint32 sizes, then the data.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype != 0x08:
        raise ValueError(f"{path} is not a uint8 IDX file (header {raw[:4].hex()})")
    shape = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path}: header says shape {shape} but holds {data.size} values")
    return data.reshape(shape)


def _fetch(url: str, path: Path, timeout: float = 60.0) -> None:
    """Download url to path (through a temporary file, so a failed download leaves nothing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with urllib.request.urlopen(url, timeout=timeout) as r, \
            tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as tmp:
        shutil.copyfileobj(r, tmp)
    os.replace(tmp.name, path)


def _torchvision_download(name: str, root: Path, train: bool) -> bool:
    """Let torchvision download the raw files (into root/<MNIST|FashionMNIST>/raw); False if
    torchvision is not installed."""
    try:
        import torchvision.datasets as tvd
    except ImportError:
        return False
    getattr(tvd, _TORCHVISION_NAMES[name])(str(root), train=train, download=True)
    return True


def _find_idx(name: str, root: Path, stem: str):
    """The first existing copy of an IDX file, in our layout or torchvision's."""
    for folder in (root / name, root / name / "raw", root / _TORCHVISION_NAMES[name] / "raw"):
        for fname in (stem + ".gz", stem):
            if (folder / fname).exists():
                return folder / fname
    return None


def _idx_dataset(name, root, train, download, size, n):
    root = Path(root).expanduser() if root is not None else default_root()
    stems = _IDX_FILES[bool(train)]
    paths = [_find_idx(name, root, s) for s in stems]
    if None in paths and download:
        errors = []
        try:
            if not _torchvision_download(name, root, train):
                raise ImportError("torchvision is not installed")
        except Exception as e:                                    # noqa: BLE001 - reported below
            errors.append(f"torchvision: {e}")
            for stem in stems:
                if _find_idx(name, root, stem) is not None:
                    continue
                for mirror in _IDX_MIRRORS[name]:
                    try:
                        _fetch(mirror + stem + ".gz", root / name / (stem + ".gz"))
                        break
                    except Exception as e2:                       # noqa: BLE001
                        errors.append(f"{mirror}{stem}.gz: {e2}")
        paths = [_find_idx(name, root, s) for s in stems]
        if None in paths:
            raise RuntimeError(
                f"could not download {name} ({'; '.join(errors)}). Connect to the internet and "
                f"retry, or `pip install torchvision`, or copy the files {[s + '.gz' for s in stems]} "
                f"into {root / name}. Offline, use diffedu.data.images.digits() (bundled with "
                f"scikit-learn) or the generated shapes() / phantoms().")
    elif None in paths:
        raise RuntimeError(
            f"{name} files {[s + '.gz' for s in stems]} not found under {root / name} and "
            f"download=False; pass download=True (needs the internet) or copy the files there.")
    images = torch.from_numpy(read_idx(paths[0]).copy())
    labels = torch.from_numpy(read_idx(paths[1]).astype(np.int64))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise RuntimeError(f"{name}: unexpected file contents, images {tuple(images.shape)}, "
                           f"labels {tuple(labels.shape)}")
    if n is not None:
        images, labels = images[:check_positive_int("n", n)], labels[:n]
    x = _to_unit_range(images[:, None].float() / 255.0)
    return _resize(x, size).contiguous(), labels


def mnist(root=None, train: bool = True, download: bool = True, size: int | None = None,
          n: int | None = None):
    """MNIST (LeCun et al.): 60,000 train / 10,000 test digits, 28x28.

    Looks for the IDX files under root/mnist (or torchvision's root/MNIST/raw); if missing
    and `download`, fetches them (with torchvision if installed, else urllib).
    size: resize to size x size (bilinear); n: keep the first n. Raises RuntimeError, saying
    what to do, when the files are neither there nor downloadable.
    Returns images (N, 1, H, W) float32 in [-1, 1], labels (N,) long.
    """
    return _idx_dataset("mnist", root, train, download, size, n)


def fashion_mnist(root=None, train: bool = True, download: bool = True, size: int | None = None,
                  n: int | None = None):
    """Fashion-MNIST (Xiao et al. 2017): 10 clothing classes, 28x28; same API as `mnist`
    (files under root/fashion_mnist or torchvision's root/FashionMNIST/raw)."""
    return _idx_dataset("fashion_mnist", root, train, download, size, n)


def medmnist(name: str = "pneumoniamnist", root=None, split: str = "train", size: int = 28,
             download: bool = True, n: int | None = None):
    """A MedMNIST v2 set (Yang et al. 2023), e.g. "pneumoniamnist", "bloodmnist", "pathmnist".

    Reads root/medmnist/<name>.npz (size 28) or <name>_<size>.npz (64, 128, 224), also
    looking in ~/.medmnist (the `medmnist` package's folder); if missing and `download`,
    fetches it from Zenodo with urllib. split: "train", "val" or "test".
    Returns images (N, C, size, size) float32 in [-1, 1] (C = 1 or 3) and labels: (N,)
    long, or (N, K) for multi-label sets (chestmnist).
    """
    check_choice("name", name, MEDMNIST_NAMES)
    check_choice("split", split, {"train", "val", "test"})
    check_choice("size", size, {28, 64, 128, 224})
    root = Path(root).expanduser() if root is not None else default_root()
    fname = f"{name}.npz" if size == 28 else f"{name}_{size}.npz"
    candidates = [root / "medmnist" / fname, Path.home() / ".medmnist" / fname]
    path = next((p for p in candidates if p.exists()), None)
    if path is None:
        if not download:
            raise RuntimeError(f"{fname} not found in {candidates[0].parent} and download=False; "
                               f"pass download=True (needs the internet) or copy it there.")
        url = _MEDMNIST_URL.format(fname=fname)
        try:
            _fetch(url, candidates[0])
        except Exception as e:                                      # noqa: BLE001
            raise RuntimeError(
                f"could not download {url} ({e}). Connect to the internet and retry, or download "
                f"{fname} by hand (or `pip install medmnist`, which stores it in ~/.medmnist) and put "
                f"it in {candidates[0].parent}. Offline, use digits(), shapes() or phantoms().") from e
        path = candidates[0]
    with np.load(path) as z:
        images, labels = z[f"{split}_images"], z[f"{split}_labels"]
    if n is not None:
        images, labels = images[:check_positive_int("n", n)], labels[:n]
    x = torch.from_numpy(images.astype(np.float32) / 255.0)
    x = x[:, None] if x.ndim == 3 else x.permute(0, 3, 1, 2)      # (N, C, H, W)
    y = torch.from_numpy(labels.astype(np.int64))
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    return _to_unit_range(x).contiguous(), y


# ============================================================== registry

DATASETS = {"digits": digits, "shapes": shapes, "phantoms": phantoms, "mnist": mnist,
            "fashion_mnist": fashion_mnist, "medmnist": medmnist}


def get_dataset(name: str, **kwargs):
    """DATASETS[name](**kwargs); e.g. get_dataset("shapes", n=256, size=16)."""
    check_choice("dataset name", name, DATASETS)
    return DATASETS[name](**kwargs)
