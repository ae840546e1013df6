"""Tests for diffedu.data.images: bundled and generated sets (determinism, ranges, masks,
geometry) and the registry; the online loaders are tested in test_data_online.py."""
import numpy as np
import pytest
import torch

import diffedu as dd
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


def test_package_exposes_every_set_by_name():
    """dd.data.<name> reaches the functions of images and online (no module shadows one)."""
    from diffedu.data import digits, get_dataset, mnist, phantoms, shapes
    assert digits is di.digits and shapes is di.shapes and phantoms is di.phantoms
    assert get_dataset is di.get_dataset and mnist is dd.data.online.mnist is di.DATASETS["mnist"]
    assert callable(dd.data.medmnist) and dd.data.Shapes is di.Shapes
    assert set(di.DATASETS.values()) <= {getattr(dd.data, n) for n in dd.data.__all__ if callable(getattr(dd.data, n))}
    with pytest.raises(AttributeError):
        dd.data.cifar10
