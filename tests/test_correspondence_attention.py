"""Chapter 15, section 5: token maps, top-k IoU, the context override and Hedlin's optimisation,
on a tiny randomly initialised TextUNet (the checks do not depend on chapter 12's checkpoint)."""
import pytest
import torch

from diffedu.correspondence import attention as A
from diffedu.data import scenes as S
from diffedu.nets.text import TextUNet
from diffedu.schedules import linear_schedule


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    m = TextUNet(vocab=list(S.VOCAB), max_len=8, base_channels=8, text_dim=16, text_depth=1).eval()
    for p in m.parameters():                       # nonzero output projections, so the context matters
        if p.abs().sum() == 0:
            torch.nn.init.normal_(p, std=0.05)
    return m


def test_topk_iou_closed_forms():
    mask = torch.zeros(1, 4, 4, dtype=torch.bool)
    mask[0, :2, :2] = True
    assert A.topk_iou(mask.float(), mask).item() == 1.0
    assert A.topk_iou((~mask).float() + 0.01 * torch.arange(16.0).reshape(1, 4, 4), mask).item() == 0.0
    m = torch.zeros(1, 4, 4)
    m[0, 0, :4] = torch.tensor([4.0, 3.0, 2.0, 1.0])                   # top 4: the first row; overlap 2 of 6
    assert A.topk_iou(m, mask).item() == pytest.approx(2 / 6)
    with pytest.raises(ValueError, match="at least one pixel"):
        A.topk_iou(m, torch.zeros(1, 4, 4, dtype=torch.bool))


def test_bump_and_centroid():
    b = A.bump(torch.tensor([3.5, 5.5]), 8, 1.0)
    assert b.sum().item() == pytest.approx(1.0) and divmod(int(b.argmax()), 8) == (5, 3)
    mask = torch.zeros(8, 8, dtype=torch.bool)
    mask[2:4, 5:8] = True
    torch.testing.assert_close(A.centroid(mask), torch.tensor([6.5, 3.0]))


def test_token_maps_sum_to_one_over_tokens(net):
    sc = S.scenes(3, seed=0)
    maps = A.token_maps(net, sc.images, sc.captions, 50, linear_schedule(1000), n_noise=1)
    assert maps.shape == (3, 8, 16, 16)
    torch.testing.assert_close(maps.sum(1), torch.ones(3, 16, 16))       # softmax rows, averaged linearly
    per = A.layer_token_maps(net, sc.images, sc.captions, 50, linear_schedule(1000), n_noise=1)
    torch.testing.assert_close(sum(per.values()) / len(per), maps)                 # the mean over layers
    names = A.attention_layers(net, (3, 16, 16))
    assert "attn.mid" in names and all(n.startswith("attn.") for n in names)
    assert A.word_position(net, "a red circle above a blue square", "square") == 6
    with pytest.raises(ValueError, match="appears 0 time"):
        A.word_position(net, "a red circle", "square")


def test_with_context_reproduces_the_caption_path(net):
    x, t, cap = torch.randn(2, 3, 16, 16), torch.tensor([10, 500]), ["a red circle", "a blue square above a red circle"]
    with torch.no_grad():
        want = net(x, t, cap)
        context = net.text_encoder(net.tokens(cap, 2))
        with A.with_context(net, context):
            got = net(x, t, None)
        other = net(x, t, None)                                           # restored: the null caption again
    torch.testing.assert_close(got, want)
    assert not torch.allclose(other, want) and "embed" not in vars(net)


def test_optimise_context_fits_the_bump_and_leaves_the_net_as_it_was(net):
    sc = S.scenes(2, seed=3)
    flags = [p.requires_grad for p in net.parameters()]
    p = A.centroid(sc.masks[0, 0])
    ctx, losses = A.optimise_context(net, sc.images[:1], p, 50, linear_schedule(1000), steps=15, lr=0.5)
    assert losses[-1] < 0.97 * losses[0] and ctx.shape == (1, 8, 16)     # gradients reach the context
    assert [q.requires_grad for q in net.parameters()] == flags
    q = A.attention_match(net, ctx, sc.images[1:2], 50, linear_schedule(1000))
    assert q.shape == (2,) and 0 < q[0] < 16 and 0 < q[1] < 16


def test_shared_object_pairs():
    sc = S.scenes(30, seed=1, two_object_prob=1.0)
    pairs = A.shared_object_pairs(sc, 5)
    assert len(pairs) == 5
    for i, a, j, b in pairs:
        assert sc.colours[i, a] == sc.colours[j, b] and sc.shapes[i, a] == sc.shapes[j, b]
        assert sc.positions[i, a] != sc.positions[j, b]


def test_shared_object_pairs_of_another_colour_and_bad_choice():
    sc = S.scenes(30, seed=1, two_object_prob=1.0)
    pairs = A.shared_object_pairs(sc, 5, colour="different")
    assert len(pairs) == 5
    for i, a, j, b in pairs:
        assert sc.colours[i, a] != sc.colours[j, b] and sc.shapes[i, a] == sc.shapes[j, b]
        assert sc.positions[i, a] != sc.positions[j, b]
    with pytest.raises(ValueError, match="colour must be"):
        A.shared_object_pairs(sc, 5, colour="red")


def test_object_iou_closed_forms():
    sc = S.scenes(4, seed=2, two_object_prob=1.0)
    L = 8
    maps = torch.zeros(4, L, 16, 16)
    for n, cap in enumerate(sc.captions):                                 # each shape word's map = its own mask
        tok = [2, len(cap.split()) - 1]
        for k in (0, 1):
            maps[n, tok[k]] = sc.masks[n, k].float() + 1e-3 * torch.rand(16, 16)
    own, other, chance = A.object_iou(maps, sc)
    assert own == pytest.approx(1.0) and other < 0.05                    # the two objects never overlap
    area = sc.masks.flatten(2).float().mean(2)
    assert chance == pytest.approx((area / (2 - area)).mean().item())
    with pytest.raises(ValueError, match="two-object scenes"):
        A.object_iou(maps[:1], S.scenes(1, seed=0, two_object_prob=0.0))
    with pytest.raises(ValueError, match="word must be"):
        A.object_iou(maps, sc, "relation")


def test_textured_moves_brightness_by_stripes_inside_and_outside():
    sc = S.scenes(3, seed=0)
    x = A.textured(sc.images, sc.masks, amp=0.3, seed=1)
    d = x - sc.images
    assert x.shape == sc.images.shape and x.min() >= -1 and x.max() <= 1
    free = (x.abs() < 1).all(1)                                           # not clamped: one stripe for all channels
    assert bool(free.any()) and torch.allclose(d[:, 0][free], d[:, 1][free]) and torch.allclose(d[:, 1][free], d[:, 2][free])
    bg = ~sc.masks.any(1)
    assert 0.05 < d[:, 0][bg].abs().mean() < 0.3                          # background pixels: -1 + 0.3 * stripe
    assert torch.equal(A.textured(sc.images, sc.masks, amp=0.0), sc.images)
