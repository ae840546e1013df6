"""Tests for diffedu.nets: U-Net, DiT (four conditionings), MMDiT, classifiers, autoencoder.

Everything runs on tiny CPU models (a few seconds in all)."""
import math

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from diffedu.nets import autoencoder as ae
from diffedu.nets import classifier as cls
from diffedu.nets import dit, mmdit, unet
from diffedu.nets.embeddings import sincos_pos_embed_2d

B = 3  # odd batch size throughout
CONDITIONINGS = dit.CONDITIONINGS


def _perturb(model, std=0.05, seed=0):
    """Add small noise to every trainable parameter, so zero-initialised layers come alive."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(std * torch.randn(p.shape, generator=g))
    return model


def _inputs(C, size, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, C, size, size, generator=g), torch.randint(0, 1000, (B,), generator=g)


def _n_params(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# ------------------------------------------------------------------ builders for generic tests
# name -> (factory, kwargs for call) ; each model takes (x, t, cond) and returns an image.

def _labels(n=10):
    return torch.tensor([0, n - 1, 3])


MODELS = {
    "unet_uncond": (lambda s: unet.unet_tiny(), lambda s: {}),
    "unet_class": (lambda s: unet.unet_tiny(num_classes=10), lambda s: {"cond": _labels()}),
    **{f"dit_{c}": ((lambda c: lambda s: dit.dit_tiny(input_size=s, patch_size=4, conditioning=c))(c),
                    lambda s: {"cond": _labels()}) for c in CONDITIONINGS},
    "dit_uncond": (lambda s: dit.dit_tiny(input_size=s, patch_size=4, num_classes=None), lambda s: {}),
    "mmdit_class": (lambda s: mmdit.mmdit_tiny(input_size=s, patch_size=4), lambda s: {"cond": _labels()}),
    "mmdit_tokens": (lambda s: mmdit.mmdit_tiny(input_size=s, patch_size=4, num_classes=None,
                                                context_dim=6, qk_norm=True),
                     lambda s: {"cond": torch.randn(B, 5, 6)}),
}


@pytest.mark.parametrize("size", [16, 32])
@pytest.mark.parametrize("name", list(MODELS))
def test_denoiser_shapes(name, size):
    build, kw = MODELS[name]
    torch.manual_seed(0)
    model = build(size).eval()
    x, t = _inputs(1, size)
    out = model(x, t, **kw(size))
    assert out.shape == x.shape and out.dtype == torch.float32
    assert model.prediction == "eps"
    # One number for t is broadcast to the batch.
    assert model(x, 7, **kw(size)).shape == x.shape


@pytest.mark.parametrize("name", list(MODELS))
def test_gradient_flow(name):
    """After one backward every trainable parameter has a gradient; once the zero-initialised
    layers are perturbed, every gradient is non-zero (no dead or unused parameters)."""
    build, kw = MODELS[name]
    torch.manual_seed(0)
    model = build(16).train()
    x, t = _inputs(1, 16)
    model(x, t, **kw(16)).square().mean().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    model.zero_grad()
    _perturb(model)
    model(x, t, **kw(16)).square().mean().backward()
    dead = [n for n, p in model.named_parameters() if p.requires_grad and not p.grad.abs().sum() > 0]
    assert not dead, dead


@pytest.mark.parametrize("name", list(MODELS))
def test_safetensors_round_trip(name, tmp_path):
    build, kw = MODELS[name]
    torch.manual_seed(0)
    model = _perturb(build(16)).eval()
    save_file(model.state_dict(), tmp_path / "w.safetensors")
    torch.manual_seed(1)
    other = build(16).eval()
    other.load_state_dict(load_file(tmp_path / "w.safetensors"))
    x, t = _inputs(1, 16)
    cond = kw(16)
    torch.testing.assert_close(model(x, t, **cond), other(x, t, **cond), rtol=0, atol=0)


@pytest.mark.parametrize("name", ["unet_class", "dit_adaln_zero", "dit_in_context", "mmdit_class"])
def test_null_label_and_force_drop(name):
    """cond=None, the explicit null label and force_drop_ids all give the unconditional output."""
    build, _ = MODELS[name]
    torch.manual_seed(0)
    model = _perturb(build(16)).eval()
    x, t = _inputs(1, 16)
    y = _labels()
    uncond = model(x, t, None)
    torch.testing.assert_close(model(x, t, torch.full((B,), 10)), uncond)
    torch.testing.assert_close(model(x, t, y, force_drop_ids=torch.ones(B)), uncond)
    assert not torch.allclose(model(x, t, y), uncond)
    # In training mode labels are dropped at random (here: surely, p close to 1).
    model.class_dropout_prob = 0.999999
    if hasattr(model, "y_embedder"):
        model.y_embedder.dropout_prob = 0.999999
    torch.testing.assert_close(model.train()(x, t, y), model.train()(x, t, None))


# ------------------------------------------------------------------ DiT specifics

def test_adaln_zero_is_identity_at_init():
    """adaLN-Zero: every block is exactly the identity (gates 0) and the output is exactly 0."""
    torch.manual_seed(0)
    model = dit.dit_tiny(conditioning="adaln_zero").eval()
    x, t = _inputs(1, 16)
    assert torch.equal(model(x, t, _labels()), torch.zeros_like(x))
    tokens = model.x_embedder(x) + model.pos_embed
    c = sum(model.embed_condition(t, _labels(), B, x.device))
    for block in model.blocks:
        assert torch.equal(block(tokens, c), tokens)


def test_adaln_zero_only_final_linear_learns_first():
    """At init, a gradient reaches only the final linear layer (everything else is behind a
    zero), which is why adaLN-Zero training starts so stably."""
    torch.manual_seed(0)
    model = dit.dit_tiny().train()
    x, t = _inputs(1, 16)
    model(x, t, _labels()).sub(x).square().mean().backward()
    nonzero = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert nonzero == {"final_layer.linear.weight", "final_layer.linear.bias"}


@pytest.mark.parametrize("conditioning", ["adaln", "cross_attention", "in_context"])
def test_other_conditionings_are_not_identity(conditioning):
    torch.manual_seed(0)
    model = dit.dit_tiny(conditioning=conditioning).eval()
    x, t = _inputs(1, 16)
    tokens = model.x_embedder(x) + model.pos_embed
    embs = model.embed_condition(t, _labels(), B, x.device)
    c = {"adaln": sum(embs), "cross_attention": torch.stack(embs, 1), "in_context": None}[conditioning]
    assert not torch.allclose(model.blocks[0](tokens, c), tokens)
    assert torch.equal(model(x, t, _labels()), torch.zeros_like(x))  # the zero output layer


def official_dit_shapes(input_size, patch_size, in_channels, hidden_size, depth, num_classes,
                        learn_sigma=True, class_dropout_prob=0.1, mlp_ratio=4.0, freq=256):
    """State-dict names and shapes of facebookresearch/DiT models.py (commit 00d70ac, 2023),
    derived from its structure: timm PatchEmbed (`proj` conv; its `norm` is Identity),
    TimestepEmbedder (`mlp` = Linear, SiLU, Linear), LabelEmbedder (`embedding_table`),
    `pos_embed` a frozen nn.Parameter, DiTBlock (affine-free LayerNorms norm1/norm2, timm
    Attention `qkv`/`proj` with qkv_bias=True and Identity q_norm/k_norm, timm Mlp `fc1`/`fc2`,
    `adaLN_modulation` = SiLU, Linear(D, 6D)), FinalLayer (affine-free `norm_final`,
    `linear`, `adaLN_modulation` = SiLU, Linear(D, 2D))."""
    D, p = hidden_size, patch_size
    out = 2 * in_channels if learn_sigma else in_channels
    T = (input_size // p) ** 2
    H = int(D * mlp_ratio)
    s = {"pos_embed": (1, T, D),
         "x_embedder.proj.weight": (D, in_channels, p, p), "x_embedder.proj.bias": (D,),
         "t_embedder.mlp.0.weight": (D, freq), "t_embedder.mlp.0.bias": (D,),
         "t_embedder.mlp.2.weight": (D, D), "t_embedder.mlp.2.bias": (D,),
         "y_embedder.embedding_table.weight": (num_classes + int(class_dropout_prob > 0), D)}
    for i in range(depth):
        s.update({f"blocks.{i}.attn.qkv.weight": (3 * D, D), f"blocks.{i}.attn.qkv.bias": (3 * D,),
                  f"blocks.{i}.attn.proj.weight": (D, D), f"blocks.{i}.attn.proj.bias": (D,),
                  f"blocks.{i}.mlp.fc1.weight": (H, D), f"blocks.{i}.mlp.fc1.bias": (H,),
                  f"blocks.{i}.mlp.fc2.weight": (D, H), f"blocks.{i}.mlp.fc2.bias": (D,),
                  f"blocks.{i}.adaLN_modulation.1.weight": (6 * D, D),
                  f"blocks.{i}.adaLN_modulation.1.bias": (6 * D,)})
    s.update({"final_layer.linear.weight": (p * p * out, D), "final_layer.linear.bias": (p * p * out,),
              "final_layer.adaLN_modulation.1.weight": (2 * D, D),
              "final_layer.adaLN_modulation.1.bias": (2 * D,)})
    return s


@pytest.mark.parametrize("learn_sigma,drop", [(True, 0.1), (False, 0.0)])
def test_official_dit_state_dict_names(learn_sigma, drop):
    cfg = dict(input_size=8, patch_size=2, in_channels=4, hidden_size=32, depth=2, num_classes=5,
               learn_sigma=learn_sigma, class_dropout_prob=drop)
    model = dit.DiT(num_heads=2, **cfg)
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert got == official_dit_shapes(**cfg)
    # An "official" state dict (right names and shapes) loads strictly, without renaming.
    fake = {k: torch.randn(v) for k, v in official_dit_shapes(**cfg).items()}
    model.load_state_dict(fake, strict=True)


def test_official_sizes():
    expected = official_dit_shapes(32, 2, 4, 384, 12, 1000)
    got = {k: tuple(v.shape) for k, v in dit.DiT_S_2().state_dict().items()}
    assert got == expected
    with torch.device("meta"):             # DiT-XL/2: 675M parameters, as in the paper
        assert round(_n_params(dit.DIT_MODELS["DiT-XL/2"]()) / 1e6) == 675


def test_official_init_statistics():
    torch.manual_seed(0)
    m = dit.DiT(input_size=8, patch_size=2, in_channels=4, hidden_size=64, depth=2, num_heads=4,
                num_classes=100)
    assert not m.pos_embed.requires_grad
    assert abs(m.y_embedder.embedding_table.weight.std().item() - 0.02) < 0.003
    assert abs(m.t_embedder.mlp[0].weight.std().item() - 0.02) < 0.003
    w = m.blocks[0].attn.qkv.weight
    bound = math.sqrt(6 / (w.shape[0] + w.shape[1]))          # Xavier-uniform
    assert w.abs().max() <= bound and w.abs().max() > 0.9 * bound
    assert torch.all(m.blocks[0].attn.qkv.bias == 0)


def test_sincos_pos_embed_matches_official_formula():
    """Independent NumPy re-derivation of the MAE/DiT formula: the first half of the
    channels encodes the column index, the second the row index, each [sin | cos]."""
    D, G = 16, 3
    omega = 1.0 / 10000 ** (np.arange(D // 4) / (D / 4))
    ref = []
    for i in range(G):           # row
        for j in range(G):       # column
            ref.append(np.concatenate([np.sin(j * omega), np.cos(j * omega),
                                       np.sin(i * omega), np.cos(i * omega)]))
    torch.testing.assert_close(sincos_pos_embed_2d(D, G), torch.tensor(np.array(ref), dtype=torch.float32))
    m = dit.dit_tiny()
    torch.testing.assert_close(m.pos_embed[0], sincos_pos_embed_2d(64, 8))


def test_patchify_order_and_inverse():
    x = torch.arange(2 * 4 * 4, dtype=torch.float32).reshape(1, 2, 4, 4)
    tokens = dit.patchify(x, 2)                               # (1, 4, 2*2*2)
    # first patch, pixel-major then channel: (0,0)c0 (0,0)c1 (0,1)c0 (0,1)c1 (1,0)c0 ...
    assert tokens[0, 0].tolist() == [0, 16, 1, 17, 4, 20, 5, 21]
    assert tokens[0, 1].tolist()[:2] == [2, 18]               # second patch is to the right
    assert torch.equal(dit.unpatchify(tokens, 2, 2, 2), x)
    # The conv patch embedding sees the same patches, in the same (row-major) token order.
    pe = dit.PatchEmbed(4, 2, 2, 5)
    w = pe.proj.weight.permute(0, 2, 3, 1).reshape(5, -1)      # (D, p*p*C) in patchify order
    torch.testing.assert_close(pe(x), tokens @ w.T + pe.proj.bias)


def test_learn_sigma_doubles_channels():
    m = dit.dit_tiny(in_channels=3, learn_sigma=True)
    assert m(torch.randn(B, 3, 16, 16), torch.tensor([1, 2, 3]), _labels()).shape == (B, 6, 16, 16)
    m = mmdit.mmdit_tiny(in_channels=3, learn_sigma=True)
    assert m(torch.randn(B, 3, 16, 16), 5, _labels()).shape == (B, 6, 16, 16)


def test_dit_variants_patch_sizes_and_rgb():
    for p in (2, 4):
        for c in CONDITIONINGS:
            m = dit.dit_tiny(input_size=16, patch_size=p, in_channels=3, conditioning=c)
            assert m(torch.randn(1, 3, 16, 16), 3, torch.tensor([2])).shape == (1, 3, 16, 16)


# ------------------------------------------------------------------ MMDiT

def test_mmdit_block_identity_and_attention_weights():
    torch.manual_seed(0)
    model = mmdit.mmdit_tiny()
    x, t = _inputs(1, 16)
    assert torch.equal(model(x, t, _labels()), torch.zeros_like(x))
    block = model.joint_blocks[0]
    xs, cs, y = torch.randn(B, 64, 64), torch.randn(B, 4, 64), torch.randn(B, 64)
    x2, c2 = block(xs, cs, y)
    assert torch.equal(x2, xs) and torch.equal(c2, cs)       # both streams: identity at init
    _perturb(model)
    x2, c2, w = model.joint_blocks[0](xs, cs, y, return_attention=True)
    assert x2.shape == xs.shape and c2.shape == cs.shape
    assert w.shape == (B, 4, 4 + 64, 4 + 64)
    torch.testing.assert_close(w.sum(-1), torch.ones(B, 4, 68))
    x3, c3 = model.joint_blocks[0](xs, cs, y)                 # same result without the weights
    torch.testing.assert_close(x3, x2)
    torch.testing.assert_close(c3, c2)
    x_last, c_last = model.joint_blocks[-1](xs, cs, y)        # SD3's pre-only context stream
    assert x_last.shape == xs.shape and c_last is None
    assert not hasattr(model.joint_blocks[-1].context_block, "mlp")
    maps = model.attention_maps(x, t, _labels())
    assert len(maps) == 4 and maps[0].shape == (B, 4, 68, 68)


def test_mmdit_streams_interact():
    """Changing the context changes the image stream (joint attention) and vice versa."""
    torch.manual_seed(0)
    block = _perturb(mmdit.MMDiTBlock(32, 4))
    xs, cs, y = torch.randn(B, 10, 32), torch.randn(B, 3, 32), torch.randn(B, 32)
    x1, c1 = block(xs, cs, y)
    x2, _ = block(xs, cs + torch.randn_like(cs), y)
    _, c3 = block(xs + torch.randn_like(xs), cs, y)
    assert not torch.allclose(x1, x2) and not torch.allclose(c1, c3)


# ------------------------------------------------------------------ classifiers, autoencoder

@pytest.mark.parametrize("size", [16, 32])
def test_image_classifier(size):
    torch.manual_seed(0)
    c = cls.ImageClassifier(in_channels=1, num_classes=10, base_channels=16)
    x = torch.randn(B, 1, size, size, requires_grad=True)
    logits = c(x, torch.tensor([0, 10, 999]))
    assert logits.shape == (B, 10)
    lp = cls.log_prob(c, x, 5, _labels())
    assert lp.shape == (B,) and torch.all(lp <= 0)
    (g,) = torch.autograd.grad(lp.sum(), x)                  # what classifier guidance needs
    assert g.shape == x.shape and g.abs().sum() > 0


def test_point_classifier():
    c = cls.PointClassifier(dim=2, num_classes=3)
    x = torch.randn(B, 2, requires_grad=True)
    assert c(x, torch.tensor([1, 2, 3])).shape == (B, 3)
    (g,) = torch.autograd.grad(cls.log_prob(c, x, 4, torch.tensor([0, 1, 2])).sum(), x)
    assert g.shape == (B, 2)
    with pytest.raises(ValueError, match="x has shape"):
        c(torch.randn(B, 3), 1)
    with pytest.raises(ValueError, match="allowed"):
        cls.log_prob(c, x, 4, torch.tensor([0, 1, 3]))


@pytest.mark.parametrize("kl", [False, True])
@pytest.mark.parametrize("size", [16, 32])
def test_autoencoder(kl, size, tmp_path):
    torch.manual_seed(0)
    model = ae.autoencoder_tiny(kl=kl)
    x = torch.rand(B, 1, size, size) * 2 - 1
    out = model(x)
    assert out["x_rec"].shape == x.shape and out["z"].shape == (B, 4, size // 4, size // 4)
    if kl:
        mean, logvar = model.encode(x)
        assert mean.shape == logvar.shape == (B, 4, size // 4, size // 4)
        g = torch.Generator().manual_seed(0)
        z1 = model.sample(mean, logvar, torch.Generator().manual_seed(0))
        assert torch.equal(z1, model.sample(mean, logvar, g))
        assert out["kl"].shape == (B,) and torch.all(out["kl"] >= 0)
        torch.testing.assert_close(ae.kl_divergence(torch.zeros(1, 2), torch.zeros(1, 2)), torch.zeros(1))
        model.eval()
        assert torch.equal(model.encode_latent(x), mean)
    assert model.decode(model.encode_latent(x)).shape == x.shape
    model.train()
    model.loss(x).backward()
    assert all(p.grad is not None for p in model.parameters())
    save_file(model.state_dict(), tmp_path / "ae.safetensors")
    other = ae.autoencoder_tiny(kl=kl)
    other.load_state_dict(load_file(tmp_path / "ae.safetensors"))
    torch.testing.assert_close(other.eval().decode(other.encode_latent(x)),
                               model.eval().decode(model.encode_latent(x)))


# ------------------------------------------------------------------ bad inputs

def test_bad_inputs():
    u = unet.unet_tiny(num_classes=10)
    x = torch.randn(B, 1, 16, 16)
    t = torch.tensor([1, 2, 3])
    with pytest.raises(ValueError, match="channels"):
        u(torch.randn(B, 3, 16, 16), t, _labels())
    with pytest.raises(ValueError, match="divisible by 4"):
        u(torch.randn(B, 1, 18, 18), t, _labels())
    with pytest.raises(ValueError, match="allowed"):
        u(x, t, torch.tensor([0, 1, 11]))
    with pytest.raises(ValueError, match="allowed"):
        u(x, t, torch.tensor([0, -1, 2]))
    with pytest.raises(TypeError, match="integer"):
        u(x, t, torch.tensor([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match="shape"):
        u(x, torch.tensor([1, 2]), _labels())
    with pytest.raises(TypeError, match="floating"):
        u(x.long(), t, _labels())
    with pytest.raises(ValueError, match="unconditional"):
        unet.unet_tiny()(x, t, _labels())
    with pytest.raises(ValueError, match="attention_levels"):
        unet.UNet(channel_mult=(1, 2), attention_levels=(2,))

    d = dit.dit_tiny()
    with pytest.raises(ValueError, match="channels"):
        d(torch.randn(B, 3, 16, 16), t, _labels())
    with pytest.raises(ValueError, match="input_size=16"):
        d(torch.randn(B, 1, 32, 32), t, _labels())
    with pytest.raises(ValueError, match="divisible by patch_size"):
        d(torch.randn(B, 1, 15, 15), t, _labels())
    with pytest.raises(ValueError, match="divisible by patch_size"):
        dit.dit_tiny(input_size=18, patch_size=4)
    with pytest.raises(ValueError, match="allowed"):
        d(x, t, torch.tensor([0, 1, 11]))
    with pytest.raises(ValueError, match="unknown conditioning 'film'"):
        dit.dit_tiny(conditioning="film")
    with pytest.raises(ValueError, match="unknown prediction"):
        dit.dit_tiny(prediction="score")
    with pytest.raises(ValueError, match="num_heads"):
        dit.dit_tiny(hidden_size=66, num_heads=4)
    with pytest.raises(ValueError, match="null class"):
        dit.dit_tiny(class_dropout_prob=0.0)(x, t, None)
    with pytest.raises(ValueError, match="null class"):
        dit.dit_tiny(class_dropout_prob=0.0)(x, t, _labels(), force_drop_ids=torch.ones(B))
    with pytest.raises(ValueError, match="null class"):
        unet.unet_tiny(num_classes=10, class_dropout_prob=0.0)(x, t, _labels(), force_drop_ids=torch.ones(B))
    with pytest.raises(ValueError, match="force_drop_ids must have shape"):
        d(x, t, _labels(), force_drop_ids=torch.ones(2))

    m = mmdit.mmdit_tiny()
    with pytest.raises(ValueError, match="exactly one"):
        mmdit.mmdit_tiny(context_dim=8)
    with pytest.raises(ValueError, match="allowed"):
        m(x, t, torch.tensor([0, 1, 12]))
    with pytest.raises(ValueError, match="cond must have shape"):
        mmdit.mmdit_tiny(num_classes=None, context_dim=8)(x, t, torch.randn(B, 2, 7))
    with pytest.raises(ValueError, match="channels"):
        ae.autoencoder_tiny()(torch.randn(B, 2, 16, 16))
    with pytest.raises(ValueError, match="divisible by 4"):
        ae.autoencoder_tiny()(torch.randn(B, 1, 14, 14))


def test_registries_and_sizes():
    counts = {name: _n_params(f()) for name, f in {**unet.UNET_MODELS, "dit_tiny": dit.dit_tiny,
                                                   "dit_mini": dit.dit_mini, **mmdit.MMDIT_MODELS}.items()}
    assert 0.5e6 <= counts["unet_small"] <= 2e6          # the default CPU-trainable U-Net
    assert counts["unet_tiny"] < counts["unet_small"] < counts["unet_base"]
    assert counts["dit_tiny"] < 0.5e6 and counts["dit_mini"] < 2.5e6
    assert set(dit.DIT_MODELS) >= {"DiT-XL/2", "DiT-S/8", "dit_tiny", "dit_mini"}


@pytest.mark.parametrize("name", ["unet_class", "dit_adaln_zero", "mmdit_class"])
def test_an_int_label_means_the_same_label_for_every_row(name):
    """Nets take the label forms the guidance functions take: an int or a (B,) tensor."""
    build, _ = MODELS[name]
    torch.manual_seed(0)
    model = _perturb(build(16).eval())
    x, t = _inputs(1, 16)
    torch.testing.assert_close(model(x, t, 4), model(x, t, torch.full((len(x),), 4)))
    with pytest.raises(TypeError, match="cond must be an int or a LongTensor"):
        model(x, t, 4.0)
