"""Triton kernel for DiT's adaLN pieces: gated residual and/or LayerNorm + modulation.

Read beside `adaln.py`: one row kernel, specialised at compile time by two flags,
computes the three torch references there:
    HAS_RESIDUAL  HAS_NORM   computes                                    reference
        no           yes     h = LN(x) (1 + scale) + shift           layernorm_modulate_torch
        yes          no      x_new = x + gate y                      gated_residual_torch
        yes          yes     x_new = x + gate y,                     modulated_residual_torch
                             h = LN(x_new) (1 + scale) + shift
(The flags are tl.constexpr: each combination compiles to its own kernel without the
branches, so the unused loads and stores cost nothing.) Importing this module imports triton.

Notation (as in adaln.py; all arithmetic in float32):
    B, T, C     samples, tokens, channels; row = b T + t is one token, C contiguous values
    BLOCK_C     next power of two >= C: one program holds its whole row in registers,
                so mean and variance need no second pass over memory
"""
from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from ._dispatch import check_interpretable, next_power_of_2
from .adaln import DIT_LN_EPS, MAX_TRITON_C, _check


@triton.jit
def _adaln_row_kernel(
    x_ptr, y_ptr,                             # (B, T, C) inputs (y used when HAS_RESIDUAL)
    gate_ptr, shift_ptr, scale_ptr,           # (B, C) per-sample vectors
    x_new_ptr, h_ptr,                         # (B, T, C) outputs, x's dtype
    T, C, eps,
    HAS_RESIDUAL: tl.constexpr, HAS_NORM: tl.constexpr, BLOCK_C: tl.constexpr,
):
    row = tl.program_id(0)                    # token index b * T + t
    b = row // T                              # its sample
    cols = tl.arange(0, BLOCK_C)
    ok = cols < C
    x = tl.load(x_ptr + row * C + cols, mask=ok, other=0.0).to(tl.float32)

    if HAS_RESIDUAL:
        # torch: x_new = x + gate[:, None, :] * y
        y = tl.load(y_ptr + row * C + cols, mask=ok, other=0.0).to(tl.float32)
        gate = tl.load(gate_ptr + b * C + cols, mask=ok, other=0.0).to(tl.float32)
        x = x + gate * y
        tl.store(x_new_ptr + row * C + cols, x.to(x_new_ptr.dtype.element_ty), mask=ok)

    if HAS_NORM:
        # 1. torch: mean = x.mean(-1); xc = x - mean
        #           var = (xc * xc).mean(-1); rstd = rsqrt(var + eps)
        mean = tl.sum(x, axis=0) / C          # padding columns were loaded as 0
        xc = tl.where(ok, x - mean, 0.0)      # keep padding at 0 for the variance
        var = tl.sum(xc * xc, axis=0) / C
        rstd = 1.0 / tl.sqrt(var + eps)
        # 2. torch: xc * rstd * (1 + scale[:, None, :]) + shift[:, None, :]
        shift = tl.load(shift_ptr + b * C + cols, mask=ok, other=0.0).to(tl.float32)
        scale = tl.load(scale_ptr + b * C + cols, mask=ok, other=0.0).to(tl.float32)
        h = xc * rstd * (1.0 + scale) + shift
        tl.store(h_ptr + row * C + cols, h.to(h_ptr.dtype.element_ty), mask=ok)


def adaln_triton(x, gate=None, y=None, shift=None, scale=None, eps=DIT_LN_EPS, *,
                 num_warps=None, poison=False):
    """Run the row kernel; returns (x_new, h), either None when not computed.

    x, y: (B, T, C); gate, shift, scale: (B, C). Give gate and y for the residual, shift
    and scale for the LayerNorm + modulation, or all four for the fused version.
    poison=True pre-fills the outputs with NaN (a test aid).
    """
    has_residual = gate is not None or y is not None
    has_norm = shift is not None or scale is not None
    if not (has_residual or has_norm):
        raise ValueError("give gate and y (residual), shift and scale (modulation), or all four")
    named = {}
    if has_residual:
        named.update(gate=gate, y=y)
    if has_norm:
        named.update(shift=shift, scale=scale)
    missing = [k for k, v in named.items() if v is None]
    if missing:
        raise ValueError(f"missing {missing}: gate and y go together, and so do shift and scale")
    _check(x, eps, **named)
    B, T, C = x.shape
    if C > MAX_TRITON_C:
        raise ValueError(f"the Triton adaLN kernel holds a row of C channels in registers and "
                         f"supports C <= {MAX_TRITON_C}, got C = {C}; use backend='torch'")
    if x.numel() >= 2**31:
        raise ValueError("the Triton adaLN kernel uses 32-bit offsets: x must have fewer than "
                         "2**31 elements")

    def new():
        out = torch.empty(x.shape, dtype=x.dtype, device=x.device)
        return out.fill_(math.nan) if poison else out

    x_new = new() if has_residual else None
    h = new() if has_norm else None
    if x.numel() == 0:
        return x_new, h
    x_c = x.contiguous()
    dummy = x_c                                # pointer for arguments a variant does not read
    args = [t.contiguous() if t is not None else dummy for t in (y, gate, shift, scale)]
    block_c = next_power_of_2(C)
    if num_warps is None:
        num_warps = 4 if block_c <= 2048 else (8 if block_c <= 8192 else 16)

    check_interpretable(_adaln_row_kernel, x)
    _adaln_row_kernel[(B * T,)](
        x_c, *args,
        x_new if x_new is not None else dummy, h if h is not None else dummy,
        T, C, float(eps),
        HAS_RESIDUAL=has_residual, HAS_NORM=has_norm, BLOCK_C=block_c, num_warps=num_warps)
    return x_new, h
