"""Triton kernel for one fused DDIM / DDPM step.

Read beside `ddim_step.py`: the kernel computes `ddim_step_torch`, and the numbered
comments are the numbered steps there. Importing this module imports triton.

Notation (as in ddim_step.py; all arithmetic in float32):
    numel        total number of elements of xt (any shape, seen flat)
    inner        elements per sample, numel / B; element i belongs to sample i // inner
    ab_t, ab_prev  alpha_bar_t and alpha_bar_prev, one per sample: (B,) float32
    a, s         sqrt(ab_t), sqrt(1 - ab_t)

Each program handles BLOCK consecutive elements: it loads xt, model_out (and noise) once,
keeps every intermediate (x0_hat, eps_hat, sigma, ...) in registers, and stores x_prev and
x0_hat once. Memory traffic: 2 or 3 reads + 2 writes per element, the minimum.
In-kernel noise uses tl.randn(seed, offset): a counter-based generator (Philox), so the
noise of element i depends only on (seed, i): no state, same seed gives the same output.
"""
from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from ._dispatch import check_interpretable
from .ddim_step import PREDICTIONS, _check_inputs

NOISE_NONE, NOISE_TENSOR, NOISE_SEED = 0, 1, 2


@triton.jit
def _ddim_step_kernel(
    xt_ptr, model_out_ptr, noise_ptr,         # inputs, numel elements each (noise: maybe unused)
    ab_t_ptr, ab_prev_ptr,                    # (B,) float32 noise levels
    x_prev_ptr, x0_ptr,                       # outputs, numel elements each, xt's dtype
    numel, inner, eta, clip, seed,
    PREDICTION: tl.constexpr,                 # 0: eps, 1: x0, 2: v
    NOISE: tl.constexpr,                      # 0: none (eta = 0), 1: noise tensor, 2: tl.randn
    CLIP: tl.constexpr,                       # clip x0_hat to [-clip, clip]?
    BLOCK: tl.constexpr,
):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)  # flat element indices
    ok = offs < numel
    b = offs // inner                                      # sample of each element

    x = tl.load(xt_ptr + offs, mask=ok, other=0.0).to(tl.float32)
    out = tl.load(model_out_ptr + offs, mask=ok, other=0.0).to(tl.float32)
    ab_t = tl.load(ab_t_ptr + b, mask=ok, other=0.5)
    ab_prev = tl.load(ab_prev_ptr + b, mask=ok, other=0.5)

    # 1. a, s = ab_t.sqrt(), (1 - ab_t).sqrt()
    a = tl.sqrt(ab_t)
    s = tl.sqrt(1.0 - ab_t)
    # 2. x0_hat and eps_hat from the prediction
    if PREDICTION == 0:      # eps
        eps = out
        x0 = (x - s * eps) / a
    elif PREDICTION == 1:    # x0
        x0 = out
        eps = (x - a * x0) / s
    else:                    # v
        x0 = a * x - s * out
        eps = s * x + a * out
    # 3. x0 = x0.clamp(-clip, clip); eps = (x - a * x0) / s
    if CLIP:
        x0 = tl.minimum(tl.maximum(x0, -clip), clip)
        eps = (x - a * x0) / s
    # 4. sigma = eta * sqrt((1 - ab_prev) / (1 - ab_t)) * sqrt(max(1 - ab_t / ab_prev, 0))
    sigma = eta * tl.sqrt((1.0 - ab_prev) / (1.0 - ab_t)) \
        * tl.sqrt(tl.maximum(1.0 - ab_t / ab_prev, 0.0))
    # 5. x_prev = sqrt(ab_prev) x0 + sqrt(max(1 - ab_prev - sigma^2, 0)) eps + sigma z
    x_prev = tl.sqrt(ab_prev) * x0 + tl.sqrt(tl.maximum(1.0 - ab_prev - sigma * sigma, 0.0)) * eps
    if NOISE == 1:
        z = tl.load(noise_ptr + offs, mask=ok, other=0.0).to(tl.float32)
        x_prev += sigma * z
    elif NOISE == 2:
        z = tl.randn(seed, offs)             # standard normal, a function of (seed, offs)
        x_prev += sigma * z

    tl.store(x_prev_ptr + offs, x_prev.to(x_prev_ptr.dtype.element_ty), mask=ok)
    tl.store(x0_ptr + offs, x0.to(x0_ptr.dtype.element_ty), mask=ok)


def ddim_step_triton(xt, model_out, alpha_bar_t, alpha_bar_prev, eta=0.0, prediction="eps",
                     noise=None, seed=None, clip=None, *, block=1024, num_warps=4,
                     poison=False):
    """Triton version of `ddim_step_torch`; same arguments, returns (x_prev, x0_hat).

    Without noise and seed (and eta > 0), the seed is drawn from torch's global generator,
    so `torch.manual_seed` makes the call reproducible. poison=True pre-fills the outputs
    with NaN (a test aid: an element no program wrote stays NaN).
    """
    ab_t, ab_prev, eta, clip = _check_inputs(xt, model_out, alpha_bar_t, alpha_bar_prev, eta,
                                             prediction, noise, seed, clip)
    numel = xt.numel()
    if numel >= 2**31:
        raise ValueError("ddim_step_triton uses 32-bit offsets: xt must have < 2**31 elements")
    x_prev = torch.empty(xt.shape, dtype=xt.dtype, device=xt.device)
    x0 = torch.empty(xt.shape, dtype=xt.dtype, device=xt.device)
    if poison:
        x_prev.fill_(math.nan)
        x0.fill_(math.nan)
    if numel == 0:
        return x_prev, x0
    B = ab_t.shape[0]
    if eta == 0:
        mode = NOISE_NONE
    elif noise is not None:
        mode = NOISE_TENSOR
    else:
        mode = NOISE_SEED
        if seed is None:
            seed = int(torch.randint(0, 2**31 - 1, (1,)).item())
    xt_c, out_c = xt.contiguous(), model_out.contiguous()
    noise_c = noise.contiguous() if mode == NOISE_TENSOR else xt_c   # dummy pointer otherwise

    check_interpretable(_ddim_step_kernel, xt)
    grid = (triton.cdiv(numel, block),)
    _ddim_step_kernel[grid](
        xt_c, out_c, noise_c, ab_t.float().contiguous(), ab_prev.float().contiguous(), x_prev, x0,
        numel, numel // B, eta, 0.0 if clip is None else clip, 0 if seed is None else seed,
        PREDICTION=PREDICTIONS.index(prediction), NOISE=mode, CLIP=clip is not None,
        BLOCK=block, num_warps=num_warps)
    return x_prev, x0
