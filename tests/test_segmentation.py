"""diffedu.segmentation: metrics against peers (scikit-learn) and brute force, codes, the
ensemble, the conditional denoiser, the losses' closed forms, attention probes, the data."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import diffedu as dd
from diffedu.nets.unet import UNet
from diffedu.segmentation import attention as A
from diffedu.segmentation import cardiac, diffseg as S
from diffedu.segmentation import metrics as M

C = 4


def _labels(*shape, seed=0, C=C):
    return torch.randint(0, C, shape, generator=torch.Generator().manual_seed(seed))


def _tiny(in_ch=5, out_ch=4):
    torch.manual_seed(0)
    net = UNet(in_channels=in_ch, out_channels=out_ch, base_channels=8, channel_mult=(1, 2), attention_levels=(1,),
               num_heads=2, prediction="x0")
    for p in net.parameters():                       # leave the zero init: a net that outputs 0 tests nothing
        nn.init.normal_(p, std=0.05)
    return net.eval()


# ---- metrics -------------------------------------------------------------------------------------
def test_dice_and_iou_match_scikit_learn_per_class():
    sk = pytest.importorskip("sklearn.metrics")
    p, y = _labels(3, 8, 8, seed=1), _labels(3, 8, 8, seed=2)
    d, j = M.dice(p, y, C), M.iou(p, y, C)
    for b in range(3):
        f1 = sk.f1_score(y[b].flatten(), p[b].flatten(), labels=list(range(C)), average=None, zero_division=1.0)
        jac = sk.jaccard_score(y[b].flatten(), p[b].flatten(), labels=list(range(C)), average=None, zero_division=1.0)
        np.testing.assert_allclose(d[b].numpy(), f1, atol=1e-12)
        np.testing.assert_allclose(j[b].numpy(), jac, atol=1e-12)


def test_empty_empty_convention_and_dice_iou_relation():
    p = torch.zeros(1, 4, 4, dtype=torch.long)
    y = p.clone()
    y[0, 0, 0] = 1                                   # class 1 in y only; classes 2, 3 in neither
    d, j = M.dice(p, y, C)[0], M.iou(p, y, C)[0]
    assert d[1] == 0 and j[1] == 0 and d[2] == 1 and j[2] == 1 and d[3] == 1
    q, z = _labels(5, 6, 6, seed=3), _labels(5, 6, 6, seed=4)
    dd_, jj = M.dice(q, z, C), M.iou(q, z, C)
    torch.testing.assert_close(dd_, 2 * jj / (1 + jj))          # Dice = 2 IoU / (1 + IoU), a closed form


def _ged_brute(Sm, Y):
    def d(a, b):
        ious = []
        for c in range(1, C):
            i, u = ((a == c) & (b == c)).sum().item(), ((a == c) | (b == c)).sum().item()
            ious.append(1.0 if u == 0 else i / u)
        return 1 - sum(ious) / len(ious)
    m, n = len(Sm), len(Y)
    cross = sum(d(s, y) for s in Sm for y in Y) / (m * n)
    ss = sum(d(s, t) for s in Sm for t in Sm) / m ** 2
    yy = sum(d(y, z) for y in Y for z in Y) / n ** 2
    return 2 * cross - ss - yy


def test_ged_matches_brute_force_and_vanishes_on_the_same_set():
    Sm, Y = _labels(2, 3, 5, 5, seed=5), _labels(2, 4, 5, 5, seed=6)
    got = M.generalized_energy_distance(Sm, Y, C)
    for b in range(2):
        assert abs(got[b].item() - _ged_brute(Sm[b], Y[b])) < 1e-12
    assert M.generalized_energy_distance(Y, Y, C).abs().max() < 1e-12
    # a deterministic method pays the full cross term: GED^2 = 2 E d(S, Y) - E d(Y, Y')
    one = Sm[:, :1]
    cross = torch.stack([M.mask_distance(one[:, 0], Y[:, k], C) for k in range(4)], 1).mean(1)
    assert torch.allclose(M.generalized_energy_distance(one, Y, C),
                          2 * cross - M.generalized_energy_distance(Y, Y, C) - _yy(Y), atol=1e-12)


def _yy(Y):
    return torch.stack([torch.stack([M.mask_distance(Y[:, i], Y[:, j], C) for j in range(Y.shape[1])], 1)
                        for i in range(Y.shape[1])], 1).mean((1, 2))


def test_ece_matches_brute_force_and_is_zero_when_calibrated():
    g = torch.Generator().manual_seed(7)
    probs = torch.rand(2, C, 5, 5, generator=g).softmax(1).double()
    Y = _labels(2, 3, 5, 5, seed=8)
    conf, pred = probs.max(1)
    acc = (Y == pred[:, None]).double().mean(1)
    total = 0.0
    for k in range(10):
        m = ((conf * 10).long().clamp(0, 9) == k)
        if m.any():
            total += m.sum().item() / m.numel() * abs(acc[m].mean().item() - conf[m].mean().item())
    assert abs(M.expected_calibration_error(probs, Y) - total) < 1e-12
    # calibrated by construction: probability 3/4 on the class 3 of 4 annotators give
    Y2 = torch.zeros(1, 4, 3, 3, dtype=torch.long)
    Y2[:, 3] = 2
    p2 = torch.zeros(1, C, 3, 3, dtype=torch.float64)
    p2[:, 0], p2[:, 2] = 0.75, 0.25
    assert M.expected_calibration_error(p2, Y2) < 1e-12
    assert abs(M.expected_calibration_error(p2[:, [2, 1, 0, 3]], Y2) - 0.5) < 1e-12   # confident on the minority: |0.25 - 0.75|


def test_uncertainty_error_correlation_matches_numpy():
    g = torch.Generator().manual_seed(9)
    u, e = torch.rand(2, 4, 4, generator=g), torch.rand(2, 4, 4, generator=g)
    ref = np.corrcoef(u.flatten().numpy(), e.flatten().numpy())[0, 1]
    assert abs(M.uncertainty_error_correlation(u, e) - ref) < 1e-6
    assert M.uncertainty_error_correlation(torch.ones(1, 2, 2), e[:1, :2, :2]) == 0.0


def test_unknown_classes_and_float_labels_get_clear_errors():
    y = _labels(1, 4, 4)
    y[0, 0, 0], y[0, 1, 1] = 7, -1
    with pytest.raises(ValueError, match=r"unknown classes \[-1, 7\].*0\.\.3"):
        M.dice(y, _labels(1, 4, 4), C)
    with pytest.raises(TypeError, match="integer label map"):
        M.iou(torch.rand(1, 4, 4), _labels(1, 4, 4), C)
    with pytest.raises(ValueError, match="unknown classes"):
        S.encode(y, C)
    with pytest.raises(ValueError, match="samples.*unknown classes"):
        M.generalized_energy_distance(y[:, None], _labels(1, 2, 4, 4), C)
    with pytest.raises(ValueError, match="must match"):
        M.dice(_labels(1, 4, 4), _labels(1, 5, 5), C)
    with pytest.raises(ValueError, match="probabilities"):
        M.expected_calibration_error(torch.rand(1, C, 2, 2), _labels(1, 2, 2, 2))


# ---- codes and ensembles -------------------------------------------------------------------------
@pytest.mark.parametrize("enc,Cn,K", [("onehot", 4, 4), ("bits", 4, 2), ("bits", 3, 2), ("bits", 5, 3), ("bits", 2, 1)])
def test_codes_round_trip(enc, Cn, K):
    y = _labels(2, 5, 5, C=Cn)
    code = S.encode(y, Cn, enc)
    assert code.shape == (2, K, 5, 5) and set(code.unique().tolist()) <= {-1.0, 1.0}
    assert torch.equal(S.decode(code + 0.3 * torch.randn(code.shape).clamp(-0.9, 0.9), Cn, enc), y)


def test_bits_decode_falls_back_to_the_last_class():
    code = torch.ones(1, 2, 1, 1)                    # bits 11 = 3, beyond 3 classes
    assert S.decode(code, 3, "bits").item() == 2
    assert S.encode(torch.tensor([[[2]]]), 3, "bits").flatten().tolist() == [-1.0, 1.0]    # 2 = 0b10, low bit first


def test_ensemble_mean_and_variance_closed_form():
    samples = _labels(2, 7, 3, 3, seed=11)
    probs, pred, var = S.ensemble_stats(samples, C)
    onehot = torch.nn.functional.one_hot(samples, C).double()           # (B, K, H, W, C)
    torch.testing.assert_close(probs.permute(0, 2, 3, 1), onehot.mean(1))
    torch.testing.assert_close(var, onehot.var(1, unbiased=False).sum(-1))
    assert torch.equal(pred, probs.argmax(1))
    same = samples[:, :1].expand(2, 5, 3, 3)
    assert S.ensemble_stats(same, C)[2].abs().max() == 0                 # identical samples: no uncertainty


# ---- the conditional denoiser, samplers and losses -----------------------------------------------
def test_conditional_denoiser_samples_differ_and_follow_the_contract():
    net, sched = _tiny(), dd.cosine_schedule(50)
    images = torch.randn(2, 1, 8, 8)
    D = S.segmentation_denoiser(net, sched, images)
    x = torch.randn(2, 4, 8, 8)
    out = D(x, 10)
    assert isinstance(D, dd.Denoiser) and out.shape == x.shape and out.abs().max() <= 1
    torch.testing.assert_close(out, net(torch.cat([x, images], 1), torch.full((2,), 10)).clamp(-1, 1))
    labels, codes = S.sample_masks(net, images, sched, K=3, steps=4, generator=torch.Generator().manual_seed(0))
    assert labels.shape == (2, 3, 8, 8) and codes.shape == (2, 3, 4, 8, 8)
    assert torch.equal(labels, S.decode(codes.flatten(0, 1), C).reshape(2, 3, 8, 8))
    assert not torch.equal(codes[:, 0], codes[:, 1])                     # independent x_T: different samples
    again = S.sample_masks(net, images, sched, K=3, steps=4, generator=torch.Generator().manual_seed(0))[1]
    assert torch.equal(codes, again)
    with pytest.raises(ValueError, match="cond"):
        S.ConcatConditioned(net)(x, 3)


def test_single_step_is_one_call_at_the_noisiest_entry():
    net, sched = _tiny(), dd.cosine_schedule(50)
    images = torch.randn(2, 1, 8, 8)
    g = torch.Generator().manual_seed(3)
    labels, x0 = S.single_step(net, images, sched, generator=g)
    xT = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(x0, net(torch.cat([xT, images], 1), torch.full((2,), 49)).clamp(-1, 1))
    assert torch.equal(labels, x0.argmax(1))


class _Const(nn.Module):
    """A 'network' that outputs the constant c whatever it sees (for closed-form losses)."""

    def __init__(self, c):
        super().__init__()
        self.c = c

    def forward(self, x, t):
        return torch.full((x.shape[0], 4, *x.shape[2:]), self.c)


def test_losses_target_the_ground_truth():
    images, y = torch.randn(3, 1, 6, 6), _labels(3, 6, 6, seed=12)
    x0 = S.encode(y, C)
    sched = dd.cosine_schedule(20)
    for loss in (S.seg_loss, S.rnd_loss):
        got = loss(_Const(0.25), images, y, sched, generator=torch.Generator().manual_seed(0))
        assert abs(got.item() - ((0.25 - x0) ** 2).mean().item()) < 1e-6       # x0 target, not x0_hat
    sup = S.supervised_loss(lambda x, t: torch.zeros(3, 4, 6, 6), images, y)
    assert abs(sup.item() - np.log(4)) < 1e-6                                   # uniform logits: log C


def test_rnd_loss_feeds_the_models_own_prediction():
    """Half the batch sees x_t built from the model's x0_hat: a model that records its inputs
    sees, at the second call, the renoised first output (checked by rebuilding it)."""
    seen = []

    def net(x, t):
        seen.append((x[:, :4].clone(), t.clone()))
        return torch.full((x.shape[0], 4, *x.shape[2:]), 0.5)
    images, y = torch.randn(8, 1, 4, 4), _labels(8, 4, 4, seed=13)
    sched = dd.cosine_schedule(100)
    g = torch.Generator().manual_seed(1)
    S.rnd_loss(net, images, y, sched, sample_steps=10, generator=g)
    (x_prev, t_prev), (x_t, t) = seen
    assert bool(((t_prev - t == 10) | (t_prev == 99)).all())
    g = torch.Generator().manual_seed(1)
    i = torch.randint(0, 100, (8,), generator=g)
    i_prev = (i + 10).clamp_max(99)
    rec = torch.rand(8, generator=g) < 0.5
    dd.q_sample(S.encode(y, C), i_prev, sched, generator=g)
    start = torch.where(rec[:, None, None, None], torch.full_like(x_t, 0.5), S.encode(y, C))
    torch.testing.assert_close(x_t, dd.q_sample(start, i, sched, generator=g))
    assert rec.any() and (~rec).any()


def test_rnd_sample_shapes_and_determinism():
    net, sched = _tiny(), dd.cosine_schedule(40)
    images = torch.randn(1, 1, 8, 8)
    a = S.rnd_sample(net, images, sched, K=2, steps=3, generator=torch.Generator().manual_seed(0))
    b = S.rnd_sample(net, images, sched, K=2, steps=3, generator=torch.Generator().manual_seed(0))
    assert a[0].shape == (1, 2, 8, 8) and torch.equal(a[1], b[1])


# ---- attention -----------------------------------------------------------------------------------
def test_attention_weights_reproduce_the_block():
    net = _tiny()
    inputs, t = torch.randn(2, 5, 8, 8), torch.tensor([3, 7])
    names = list(A.attention_blocks(net))
    assert "middle.1" in names
    w = A.attention_weights(net, inputs, t)
    blk = net.middle[1]
    assert w.shape == (2, 2, 16, 16)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 2, 16))
    seen = {}
    h = blk.register_forward_hook(lambda m, a, o: seen.update(x=a[0], out=o))
    net(inputs, t)
    h.remove()
    x = seen["x"]
    B, Cc, H, W = x.shape
    v = blk.qkv(blk.norm(x)).reshape(B, 3, 2, Cc // 2, H * W)[:, 2].transpose(-1, -2)
    torch.testing.assert_close(x + blk.proj((w @ v).transpose(-1, -2).reshape(B, Cc, H, W)), seen["out"])
    with pytest.raises(ValueError, match="unknown block"):
        A.attention_weights(net, inputs, t, block="nope")
    ratio = A.branch_ratio(net, inputs, t)
    want = (seen["out"] - x).norm() / x.norm()
    assert set(ratio) == set(names) and abs(ratio["middle.1"] - want.item()) < 1e-6 and ratio["middle.1"] > 0
    nn.init.zeros_(blk.proj.weight), nn.init.zeros_(blk.proj.bias)
    assert A.branch_ratio(net, inputs, t)["middle.1"] == 0.0               # a zeroed output projection adds nothing


def test_no_attention_is_the_net_without_its_attention_blocks():
    import copy
    net = _tiny()
    inputs, t = torch.randn(2, 5, 8, 8), torch.tensor([3, 7])
    ref = copy.deepcopy(net)
    for seq in [*ref.down, ref.middle, *ref.up]:
        for k, layer in enumerate(seq):
            if isinstance(layer, A.AttentionBlock):
                seq[k] = nn.Identity()
    before = net(inputs, t)
    with A.no_attention(net):
        off = net(inputs, t)
    torch.testing.assert_close(off, ref(inputs, t))
    assert not torch.allclose(off, before)
    torch.testing.assert_close(net(inputs, t), before)                   # restored


# ---- data ----------------------------------------------------------------------------------------
def test_cardiac_slices_are_seeded_and_annotators_disagree_a_little():
    x, y = cardiac.cardiac_slices(6, 24, annotators=3, seed=5)
    x2, y2 = cardiac.cardiac_slices(6, 24, annotators=3, seed=5)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert x.shape == (6, 1, 24, 24) and y.shape == (6, 3, 24, 24) and x.min() >= -1 and x.max() <= 1
    assert set(y.unique().tolist()) == {0, 1, 2, 3}
    disagree = (y != y[:, :1]).any(1).double().mean().item()
    assert 0.03 < disagree < 0.4
    # blood is bright, muscle dark: the image carries the classes (annotator 0's LV vs myocardium)
    assert x[:, 0][y[:, 0] == 1].mean() > x[:, 0][y[:, 0] == 2].mean() + 0.5
    calm = cardiac.cardiac_slices(6, 24, annotators=3, seed=5, spread=0.0)[1]
    assert (calm != calm[:, :1]).any(1).double().mean().item() < disagree
    with pytest.raises(ValueError, match="size"):
        cardiac.cardiac_slices(2, 8)
