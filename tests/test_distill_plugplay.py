"""Plug-and-play distillation (distill/plugplay.py): identity at initialisation, injection into the
decoder blocks only, the distillation target is two-pass CFG of the frozen base, training helps."""
import pytest
import torch

from diffedu.data.toy import toy_gmm
from diffedu.distill import common, plugplay as pp
from diffedu.distill.progressive import student_x0

GMM = toy_gmm()


def _base(seed=0):
    torch.manual_seed(seed)
    return common.LevelMLP(num_classes=3, hidden=32, depth=3).eval().requires_grad_(False)


def test_a_fresh_guide_changes_nothing_and_the_base_stays_frozen():
    base = _base()
    guide = pp.GuideNet(base_hidden=32, n_inject=2, hidden=8, num_classes=3)
    x, lvl, y = torch.randn(16, 2), torch.rand(16) * 1000, torch.randint(0, 4, (16,))
    assert torch.equal(pp.PnPGuided(base, guide)(x, lvl, y, w=torch.rand(16) * 4), base(x, lvl, y=y))
    assert all(not p.requires_grad for p in pp.PnPGuided(base, guide).base.parameters())


def test_offsets_enter_after_the_last_blocks_only():
    base = _base()
    x, lvl, y = torch.randn(5, 2), torch.full((5,), 300.0), torch.zeros(5, dtype=torch.long)
    off = torch.randn(5, 32)
    # by hand: the first block unchanged, the offset added after blocks 2 and 3
    emb = base.t_proj(common.timestep_embedding(lvl, base.t_dim)) + base.y_embed(y)
    h = base.inp(x)
    for k, layer in enumerate(base.hidden):
        h = h + layer(torch.nn.functional.silu(h + emb)) + (off if k >= 1 else 0)
    torch.testing.assert_close(base(x, lvl, y=y, offsets=[off, off]), base.out(torch.nn.functional.silu(h)))
    with pytest.raises(ValueError, match="at most 3"):
        base(x, lvl, y=y, offsets=[off] * 4)


def test_cfg_x0_is_two_passes_of_the_base():
    base = _base()
    z, t = torch.randn(7, 2), torch.rand(7, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0])
    x_c, x_u = student_x0(base, z, t, y=y), student_x0(base, z, t, y=torch.full((7,), 3))
    torch.testing.assert_close(pp.cfg_x0(base, z, t, y, 2.5), x_u + 2.5 * (x_c - x_u))
    torch.testing.assert_close(pp.cfg_x0(base, z, t, y, 1.0), x_c)


def test_a_short_distillation_brings_one_pass_close_to_two_pass_cfg():
    base, _ = pp.train_base(GMM, steps=150, batch_size=128, hidden=32)
    guide, losses = pp.pnp_distill(base, GMM, steps=200, batch_size=128, hidden=16)
    err = pp.one_pass_mse(base, guide, GMM, (3.0,), n=500)[3.0]
    assert err[0] < 0.5 * err[1]                       # guided one pass beats the plain conditional pass
    assert 0 < pp.param_share(guide, base) < 1 and guide.w_range == (0.0, 4.0)


def test_bad_input():
    base = _base()
    with pytest.raises(TypeError, match="class-conditional LevelMLP"):
        pp.PnPGuided(common.LevelMLP(hidden=32), pp.GuideNet(base_hidden=32))
    with pytest.raises(ValueError, match="at most 3 blocks"):
        pp.PnPGuided(base, pp.GuideNet(base_hidden=32, n_inject=4))
    with pytest.raises(ValueError, match="w \\(the guidance weight\\) is required"):
        pp.PnPGuided(base, pp.GuideNet(base_hidden=32))(torch.randn(2, 2), torch.ones(2))
    with pytest.raises(ValueError, match="labelled GaussianMixture"):
        pp.train_base(common.GaussianMixture([1.0], [[0.0, 0.0]]), steps=1)
