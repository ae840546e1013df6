"""adaLN (DiT) building blocks in torch: LayerNorm + modulation, gated residual, and both fused.

Scope: plain-torch references and public dispatchers. The Triton kernel beside it
(`adaln_triton.py`) computes all three with one row kernel.

In a DiT block (Peebles & Xie 2023) the conditioning c produces, per sample, shift, scale
and gate vectors, and each sub-layer f (attention, MLP) is wrapped as
    x <- x + gate[:, None] * f( LN(x) * (1 + scale[:, None]) + shift[:, None] )
where LN is a LayerNorm over channels without learned affine (eps = 1e-6 in DiT).

Notation:
    x, y             : (B, T, C)  tokens (B samples, T tokens, C channels); y = f(...) output
    shift, scale, gate : (B, C)   per-sample adaLN vectors, broadcast over the T tokens
    LN(x)            = (x - mean_C(x)) / sqrt(var_C(x) + eps)   (biased variance, as torch)

Three functions:
    layernorm_modulate(x, shift, scale)             h = LN(x) (1 + scale) + shift
    gated_residual(x, gate, y)                      x + gate y
    modulated_residual(x, gate, y, shift, scale)    (x_new, h) with x_new = x + gate y and
                                                    h = LN(x_new) (1 + scale) + shift
`modulated_residual` is the fused choice: the residual add that closes one sub-layer and
the LayerNorm + modulation that opens the next one read the same row, so one kernel reads
x, y once and writes x_new, h once, instead of writing x_new and reading it back.
(Its shift/scale are those of the *next* sub-layer.)
"""
from __future__ import annotations

import torch

from .._validate import check_tensor
from ._dispatch import resolve_backend, same_device

__all__ = ["layernorm_modulate", "gated_residual", "modulated_residual",
           "layernorm_modulate_torch", "gated_residual_torch", "modulated_residual_torch",
           "DIT_LN_EPS"]

DIT_LN_EPS = 1e-6     # DiT's LayerNorm eps (elementwise_affine=False, eps=1e-6)
MAX_TRITON_C = 32768  # the kernel holds one row in registers; wider rows go to torch


# ---------------------------------------------------------------------------------------
# Input checks
# ---------------------------------------------------------------------------------------
def _check(x, eps=None, **per_sample):
    """x: (B, T, C); each of per_sample: (B, C) (or (B, T, C) for the name "y")."""
    check_tensor("x", x, ndim=3)
    B, T, C = x.shape
    for name, t in per_sample.items():
        check_tensor(name, t)
        want = (B, T, C) if name == "y" else (B, C)
        if tuple(t.shape) != want:
            raise ValueError(f"{name} must have shape {want} for x of shape {(B, T, C)}, "
                             f"got {tuple(t.shape)}")
    same_device(x=x, **per_sample)
    if eps is not None and (isinstance(eps, bool) or not isinstance(eps, (int, float))
                            or not eps > 0):
        raise ValueError(f"eps must be a number > 0, got {eps!r}")


def _dt(x):
    return torch.float64 if x.dtype == torch.float64 else torch.float32


# ---------------------------------------------------------------------------------------
# References (computed in float32, or float64 for float64 inputs; returned in x's dtype)
# ---------------------------------------------------------------------------------------
def _ln_modulate(x, shift, scale, eps):
    """The shared core: x (B, T, C) float, shift/scale (B, C) float -> (B, T, C)."""
    # 1. statistics over the channels of each token, (B, T, 1)
    mean = x.mean(dim=-1, keepdim=True)
    xc = x - mean
    var = (xc * xc).mean(dim=-1, keepdim=True)       # biased, as nn.LayerNorm
    rstd = torch.rsqrt(var + eps)
    # 2. normalise, then modulate with the per-sample vectors broadcast over tokens
    return xc * rstd * (1 + scale[:, None, :]) + shift[:, None, :]


def layernorm_modulate_torch(x, shift, scale, eps=DIT_LN_EPS):
    """LN(x) (1 + scale[:, None]) + shift[:, None]; x: (B, T, C), shift, scale: (B, C)."""
    _check(x, eps, shift=shift, scale=scale)
    dt = _dt(x)
    return _ln_modulate(x.to(dt), shift.to(dt), scale.to(dt), eps).to(x.dtype)


def gated_residual_torch(x, gate, y):
    """x + gate[:, None] y; x, y: (B, T, C), gate: (B, C)."""
    _check(x, gate=gate, y=y)
    dt = _dt(x)
    return (x.to(dt) + gate.to(dt)[:, None, :] * y.to(dt)).to(x.dtype)


def modulated_residual_torch(x, gate, y, shift, scale, eps=DIT_LN_EPS):
    """(x_new, h): x_new = x + gate[:, None] y, h = LN(x_new) (1 + scale[:, None]) + shift[:, None].

    x, y: (B, T, C); gate, shift, scale: (B, C). h is computed from x_new before it is
    rounded to x's dtype (as the fused kernel does).
    """
    _check(x, eps, gate=gate, y=y, shift=shift, scale=scale)
    dt = _dt(x)
    x_new = x.to(dt) + gate.to(dt)[:, None, :] * y.to(dt)
    h = _ln_modulate(x_new, shift.to(dt), scale.to(dt), eps)
    return x_new.to(x.dtype), h.to(x.dtype)


# ---------------------------------------------------------------------------------------
# Public dispatchers
# ---------------------------------------------------------------------------------------
def _which(backend, x, *tensors):
    which = resolve_backend(backend, x, *tensors)
    if which == "triton" and backend == "auto" and x.shape[-1] > MAX_TRITON_C:
        which = "torch"
    return which


def layernorm_modulate(x, shift, scale, eps=DIT_LN_EPS, backend="auto"):
    """DiT's modulate(norm(x), shift, scale) = LN(x) (1 + scale[:, None]) + shift[:, None].

    x: (B, T, C); shift, scale: (B, C). Returns (B, T, C) in x's dtype. LayerNorm without
    affine, eps = 1e-6 as in DiT. backend: "auto" | "torch" | "triton".
    """
    _check(x, eps, shift=shift, scale=scale)
    if _which(backend, x, shift, scale) == "triton":
        from .adaln_triton import adaln_triton
        return adaln_triton(x, shift=shift, scale=scale, eps=eps)[1]
    return layernorm_modulate_torch(x, shift, scale, eps)


def gated_residual(x, gate, y, backend="auto"):
    """DiT's residual x + gate[:, None] * y; x, y: (B, T, C), gate: (B, C). Returns (B, T, C)."""
    _check(x, gate=gate, y=y)
    if _which(backend, x, gate, y) == "triton":
        from .adaln_triton import adaln_triton
        return adaln_triton(x, gate=gate, y=y)[0]
    return gated_residual_torch(x, gate, y)


def modulated_residual(x, gate, y, shift, scale, eps=DIT_LN_EPS, backend="auto"):
    """Fused gated residual + next LayerNorm-modulate; returns (x_new, h), each (B, T, C).

    x_new = x + gate[:, None] y; h = LN(x_new) (1 + scale[:, None]) + shift[:, None].
    x, y: (B, T, C); gate, shift, scale: (B, C). backend: "auto" | "torch" | "triton".
    """
    _check(x, eps, gate=gate, y=y, shift=shift, scale=scale)
    if _which(backend, x, gate, y, shift, scale) == "triton":
        from .adaln_triton import adaln_triton
        return adaln_triton(x, gate=gate, y=y, shift=shift, scale=scale, eps=eps)
    return modulated_residual_torch(x, gate, y, shift, scale, eps)
