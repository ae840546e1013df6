"""Data: seeded 2D toy sets and small image sets, all as (N, ...) float tensors.

    toy      points (N, 2): moons, swiss roll, 8 Gaussians, the labelled Gaussian mixture
    images   images (N, C, H, W) in [-1, 1] with no download: digits (bundled with
             scikit-learn), shapes and phantoms (generated, with masks and known geometry);
             the registry `DATASETS` / `get_dataset(name, **kw)` of every image set
    online   images downloaded on first use: mnist, fashion_mnist, medmnist
    scenes   captioned 16x16 scenes of coloured shapes (chapter 12): `from diffedu.data import scenes`

`dd.data.<name>` reaches every public name of the three modules (`dd.data.digits(16)`,
`dd.data.get_dataset("shapes", n=8)`); `images` and `online` are imported on first use.
"""
import importlib

from . import toy
from .toy import TOY, get_toy, gmm_data, toy_gmm

_IMAGES = ("digits", "shapes", "Shapes", "SHAPE_CLASSES", "canonical_keypoints", "phantoms", "Phantoms",
           "DATASETS", "get_dataset")
_ONLINE = ("mnist", "fashion_mnist", "medmnist", "read_idx", "default_root", "MEDMNIST_NAMES")

__all__ = ["toy", "images", "online", "TOY", "get_toy", "gmm_data", "toy_gmm", "digits", "shapes", "Shapes",
           "SHAPE_CLASSES", "canonical_keypoints", "phantoms", "Phantoms", "DATASETS", "get_dataset", "mnist",
           "fashion_mnist", "medmnist", "read_idx", "default_root", "MEDMNIST_NAMES"]


def __getattr__(name):
    if name in ("images", "online"):
        return importlib.import_module(f"{__name__}.{name}")
    if name in _IMAGES:
        return getattr(importlib.import_module(f"{__name__}.images"), name)
    if name in _ONLINE:
        return getattr(importlib.import_module(f"{__name__}.online"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
