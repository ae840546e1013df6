"""Exercises of chapter 06: reasoning about a Diffusion Transformer rather than retyping it.

  dit_size            predict the token and parameter counts of a DiT from its sizes
                      (and see that the patch size changes the tokens, hardly the parameters)
  adaln_zero_at_init  what a fresh adaLN-Zero branch x + gate * f computes, and which
                      gradients its first backward pass carries (why it starts as the identity)
  attention_baseline  the shares uniform attention gives in MMDiT's joint attention: the
                      baseline any measured attention share must be read against
"""
from __future__ import annotations

import torch

from . import Exercise


def _rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _num(v):
    return torch.tensor(float(v), dtype=torch.float64)


# -- reference solutions (kept short: they are what `solution` prints) --------------------
def dit_size(image_size, channels, patch_size, hidden_size, depth, num_classes):
    """(T, P): tokens and learned parameters of `dit.DiT` with adaLN-Zero, mlp_ratio 4, 256
    sinusoidal features of t, a null-label row and out_channels = channels (learn_sigma=False).
    The fixed sin-cos pos_embed is not learned, so not counted."""
    H, C, p, D = image_size, channels, patch_size, hidden_size
    T = (H // p) ** 2                                   # one token per p x p patch
    patch_embed = p * p * C * D + D                     # a linear map R^(p^2 C) -> R^D, per token
    t_embed = (256 * D + D) + (D * D + D)               # MLP 256 -> D -> D on the sinusoids of t
    y_embed = (num_classes + 1) * D                     # label table, plus the null label of CFG
    block = ((3 * D * D + 3 * D) + (D * D + D)          # attention: qkv, output projection
             + (D * 4 * D + 4 * D) + (4 * D * D + D)    # MLP: D -> 4D -> D
             + (D * 6 * D + 6 * D))                     # adaLN: 6 vectors (shift, scale, gate x 2) from c
    final = (D * 2 * D + 2 * D) + (D * p * p * C + p * p * C)   # adaLN (shift, scale), linear to pixels
    return _num(T), _num(patch_embed + t_embed + y_embed + depth * block + final)


def adaln_zero_at_init(x, f, g):
    """A fresh adaLN-Zero branch out = x + gate * f with gate = 0 (its regressor is zeroed).
    x: block input, f: the branch's output f(modulate(LN(x))), g = dL/d(out); all (B, T, D).
    Returns out, dL/dx, dL/dgate (B, D) and dL/df."""
    gate = torch.zeros(x.shape[0], x.shape[2], dtype=x.dtype)
    out = x + gate[:, None] * f                          # = x: the block is the identity
    grad_x = g                                           # d out / dx = I + gate * df/dx = I
    grad_gate = (g * f).sum(1)                           # the gate sees the branch: it learns first
    grad_f = gate[:, None] * g                           # = 0: no gradient reaches the branch's weights yet
    return out, grad_x, grad_gate, grad_f


def attention_baseline(L, T):
    """Joint attention over [L context tokens; T image tokens], every query spreading its
    weight uniformly over the L + T keys: (share an image query gives the context, share a
    context query gives the image)."""
    return _num(L / (L + T)), _num(T / (L + T))


EXERCISES = [
    Exercise("dit_size", "06",
             "predict the tokens T and learned parameters of a DiT (adaLN-Zero) from its sizes, as (T, params)",
             dit_size,
             lambda: [dict(image_size=H, channels=C, patch_size=p, hidden_size=D, depth=n, num_classes=k)
                      for H, C, p, D, n, k in [(16, 1, 2, 64, 4, 10), (16, 1, 4, 64, 4, 10), (32, 1, 4, 128, 6, 10),
                                               (32, 4, 2, 1152, 28, 1000), (32, 4, 8, 1152, 28, 1000)]],
             "T = (H / p)^2. Go module by module (print(dit.dit_tiny()) lists them) and count each Linear "
             "as in * out + out; the stride-p patch convolution is a Linear on a flattened patch. The "
             "LayerNorms of adaLN blocks have no parameters of their own, and the label table has one row "
             "more than there are classes."),
    Exercise("adaln_zero_at_init", "06",
             "a fresh adaLN-Zero branch x + gate * f: its output and the gradients dL/dx, dL/dgate, dL/df at init",
             adaln_zero_at_init,
             lambda: [{"x": _rand(B, T, D, seed=k), "f": _rand(B, T, D, seed=10 + k), "g": _rand(B, T, D, seed=20 + k)}
                      for k, (B, T, D) in enumerate([(2, 5, 4), (3, 7, 6), (1, 64, 8)])],
             "At initialization the zeroed regressor gives gate = 0 for every sample and channel. Differentiate "
             "out = x + gate * f by each of x, gate (summing over the tokens, which share one gate) and f."),
    Exercise("attention_baseline", "06",
             "the attention shares uniform attention gives over [L context; T image] tokens, as (image->context, context->image)",
             attention_baseline,
             lambda: [{"L": L, "T": T} for L, T in [(4, 64), (1, 16), (77, 4096), (2, 2)]],
             "With uniform attention each of the L + T keys gets weight 1 / (L + T), whoever asks."),
]


def _self_check():
    """The references agree with the package (the exercises cannot drift from diffedu)."""
    from ..nets import dit
    for H, C, p, D, n, k in [(16, 1, 2, 64, 4, 10), (16, 2, 4, 32, 2, 3), (12, 3, 3, 48, 1, 5)]:
        m = dit.DiT(input_size=H, patch_size=p, in_channels=C, hidden_size=D, depth=n, num_heads=4, num_classes=k)
        T, P = dit_size(H, C, p, D, n, k)
        assert T == m.x_embedder.num_patches, (T, m.x_embedder.num_patches)
        assert P == sum(q.numel() for q in m.parameters() if q.requires_grad), (H, C, p, D, n, k)
    # A fresh adaLN-Zero block, by autograd: out = x, dL/dx = g, no gradient to the attention and MLP
    # weights, and the attention gate's bias gets sum over (B, T) of g * attn(LN(x)).
    torch.manual_seed(0)
    blk = dit.dit_tiny().blocks[0].double()
    D = blk.attn.proj.out_features
    x = _rand(2, 6, D, seed=1).requires_grad_(True)
    c, g = _rand(2, D, seed=2), _rand(2, 6, D, seed=3)
    out = blk(x, c)
    (out * g).sum().backward()
    with torch.no_grad():
        f_attn = blk.attn(blk.norm1(x))                  # modulate(LN(x), 0, 0) = LN(x)
    ref = adaln_zero_at_init(x.detach(), f_attn, g)
    torch.testing.assert_close(out, ref[0], rtol=0, atol=0)
    torch.testing.assert_close(x.grad, ref[1])
    torch.testing.assert_close(blk.adaLN_modulation[-1].bias.grad[2 * D:3 * D], ref[2].sum(0))
    for q in (*blk.attn.parameters(), *blk.mlp.parameters()):
        assert q.grad is None or q.grad.abs().max() == 0
