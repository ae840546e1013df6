"""Tests for diffedu.data.online: the MNIST / Fashion-MNIST / MedMNIST loaders on small fake
files (never the network)."""
import gzip
import struct

import numpy as np
import pytest
import torch

from diffedu.data import online


# ------------------------------------------------------------------ loaders on fake files

def _write_idx(path, array, gz=True):
    array = np.asarray(array, dtype=np.uint8)
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


def _fake_mnist(folder, train=True, gz=True, n=5):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (n, 28, 28)).astype(np.uint8)
    imgs[0] = 0
    imgs[1] = 255
    labels = np.arange(n) % 10
    stem = "train" if train else "t10k"
    sfx = ".gz" if gz else ""
    _write_idx(folder / f"{stem}-images-idx3-ubyte{sfx}", imgs, gz)
    _write_idx(folder / f"{stem}-labels-idx1-ubyte{sfx}", labels, gz)
    return imgs, labels


def _no_network(monkeypatch):
    def fail(*a, **k):
        raise OSError("network disabled in tests")
    monkeypatch.setattr(online, "_fetch", fail)
    monkeypatch.setattr(online, "_torchvision_download", lambda *a: False)


def test_read_idx(tmp_path):
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    _write_idx(tmp_path / "a.gz", arr)
    _write_idx(tmp_path / "b", arr, gz=False)
    assert np.array_equal(online.read_idx(tmp_path / "a.gz"), arr)
    assert np.array_equal(online.read_idx(tmp_path / "b"), arr)
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="IDX"):
        online.read_idx(tmp_path / "bad")


def test_mnist_from_local_files(tmp_path, monkeypatch):
    _no_network(monkeypatch)
    imgs, labels = _fake_mnist(tmp_path / "mnist")
    x, y = online.mnist(root=tmp_path, train=True)
    assert x.shape == (5, 1, 28, 28) and x.dtype == torch.float32
    assert torch.all(x[0] == -1) and torch.all(x[1] == 1)
    torch.testing.assert_close(x[2, 0], torch.tensor(imgs[2] / 255.0 * 2 - 1, dtype=torch.float32))
    assert y.tolist() == labels.tolist() and y.dtype == torch.long
    x32, _ = online.mnist(root=tmp_path, size=32, n=3)
    assert x32.shape == (3, 1, 32, 32) and x32.min() >= -1 and x32.max() <= 1


def test_fashion_mnist_torchvision_layout_uncompressed(tmp_path, monkeypatch):
    _no_network(monkeypatch)
    _fake_mnist(tmp_path / "FashionMNIST" / "raw", train=False, gz=False, n=4)
    x, y = online.fashion_mnist(root=tmp_path, train=False)
    assert x.shape == (4, 1, 28, 28) and y.shape == (4,)


def test_loaders_fail_clearly_offline(tmp_path, monkeypatch):
    _no_network(monkeypatch)
    with pytest.raises(RuntimeError, match="download=False"):
        online.mnist(root=tmp_path, download=False)
    with pytest.raises(RuntimeError, match="pip install torchvision"):
        online.mnist(root=tmp_path, download=True)
    with pytest.raises(RuntimeError, match="could not download"):
        online.medmnist("bloodmnist", root=tmp_path, download=True)
    with pytest.raises(RuntimeError, match="download=False"):
        online.medmnist("bloodmnist", root=tmp_path, download=False)
    assert not list((tmp_path).rglob("*.gz")) and not list(tmp_path.rglob("*.npz"))


def test_medmnist_from_local_npz(tmp_path, monkeypatch):
    _no_network(monkeypatch)
    folder = tmp_path / "medmnist"
    folder.mkdir()
    rng = np.random.default_rng(0)
    np.savez(folder / "bloodmnist.npz",
             **{f"{s}_images": rng.integers(0, 256, (3, 28, 28, 3)).astype(np.uint8) for s in ("train", "val", "test")},
             **{f"{s}_labels": np.array([[0], [7], [2]]) for s in ("train", "val", "test")})
    np.savez(folder / "pneumoniamnist_64.npz", test_images=np.zeros((2, 64, 64), np.uint8),
             test_labels=np.array([[1], [0]]))
    np.savez(folder / "chestmnist.npz", train_images=np.full((2, 28, 28), 255, np.uint8),
             train_labels=np.zeros((2, 14), np.uint8))
    x, y = online.medmnist("bloodmnist", root=tmp_path)
    assert x.shape == (3, 3, 28, 28) and y.tolist() == [0, 7, 2]
    x, y = online.medmnist("pneumoniamnist", root=tmp_path, split="test", size=64)
    assert x.shape == (2, 1, 64, 64) and torch.all(x == -1) and y.tolist() == [1, 0]
    x, y = online.medmnist("chestmnist", root=tmp_path)
    assert torch.all(x == 1) and y.shape == (2, 14)          # multi-label kept as (N, K)
    with pytest.raises(ValueError, match="unknown name"):
        online.medmnist("catmnist", root=tmp_path)
    with pytest.raises(ValueError, match="unknown size"):
        online.medmnist("bloodmnist", root=tmp_path, size=32)
