"""The `features` hook of the nets (MLP, U-Net, DiT, MMDiT): every documented name appears, in
forward order, with the documented shape; the forward output is unchanged, "out" is it, and no
hook is left behind."""
from functools import partial

import pytest
import torch
import torch.nn.functional as F

from diffedu.nets import dit, mmdit, unet
from diffedu.nets.mlp import MLPDenoiser

B = 3


def _perturb(model, std=0.05, seed=0):
    """Small noise on every trainable parameter, so the zero-initialised layers come alive (an
    all-zero output would make 'output unchanged' trivially true)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(std * torch.randn(p.shape, generator=g))
    return model.eval()


def _unet_shapes(H, base, mult, nrb, out_ch):
    """The shapes the U-Net docstring promises, built from its configuration."""
    s, k = {"input": (B, base, H, H)}, 0
    for lvl, m in enumerate(mult):
        for _ in range(nrb):
            s[f"down.{k}"], k = (B, base * m, H >> lvl, H >> lvl), k + 1
        if lvl != len(mult) - 1:
            s[f"down.{k}"], k = (B, base * m, H >> (lvl + 1), H >> (lvl + 1)), k + 1
    r = H >> (len(mult) - 1)
    s["mid"], k = (B, base * mult[-1], r, r), 0
    for lvl in reversed(range(len(mult))):
        for i in range(nrb + 1):
            r = H >> (lvl - 1) if lvl > 0 and i == nrb else H >> lvl
            s[f"up.{k}"], k = (B, base * mult[lvl], r, r), k + 1
    s["out"] = (B, out_ch, H, H)
    return s


def _transformer_shapes(H, p, D, depth, out_ch, L=None):
    T = (H // p) ** 2
    s = {"embed": (B, T, D)}
    for k in range(depth):
        s[f"block.{k}"] = (B, T, D)
        if L is not None and k < depth - 1:
            s[f"context.{k}"] = (B, L, D)
    return {**s, "final": (B, T, p * p * out_ch), "out": (B, out_ch, H, H)}


def _labels():
    return torch.tensor([0, 9, 3])


# name -> (build, cond, expected shapes, input shape)
CASES = {
    "mlp": (lambda: MLPDenoiser(dim=3, hidden=16, depth=3), None,
            {"input": (B, 16), **{f"hidden.{k}": (B, 16) for k in range(3)}, "out": (B, 3)}, (B, 3)),
    "mlp_class": (lambda: MLPDenoiser(dim=2, hidden=8, depth=1, num_classes=4), torch.tensor([0, 4, 2]),
                  {"input": (B, 8), "hidden.0": (B, 8), "out": (B, 2)}, (B, 2)),
    "unet_tiny": (lambda: unet.unet_tiny(num_classes=10), _labels(),
                  _unet_shapes(16, 16, (1, 2, 2), 1, 1), (B, 1, 16, 16)),
    "unet_2res": (lambda: unet.UNet(in_channels=2, out_channels=1, base_channels=8, channel_mult=(1, 2, 3),
                                    num_res_blocks=2, attention_levels=(1,)), None,
                  _unet_shapes(16, 8, (1, 2, 3), 2, 1), (B, 2, 16, 16)),
    **{f"dit_{c}": (partial(dit.dit_tiny, input_size=16, patch_size=4, depth=3, conditioning=c),
                    _labels(), _transformer_shapes(16, 4, 64, 3, 1), (B, 1, 16, 16)) for c in dit.CONDITIONINGS},
    "dit_uncond_sigma": (lambda: dit.dit_tiny(input_size=16, patch_size=2, num_classes=None, learn_sigma=True,
                                              conditioning="in_context"), None,
                         _transformer_shapes(16, 2, 64, 4, 2), (B, 1, 16, 16)),
    "mmdit_class": (lambda: mmdit.mmdit_tiny(input_size=16, patch_size=4, depth=3), _labels(),
                    _transformer_shapes(16, 4, 64, 3, 1, L=4), (B, 1, 16, 16)),
    "mmdit_tokens": (lambda: mmdit.mmdit_tiny(input_size=16, patch_size=4, num_classes=None, context_dim=6),
                     torch.randn(B, 5, 6, generator=torch.Generator().manual_seed(1)),
                     _transformer_shapes(16, 4, 64, 4, 1, L=5), (B, 1, 16, 16)),
}


def _setup(name):
    build, cond, shapes, x_shape = CASES[name]
    torch.manual_seed(0)
    model = _perturb(build())
    g = torch.Generator().manual_seed(2)
    return model, torch.randn(x_shape, generator=g), torch.tensor([3, 400, 999]), cond, shapes


@pytest.mark.parametrize("name", list(CASES))
def test_features_names_shapes_and_exactness(name):
    model, x, t, cond, shapes = _setup(name)
    with torch.no_grad():
        before = model(x, t, cond)
        feats = model.features(x, t, cond)
        after = model(x, t, cond)
    assert list(feats) == list(shapes)                              # every name, in forward order
    assert {k: tuple(v.shape) for k, v in feats.items()} == shapes   # the documented shapes
    assert torch.equal(before, after) and torch.equal(feats["out"], before)   # forward unchanged
    assert before.abs().max() > 0                                   # (not trivially zero)
    assert all(not m._forward_hooks for m in model.modules())       # no hook left behind


@pytest.mark.parametrize("name", list(CASES))
def test_features_are_the_forward_pass_intermediates(name):
    """The last named activation before "out" leads to the output by the model's own tail."""
    model, x, t, cond, _ = _setup(name)
    with torch.no_grad():
        f = model.features(x, t, cond)
        last = list(f)[-2]
        if isinstance(model, MLPDenoiser):
            tail = model.out(F.silu(f[last]))
        elif isinstance(model, unet.UNet):
            tail = model.out(f[last])
        else:
            assert last == "final"
            tail = dit.unpatchify(f["final"], model.patch_size, model.out_channels, model.x_embedder.grid_size)
            torch.testing.assert_close(f["embed"], model.x_embedder(x) + model.pos_embed, rtol=0, atol=0)
    torch.testing.assert_close(tail, f["out"], rtol=0, atol=0)


@pytest.mark.parametrize("name", ["mlp", "unet_tiny", "dit_adaln_zero", "mmdit_class"])
def test_features_layers_subset_and_errors(name):
    model, x, t, cond, shapes = _setup(name)
    pick = [list(shapes)[-1], list(shapes)[1]]                       # asked out of order
    with torch.no_grad():
        f = model.features(x, t, cond, layers=pick)
        one = model.features(x, t, cond, layers=list(shapes)[1])       # a single name
        full = model.features(x, t, cond)
    assert list(f) == [list(shapes)[1], list(shapes)[-1]]               # returned in forward order
    assert list(one) == [list(shapes)[1]] and torch.equal(one[list(shapes)[1]], full[list(shapes)[1]])
    with pytest.raises(ValueError, match="unknown layers"):
        model.features(x, t, cond, layers=["nope"])
    assert all(not m._forward_hooks for m in model.modules())


def test_features_carry_gradients_under_autograd():
    model, x, t, cond, _ = _setup("unet_tiny")
    x = x.requires_grad_(True)
    f = model.features(x, t, cond, layers=["mid"])
    f["mid"].pow(2).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
