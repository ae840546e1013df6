"""Tests for diffedu.data.images: generated sets (determinism, ranges, masks, geometry) and
the online loaders on small fake files (never the network)."""
import gzip
import struct

import numpy as np
import pytest
import torch

from diffedu.data import images as di


# ------------------------------------------------------------------ digits

@pytest.mark.parametrize("size", [16, 32])
def test_digits(size):
    x, y = di.digits(size)
    assert x.shape == (1797, 1, size, size) and x.dtype == torch.float32
    assert y.shape == (1797,) and y.dtype == torch.long and set(y.tolist()) == set(range(10))
    assert x.min() >= -1 and x.max() <= 1 and x.min() == -1
    xtr, ytr = di.digits(size, split="train")
    xte, yte = di.digits(size, split="test")
    assert len(xtr) + len(xte) == 1797 and len(xte) == 360
    torch.testing.assert_close(xte, x[::5])
    with pytest.raises(ValueError, match="split"):
        di.digits(16, split="val")
    with pytest.raises(ValueError, match="size"):
        di.digits(4)


# ------------------------------------------------------------------ shapes

def test_shapes_determinism_and_ranges():
    a, b, c = di.shapes(20, 16, seed=1), di.shapes(20, 16, seed=1), di.shapes(20, 16, seed=2)
    assert torch.equal(a.images, b.images) and torch.equal(a.angle, b.angle)
    assert not torch.equal(a.images, c.images)
    assert a.images.shape == (20, 1, 16, 16) and a.masks.shape == (20, 1, 16, 16)
    assert a.masks.dtype == torch.bool and a.labels.dtype == torch.long
    assert a.images.min() >= -1 and a.images.max() <= 1
    images, labels = a                                        # unpacks like a tuple
    assert images is a.images and labels is a.labels and len(a) == 20


def test_shapes_masks_consistent_with_images():
    d = di.shapes(30, 32, seed=0)
    inten = d.intensity[:, None, None, None].expand_as(d.images)
    assert torch.equal(d.images[d.masks], inten[d.masks])
    assert torch.all(d.images[~d.masks] == -1)
    assert torch.all(d.masks.flatten(1).any(1))               # every image shows its shape
    # Shapes lie fully inside the image: the border rows and columns are empty.
    m = d.masks[:, 0]
    assert not (m[:, 0].any() or m[:, -1].any() or m[:, :, 0].any() or m[:, :, -1].any())


def test_shapes_classes_subset():
    d = di.shapes(12, 16, seed=0, classes=("triangle", "circle"))
    assert d.classes == ("triangle", "circle") and set(d.labels.tolist()) <= {0, 1}
    with pytest.raises(ValueError, match="shape class"):
        di.shapes(4, classes=("hexagon",))


def test_shapes_center_is_mask_centroid():
    d = di.shapes(40, 32, seed=3)
    yy, xx = torch.meshgrid(torch.arange(32) + 0.5, torch.arange(32) + 0.5, indexing="ij")
    m = d.masks[:, 0].float()
    centroid = torch.stack([(m * xx).sum((1, 2)), (m * yy).sum((1, 2))], 1) / m.sum((1, 2))[:, None]
    assert (centroid - d.center).abs().max() < 0.5


def _mask_at(d, n, pts):
    """Mask value at the pixels containing pts (K, 2); None where outside the image."""
    H = d.masks.shape[-1]
    out = []
    for x, y in pts.tolist():
        i, j = int(np.floor(y)), int(np.floor(x))
        out.append(bool(d.masks[n, 0, i, j]) if 0 <= i < H and 0 <= j < H else None)
    return out


def test_shapes_keypoints_follow_the_transform():
    """Halfway to each keypoint is inside the shape, 1.5x as far is outside: the transform
    really maps canonical points onto the drawn shape."""
    d = di.shapes(40, 32, seed=4)
    kps = d.keypoints()
    for n in range(len(d)):
        canon = di.canonical_keypoints(d.classes[int(d.labels[n])])
        torch.testing.assert_close(kps[n], d.to_image(canon)[n])
        inside = d.to_image(0.5 * canon)[n]
        outside = d.to_image(1.5 * canon)[n]
        assert all(_mask_at(d, n, inside))
        assert not any(v for v in _mask_at(d, n, outside) if v is not None)


def test_shapes_transform_round_trip_and_correspondence():
    d = di.shapes(6, 32, seed=5)
    p = torch.randn(6, 4, 2)
    torch.testing.assert_close(d.to_canonical(d.to_image(p)), p, rtol=1e-5, atol=1e-5)
    canon = di.canonical_keypoints("square")
    pi, pj = d.to_image(canon)[1], d.to_image(canon)[4]
    torch.testing.assert_close(d.correspond(1, 4, pi), pj, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(d.correspond(2, 2, pi), pi, rtol=1e-5, atol=1e-4)
    # A pure rotation by angle a turns canonical (1, 0) into (cos a, sin a).
    e = d.to_image(torch.tensor([[1.0, 0.0]])) - d.center[:, None]
    torch.testing.assert_close(e[:, 0] / d.scale[:, None],
                               torch.stack([torch.cos(d.angle), torch.sin(d.angle)], 1))


# ------------------------------------------------------------------ phantoms

@pytest.mark.parametrize("size", [32, 64])
def test_phantoms(size):
    p = di.phantoms(16, size, seed=0)
    q = di.phantoms(16, size, seed=0)
    assert torch.equal(p.images, q.images) and torch.equal(p.masks, q.masks)
    assert not torch.equal(p.images, di.phantoms(16, size, seed=1).images)
    assert p.images.shape == p.healthy.shape == p.masks.shape == (16, 1, size, size)
    assert p.images.min() >= -1 and p.images.max() <= 1
    assert p.has_lesion.dtype == torch.long and 0 < p.has_lesion.sum() < 16
    # The mask is exactly where the lesion changed the image, and lies inside the brain.
    has = p.masks.flatten(1).any(1)
    assert torch.equal(has.long(), p.has_lesion)
    assert torch.equal(p.images > p.healthy, p.masks)
    assert torch.equal(p.images[~p.masks], p.healthy[~p.masks])
    assert not (p.masks & ~p.brain).any()
    # Background is -1 and the skull is the brightest structure of a healthy head.
    assert torch.all(p.images[:, :, 0, 0] == -1)
    assert torch.all(p.healthy.amax((1, 2, 3)) == 1)
    images, labels = p
    assert labels is p.has_lesion and p.labels is p.has_lesion


def test_phantoms_lesion_prob():
    assert di.phantoms(8, 32, lesion_prob=0.0).has_lesion.sum() == 0
    assert di.phantoms(8, 32, lesion_prob=1.0).has_lesion.sum() == 8
    with pytest.raises(ValueError, match="lesion_prob"):
        di.phantoms(8, 32, lesion_prob=1.5)


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
    monkeypatch.setattr(di, "_fetch", fail)
    monkeypatch.setattr(di, "_torchvision_download", lambda *a: False)


def test_read_idx(tmp_path):
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    _write_idx(tmp_path / "a.gz", arr)
    _write_idx(tmp_path / "b", arr, gz=False)
    assert np.array_equal(di.read_idx(tmp_path / "a.gz"), arr)
    assert np.array_equal(di.read_idx(tmp_path / "b"), arr)
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="IDX"):
        di.read_idx(tmp_path / "bad")


def test_mnist_from_local_files(tmp_path, monkeypatch):
    _no_network(monkeypatch)
    imgs, labels = _fake_mnist(tmp_path / "mnist")
    x, y = di.mnist(root=tmp_path, train=True)
    assert x.shape == (5, 1, 28, 28) and x.dtype == torch.float32
    assert torch.all(x[0] == -1) and torch.all(x[1] == 1)
    torch.testing.assert_close(x[2, 0], torch.tensor(imgs[2] / 255.0 * 2 - 1, dtype=torch.float32))
    assert y.tolist() == labels.tolist() and y.dtype == torch.long
    x32, _ = di.mnist(root=tmp_path, size=32, n=3)
    assert x32.shape == (3, 1, 32, 32) and x32.min() >= -1 and x32.max() <= 1


def test_fashion_mnist_torchvision_layout_uncompressed(tmp_path, monkeypatch):
    _no_network(monkeypatch)
    _fake_mnist(tmp_path / "FashionMNIST" / "raw", train=False, gz=False, n=4)
    x, y = di.fashion_mnist(root=tmp_path, train=False)
    assert x.shape == (4, 1, 28, 28) and y.shape == (4,)


def test_loaders_fail_clearly_offline(tmp_path, monkeypatch):
    _no_network(monkeypatch)
    with pytest.raises(RuntimeError, match="download=False"):
        di.mnist(root=tmp_path, download=False)
    with pytest.raises(RuntimeError, match="pip install torchvision"):
        di.mnist(root=tmp_path, download=True)
    with pytest.raises(RuntimeError, match="could not download"):
        di.medmnist("bloodmnist", root=tmp_path, download=True)
    with pytest.raises(RuntimeError, match="download=False"):
        di.medmnist("bloodmnist", root=tmp_path, download=False)
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
    x, y = di.medmnist("bloodmnist", root=tmp_path)
    assert x.shape == (3, 3, 28, 28) and y.tolist() == [0, 7, 2]
    x, y = di.medmnist("pneumoniamnist", root=tmp_path, split="test", size=64)
    assert x.shape == (2, 1, 64, 64) and torch.all(x == -1) and y.tolist() == [1, 0]
    x, y = di.medmnist("chestmnist", root=tmp_path)
    assert torch.all(x == 1) and y.shape == (2, 14)          # multi-label kept as (N, K)
    with pytest.raises(ValueError, match="unknown name"):
        di.medmnist("catmnist", root=tmp_path)
    with pytest.raises(ValueError, match="unknown size"):
        di.medmnist("bloodmnist", root=tmp_path, size=32)


def test_get_dataset_registry():
    d = di.get_dataset("shapes", n=4, size=16)
    assert isinstance(d, di.Shapes) and len(d) == 4
    x, y = di.get_dataset("digits", size=16, split="test")
    assert x.shape[0] == 360
    x, y = di.get_dataset("phantoms", n=3, size=32)
    assert x.shape == (3, 1, 32, 32)
    assert set(di.DATASETS) == {"digits", "shapes", "phantoms", "mnist", "fashion_mnist", "medmnist"}
    with pytest.raises(ValueError, match="unknown dataset name"):
        di.get_dataset("cifar10")
