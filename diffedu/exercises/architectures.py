"""Exercises of chapter 06: the pieces of a Diffusion Transformer (patchify, adaLN modulate,
the sinusoidal timestep embedding, an adaLN-Zero residual branch)."""
from __future__ import annotations

import math

import torch

from . import Exercise


def _rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# -- reference solutions (kept short: they are what `solution` prints) --------------------
def patchify(x, p):
    """(B, C, H, W) -> (B, T, p * p * C), T = (H / p) * (W / p), row-major patches, each
    patch's pixels in (row, column, channel) order."""
    B, C, H, W = x.shape
    x = x.reshape(B, C, H // p, p, W // p, p).permute(0, 2, 4, 3, 5, 1)   # (B, H/p, W/p, p, p, C)
    return x.reshape(B, (H // p) * (W // p), p * p * C)


def modulate(x, shift, scale):
    """x: (B, T, D); shift, scale: (B, D) -> (B, T, D), the same affine map for every token."""
    return x * (1 + scale[:, None]) + shift[:, None]


def timestep_embedding(t, dim):
    """t: (B,) -> (B, dim): [cos(t * f_i), sin(t * f_i)], f_i = 10000 ** (-i / (dim / 2))."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float64) / half)
    args = t[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def adaln_zero_residual(x, branch_out, gate):
    """One gated residual update of adaLN-Zero: x + gate * f(x); gate: (B, D)."""
    return x + gate[:, None] * branch_out


EXERCISES = [
    Exercise("patchify", "06", "cut images (B, C, H, W) into a sequence of flattened p x p patches",
             patchify,
             lambda: [{"x": _rand(2, C, H, H, seed=k), "p": p}
                      for k, (C, H, p) in enumerate([(1, 8, 2), (3, 8, 4), (2, 6, 3)])],
             "reshape to (B, C, H/p, p, W/p, p), move the axes to (B, H/p, W/p, p, p, C), then flatten "
             "the first two grid axes into T and the last three into p*p*C."),
    Exercise("modulate", "06", "the adaptive-LayerNorm shift and scale, one per sample, shared by all tokens",
             modulate,
             lambda: [{"x": _rand(3, 5, 4, seed=k), "shift": _rand(3, 4, seed=10 + k), "scale": _rand(3, 4, seed=20 + k)}
                      for k in range(3)],
             "x * (1 + scale) + shift, with shift and scale broadcast over the token axis: unsqueeze(1)."),
    Exercise("timestep_embedding", "06", "the sinusoidal embedding of DiT/ADM (cosines first, then sines)",
             timestep_embedding,
             lambda: [{"t": torch.tensor(ts, dtype=torch.float64), "dim": d}
                      for ts, d in [([50.0], 8), ([0.0, 1.0, 999.0], 16), ([3.5, 700.0], 6)]],
             "half = dim // 2 frequencies f_i = exp(-ln(10000) * i / half), i = 0..half-1; "
             "concatenate cos(t f) and sin(t f) along the last axis."),
    Exercise("adaln_zero_residual", "06", "the gated residual update x + gate * f(x) of an adaLN-Zero block",
             adaln_zero_residual,
             lambda: [{"x": _rand(2, 6, 4, seed=k), "branch_out": _rand(2, 6, 4, seed=30 + k),
                       "gate": _rand(2, 4, seed=40 + k) * (k > 0)} for k in range(3)],
             "the gate has one value per sample and channel: broadcast it over the tokens. "
             "With gate = 0 (adaLN-Zero at initialization) the block is the identity."),
]


def _self_check():
    """The references agree with the package (the exercises cannot drift from diffedu)."""
    from ..nets import dit, embeddings
    x = _rand(2, 3, 8, 8)
    torch.testing.assert_close(patchify(x, 4), dit.patchify(x, 4))
    a, s, b = _rand(2, 5, 4), _rand(2, 4, seed=1), _rand(2, 4, seed=2)
    torch.testing.assert_close(modulate(a, b, s), dit.modulate(a, b, s))
    t = torch.tensor([0.0, 50.0, 999.0], dtype=torch.float64)
    torch.testing.assert_close(timestep_embedding(t, 8).float(), embeddings.timestep_embedding(t, 8))
