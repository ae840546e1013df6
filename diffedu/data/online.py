"""Image sets downloaded on first use: MNIST, Fashion-MNIST and MedMNIST.

Scope:
  mnist(root, train, ...)           LeCun et al.: 60,000 / 10,000 digits, 28x28
  fashion_mnist(root, train, ...)   Xiao et al. 2017: 10 clothing classes, 28x28
  medmnist(name, root, split, ...)  MedMNIST v2 (Yang et al. 2023): 12 2D medical sets
  read_idx(path)                    the IDX file format of (Fashion-)MNIST
  default_root()                    $DIFFEDU_DATA, else ~/.cache/diffedu/data

Each loader looks for its files locally first (our layout, torchvision's, the `medmnist`
package's ~/.medmnist) and downloads only when they are missing and download=True, through a
temporary file so that a failed download leaves nothing behind. Offline, the bundled and
generated sets of `images` (digits, shapes, phantoms) need no files at all.
Returns images (N, C, H, W) float32 in [-1, 1] and labels (N,) long, as every set in
diffedu.data.
"""
from __future__ import annotations

import gzip
import os
import shutil
import struct
import tempfile
import urllib.request
from pathlib import Path

import numpy as np
import torch

from .._validate import check_choice, check_positive_int
from ._convert import resize, to_unit_range

__all__ = ["mnist", "fashion_mnist", "medmnist", "read_idx", "default_root", "MEDMNIST_NAMES"]

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
                f"into {root / name}. Offline, use diffedu.data.digits() (bundled with "
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
    x = to_unit_range(images[:, None].float() / 255.0)
    return resize(x, size).contiguous(), labels


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
    return to_unit_range(x).contiguous(), y
