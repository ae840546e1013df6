"""Chapter 15's correspondence code: warped shapes, PCK, DIFT features and cosine matching,
each checked against a closed form, a brute-force computation or a planted answer."""
import math

import pytest
import torch
import torch.nn.functional as F

from diffedu.correspondence import dift, pck, warps
from diffedu.data.images import canonical_keypoints


@pytest.fixture(scope="module")
def data():
    return warps.warped_shapes(24, seed=5)


def test_without_warp_keypoints_are_the_similarity_transform_of_the_canonical_ones():
    d = warps.warped_shapes(6, seed=1, warp=0.0)
    for n in range(6):
        a = d.angle[n]
        R = torch.tensor([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
        want = d.center[n] + d.scale[n] * canonical_keypoints(d.classes[int(d.labels[n])]) @ R.T
        torch.testing.assert_close(d.keypoints[n], want)


def test_warped_keypoints_sit_on_the_mask_boundary(data):
    """Every keypoint is a corner or rim point: pixels inside and outside the shape lie within ~1.5 px."""
    H = data.images.shape[-1]
    c = torch.arange(H) + 0.5
    centres = torch.stack(torch.meshgrid(c, c, indexing="xy"), -1).reshape(-1, 2)        # (x, y) of each pixel
    for n in range(len(data)):
        inside = data.masks[n, 0].reshape(-1)
        dist = torch.cdist(data.keypoints[n], centres)                                  # (K, H*W)
        assert dist[:, inside].min(1).values.max() < 1.5
        assert dist[:, ~inside].min(1).values.max() < 1.5


def test_images_boxes_and_pairs(data):
    assert data.images.shape == (24, 3, 32, 32) and data.images.min() >= -1 and data.images.max() <= 1
    assert data.angle.abs().max() <= math.pi / 6
    for n in range(len(data)):                                                         # boxes by brute force
        ys, xs = torch.nonzero(data.masks[n, 0], as_tuple=True)
        want = torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=torch.float32)
        torch.testing.assert_close(data.boxes[n], want)
    pairs = warps.same_class_pairs(data, 30, seed=0)
    assert pairs.shape == (30, 2) and bool((pairs[:, 0] != pairs[:, 1]).all())
    assert bool((data.labels[pairs[:, 0]] == data.labels[pairs[:, 1]]).all())
    assert data.keypoint_names(0) == warps.KEYPOINT_NAMES[data.classes[int(data.labels[0])]]
    torch.testing.assert_close(warps.warped_shapes(24, seed=5).images, data.images)     # the seed fixes the data
    assert not torch.equal(warps.warped_shapes(24, seed=6).images, data.images)


def test_colours_and_textures_make_pixels_differ_between_images():
    plain = warps.warped_shapes(8, seed=2, colours=False, textures=False)
    assert set(plain.images.unique().tolist()) <= {-1.0, 1.0}
    rich = warps.warped_shapes(8, seed=2)
    assert rich.images.flatten(1).std(1).min() > 0.1 and len(rich.images.unique()) > 100


def test_pck_closed_forms():
    pred = torch.tensor([[0.0, 0.0], [3.0, 4.0], [10.0, 0.0], [0.0, 0.0]])
    true = torch.zeros(4, 2)
    size = torch.tensor([50.0, 50.0, 50.0, 10.0])               # thresholds 5, 5, 5, 1 at alpha = 0.1
    correct = pck.correct_keypoints(pred, true, size, alpha=0.1)
    assert correct.tolist() == [True, True, False, True]        # distance 5 <= 5 counts (eq. 1 is <=)
    out = pck.pck(correct, torch.tensor([0, 0, 0, 1]))
    assert out["per_point"] == pytest.approx(3 / 4) and out["per_image"] == pytest.approx((2 / 3 + 1) / 2)
    assert pck.box_size(torch.tensor([[2.0, 3.0, 12.0, 7.0]])).item() == 10.0


def test_sample_at_is_bilinear_in_pixel_coordinates():
    feat = torch.arange(12.0).reshape(1, 3, 4)
    pts = torch.tensor([[0.5, 0.5], [1.5, 2.5], [1.0, 0.5], [1.0, 1.0]])              # centres, then midpoints
    want = torch.tensor([0.0, 9.0, 0.5, (0 + 1 + 4 + 5) / 4])
    torch.testing.assert_close(dift.sample_at(feat, pts)[:, 0], want)


def test_cosine_map_against_brute_force():
    g = torch.Generator().manual_seed(0)
    v, feat = torch.randn(3, 5, generator=g), torch.randn(5, 4, 6, generator=g)
    want = torch.stack([F.cosine_similarity(v[k][:, None, None], feat, dim=0) for k in range(3)])
    torch.testing.assert_close(dift.cosine_map(v, feat), want)


def test_matching_recovers_a_planted_shift():
    """Target = source shifted by (dx, dy) = (3, -2) pixels, with distinct random features: the match is exact."""
    g = torch.Generator().manual_seed(1)
    big = torch.randn(8, 20, 20, generator=g)
    src, tgt = big[:, 4:16, 2:14], big[:, 6:18, 0:12]           # tgt(y, x) = src(y + 2, x + 2)... shifted view
    pts = torch.tensor([[5.5, 5.5], [8.5, 3.5], [9.5, 9.5]])
    matched = dift.match_points(src, tgt, pts)
    torch.testing.assert_close(matched, pts + torch.tensor([2.0, -2.0]))


def test_pixel_features():
    x = torch.randn(2, 3, 6, 6)
    torch.testing.assert_close(dift.pixel_features(x, 1), x)
    centre = dift.pixel_features(x, 3).reshape(2, 3, 9, 6, 6)[:, :, 4]
    torch.testing.assert_close(centre, x)
    with pytest.raises(ValueError, match="patch must be odd"):
        dift.pixel_features(x, 4)


def test_dift_features_average_the_network_features_over_noise():
    from diffedu.nets.unet import unet_tiny
    from diffedu.schedules import linear_schedule
    torch.manual_seed(0)
    model, schedule = unet_tiny(in_channels=3).eval(), linear_schedule(1000)
    x0 = warps.warped_shapes(2, size=16, seed=0).images
    eps = torch.randn((2, *x0.shape), generator=torch.Generator().manual_seed(7))
    ab = float(schedule.alpha_bar[100])
    with torch.no_grad():
        want = sum(model.features(ab ** 0.5 * x0 + (1 - ab) ** 0.5 * eps[k], torch.full((2,), 100), None, ["mid"])["mid"]
                   for k in range(2)) / 2
    got = dift.dift_features(model, x0, 100, "mid", schedule, n_noise=2, seed=7)["mid"]
    assert got.shape == (2, 32, 16, 16)
    torch.testing.assert_close(got, F.interpolate(want, size=(16, 16), mode="bilinear", align_corners=False))
    with pytest.raises(ValueError, match=r"unknown layers \['down.9'\]; this model has \['input', 'down.0'"):
        dift.dift_features(model, x0, 100, "down.9", schedule)
    with pytest.raises(ValueError, match="t must be"):
        dift.dift_features(model, x0, 1000, "mid", schedule)


def test_bad_input_gets_clear_errors(data):
    with pytest.raises(ValueError, match=r"points must lie inside the image, x in \[0, 32\]"):
        dift.match_points(torch.zeros(4, 32, 32), torch.zeros(4, 32, 32), torch.tensor([[40.0, 3.0]]))
    with pytest.raises(ValueError, match="joins two classes"):
        i = int(torch.nonzero(data.labels != data.labels[0])[0])
        dift.transfer(data.images, data, torch.tensor([[0, i]]))
    with pytest.raises(ValueError, match="alpha must be"):
        pck.correct_keypoints(torch.zeros(1, 2), torch.zeros(1, 2), 10.0, alpha=0.0)
    with pytest.raises(ValueError, match="max_angle"):
        warps.warped_shapes(2, max_angle=1.0)
    from diffedu.nets.classifier import ImageClassifier
    clf = ImageClassifier(in_channels=3, num_classes=3, base_channels=8)
    with pytest.raises(ValueError, match=r"unknown layers \['encoder.99'\]; this model has \['input', 'encoder.0'"):
        dift.classifier_features(clf, data.images[:1], "encoder.99")
    assert dift.classifier_features(clf, data.images[:2], "encoder.1").shape[-2:] == (32, 32)


def test_pck_of_position_features_is_the_identity_baseline(data):
    """Features that encode only the pixel position match every point to the same position in the target:
    PCK equals the 'copy the coordinates' baseline computed by hand."""
    H = data.images.shape[-1]
    c = torch.arange(H, dtype=torch.float32)
    pos = torch.stack(torch.meshgrid(c, c, indexing="xy"))                           # (2, H, W): x, y
    w = [math.pi * k / H for k in range(1, 6)]                                       # lowest: one half-turn over the image
    feats = torch.cat([torch.cos(pos * wk) for wk in w] + [torch.sin(pos * wk) for wk in w])
    feats = feats.expand(len(data), -1, -1, -1)
    pairs = warps.same_class_pairs(data, 20, seed=3)
    hits = []
    for i, j in pairs.tolist():
        src, tgt = data.keypoints[i], data.keypoints[j]
        copied = torch.floor(src) + 0.5                                               # the pixel centre it lies in
        hits.append((copied - tgt).norm(dim=1) <= 0.1 * pck.box_size(data.boxes[j]))
    assert dift.pck_of(feats, data, pairs)["per_point"] == pytest.approx(torch.cat(hits).float().mean().item())
