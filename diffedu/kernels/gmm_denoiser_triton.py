"""Triton kernels for the ideal denoiser E[x0 | xt] (flash-attention style).

Read beside `gmm_denoiser.py`: the kernels compute `ideal_denoiser_torch`, and the
comments `# torch: ...` quote the line of the reference that each block computes.
Importing this module imports triton; `diffedu.kernels` imports it only on a Triton call.

Notation (as in gmm_denoiser.py; all arithmetic in float32):
    N, K, D     rows of xt, mixture components, dimension
    a, v        sqrt(alpha_bar) and a^2 s2 + 1 - alpha_bar, one per row
    logit_nk    log pi_k + (a xt_n.mu_k - a^2 ||mu_k||^2 / 2) / v   (row constant dropped)
    m, l, acc   online log-sum-exp state of a row: running max, running sum of exp(logit - m),
                running sum of exp(logit - m) mu_k restricted to this program's D columns
    S           number of K splits (flash-decoding): split s handles its own range of K and
                writes a partial state; the combine kernel merges the S states.

Tiling. Program (i, j, s) of the first kernel owns rows [i BLOCK_N, (i+1) BLOCK_N), output
columns [j BLOCK_DO, (j+1) BLOCK_DO) and split s. It walks its K range in tiles of BLOCK_K
components; for each tile it
    1. computes the (BLOCK_N, BLOCK_K) logits, looping over all D in chunks of BLOCK_D,
    2. updates (m, l, acc) with the online log-sum-exp,
so only a (BLOCK_N, BLOCK_K) tile of logits ever exists, never the (N, K) matrix.
Cost: when D > BLOCK_DO, each of the cdiv(D, BLOCK_DO) column blocks recomputes the logits
(the price of keeping acc in registers; flash-attention avoids it because its head
dimension is <= 256). For D <= BLOCK_DO (default 128) nothing is recomputed.

The second kernel merges the S partial states with the same online rule and applies
the epilogue out = c_mu * acc / l + c_x * xt. With S = 1 it is a cheap pass over (N, D).

Every load and store is masked: blocks overhang N, K and D at the edges (and Triton's CPU
interpreter does not check bounds).
"""
from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from ._dispatch import check_interpretable, next_power_of_2
from .gmm_denoiser import _check_inputs


@triton.jit
def _ideal_denoiser_partial_kernel(
    xt_ptr, means_ptr, log_w_ptr, ab_ptr,     # inputs: (N, D), (K, D), (K,), (N,), contiguous
    m_ptr, l_ptr, acc_ptr,                    # outputs: (S, N), (S, N), (S, N, D) float32
    N, K, D, comp_var, tiles_per_split,
    HAS_LOG_W: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_DO: tl.constexpr,
):
    pid_n = tl.program_id(0)                  # which block of rows
    pid_d = tl.program_id(1)                  # which block of output columns
    pid_s = tl.program_id(2)                  # which split of K
    rows = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)         # (BLOCK_N,)
    row_ok = rows < N
    cols = pid_d * BLOCK_DO + tl.arange(0, BLOCK_DO)       # (BLOCK_DO,) output columns
    col_ok = cols < D

    # torch: a, v = ab.sqrt(), a * a * comp_var + 1 - ab       (rows past N get a harmless 0.5)
    ab = tl.load(ab_ptr + rows, mask=row_ok, other=0.5)
    a = tl.sqrt(ab)
    inv_v = 1.0 / (a * a * comp_var + 1.0 - ab)

    # torch: m = -inf; l = 0; acc = 0
    m = tl.full((BLOCK_N,), float("-inf"), tl.float32)
    l = tl.zeros((BLOCK_N,), tl.float32)
    acc = tl.zeros((BLOCK_N, BLOCK_DO), tl.float32)

    # this split's components: [k_begin, k_end)
    k_begin = pid_s * tiles_per_split * BLOCK_K
    k_end = tl.minimum(k_begin + tiles_per_split * BLOCK_K, K)
    for k0 in range(k_begin, k_end, BLOCK_K):              # torch: for k0 in range(0, K, chunk)
        ks = k0 + tl.arange(0, BLOCK_K)                    # (BLOCK_K,) component indices
        k_ok = ks < k_end

        # 1. dot = xt @ mu.T and mu_sq = (mu * mu).sum(1), accumulated over D in chunks
        dot = tl.zeros((BLOCK_N, BLOCK_K), tl.float32)
        mu_sq = tl.zeros((BLOCK_K,), tl.float32)
        for d0 in range(0, D, BLOCK_D):
            ds = d0 + tl.arange(0, BLOCK_D)
            d_ok = ds < D
            x = tl.load(xt_ptr + rows[:, None] * D + ds[None, :],
                        mask=row_ok[:, None] & d_ok[None, :], other=0.0).to(tl.float32)
            mu = tl.load(means_ptr + ks[:, None] * D + ds[None, :],
                         mask=k_ok[:, None] & d_ok[None, :], other=0.0).to(tl.float32)
            # "ieee": full float32 products. TF32 would round xt.mu to ~1e-3 relative, and
            # the logits multiply it by 1/v, which is large at low noise.
            dot += tl.dot(x, tl.trans(mu), input_precision="ieee")
            mu_sq += tl.sum(mu * mu, axis=1)

        # torch: logits = (a * (x @ mu.T) - 0.5 * a^2 * (mu * mu).sum(1)) / v + log_w
        logits = (a[:, None] * dot - 0.5 * (a * a)[:, None] * mu_sq[None, :]) * inv_v[:, None]
        if HAS_LOG_W:
            log_w = tl.load(log_w_ptr + ks, mask=k_ok, other=0.0).to(tl.float32)
            logits += log_w[None, :]
        logits = tl.where(k_ok[None, :], logits, float("-inf"))  # padding components: weight 0

        # 2. online log-sum-exp
        # torch: m_new = torch.maximum(m, logits.max(dim=1).values); m_safe = ...
        m_new = tl.maximum(m, tl.max(logits, axis=1))
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        # torch: alpha = torch.exp(m - m_safe); p = torch.exp(logits - m_safe[:, None])
        alpha = tl.exp(m - m_safe)
        p = tl.exp(logits - m_safe[:, None])
        # torch: l = l * alpha + p.sum(dim=1)
        l = l * alpha + tl.sum(p, axis=1)
        # torch: acc = acc * alpha[:, None] + p @ mu      (only this program's columns of mu)
        mu_cols = tl.load(means_ptr + ks[:, None] * D + cols[None, :],
                          mask=k_ok[:, None] & col_ok[None, :], other=0.0).to(tl.float32)
        acc = acc * alpha[:, None] + tl.dot(p, mu_cols, input_precision="ieee")
        m = m_new

    # 3. write this split's partial state (m and l are the same for every column block,
    #    so only column block 0 writes them)
    state = pid_s * N + rows                                # row index into (S, N)
    if pid_d == 0:
        tl.store(m_ptr + state, m, mask=row_ok)
        tl.store(l_ptr + state, l, mask=row_ok)
    tl.store(acc_ptr + state[:, None] * D + cols[None, :], acc,
             mask=row_ok[:, None] & col_ok[None, :])


@triton.jit
def _ideal_denoiser_combine_kernel(
    xt_ptr, ab_ptr, m_ptr, l_ptr, acc_ptr,    # inputs: (N, D), (N,), (S, N), (S, N), (S, N, D)
    out_ptr,                                  # output: (N, D), xt's dtype
    N, D, S, comp_var,
    BLOCK_N: tl.constexpr, BLOCK_DO: tl.constexpr,
):
    pid_n = tl.program_id(0)
    pid_d = tl.program_id(1)
    rows = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    row_ok = rows < N
    cols = pid_d * BLOCK_DO + tl.arange(0, BLOCK_DO)
    col_ok = cols < D
    mask = row_ok[:, None] & col_ok[None, :]

    # merge the S partial states: the same online rule, one "chunk" per split
    m = tl.full((BLOCK_N,), float("-inf"), tl.float32)
    l = tl.zeros((BLOCK_N,), tl.float32)
    acc = tl.zeros((BLOCK_N, BLOCK_DO), tl.float32)
    for s in range(0, S):
        state = s * N + rows
        m_s = tl.load(m_ptr + state, mask=row_ok, other=float("-inf"))
        l_s = tl.load(l_ptr + state, mask=row_ok, other=0.0)
        acc_s = tl.load(acc_ptr + state[:, None] * D + cols[None, :], mask=mask, other=0.0)
        m_new = tl.maximum(m, m_s)
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        alpha = tl.exp(m - m_safe)            # rescales what was merged so far
        beta = tl.exp(m_s - m_safe)           # rescales split s
        l = l * alpha + l_s * beta
        acc = acc * alpha[:, None] + acc_s * beta[:, None]
        m = m_new

    # torch: out = c_mu * (acc / l) + c_x * x
    ab = tl.load(ab_ptr + rows, mask=row_ok, other=0.5)
    a = tl.sqrt(ab)
    v = a * a * comp_var + 1.0 - ab
    c_mu = 1.0 - a * a * comp_var / v
    c_x = a * comp_var / v
    l = tl.where(row_ok, l, 1.0)             # padding rows: avoid 0 / 0
    x = tl.load(xt_ptr + rows[:, None] * D + cols[None, :], mask=mask, other=0.0).to(tl.float32)
    out = c_mu[:, None] * (acc / l[:, None]) + c_x[:, None] * x
    tl.store(out_ptr + rows[:, None] * D + cols[None, :], out.to(out_ptr.dtype.element_ty),
             mask=mask)


def _default_blocks(N, K, D, device):
    """Block sizes and number of K splits. Powers of two; tl.dot needs every dim >= 16."""
    block_n = 64 if N >= 64 else max(16, next_power_of_2(N))
    block_k = 64
    block_d = min(64, max(16, next_power_of_2(D)))
    block_do = min(128, max(16, next_power_of_2(D)))
    # Enough programs to keep the GPU busy: about two per streaming multiprocessor.
    n_sm = torch.cuda.get_device_properties(device).multi_processor_count \
        if device.type == "cuda" else 1
    base = triton.cdiv(N, block_n) * triton.cdiv(D, block_do)
    num_splits = max(1, min(triton.cdiv(K, block_k), triton.cdiv(2 * n_sm, base)))
    return block_n, block_k, block_d, block_do, num_splits


def ideal_denoiser_triton(xt, means, alpha_bar, log_weights=None, comp_var=0.0, *,
                          num_splits=None, block_n=None, block_k=None, block_d=None,
                          block_do=None, num_warps=None, poison=False):
    """Triton version of `ideal_denoiser_torch`; same arguments, returns (N, D) in xt's dtype.

    Tuning knobs (None = heuristic): num_splits (S, K splits merged by the combine kernel),
    block_n / block_k / block_d / block_do (powers of two >= 16), num_warps.
    poison=True fills every buffer the kernels write with NaN first (a test aid: an element
    that no program wrote stays NaN).
    """
    ab, comp_var = _check_inputs(xt, means, alpha_bar, log_weights, comp_var)
    N, D = xt.shape
    K = means.shape[0]
    out = torch.empty(xt.shape, dtype=xt.dtype, device=xt.device)   # contiguous
    if poison:
        out.fill_(math.nan)
    if N == 0:
        return out
    xt_c, means_c = xt.contiguous(), means.contiguous()
    ab = ab.to(torch.float32).contiguous()
    log_w = log_weights.contiguous() if log_weights is not None else ab  # dummy pointer
    if max(xt.numel(), means.numel()) >= 2**31:
        raise ValueError("ideal_denoiser_triton uses 32-bit offsets: xt and means must each "
                         "have fewer than 2**31 elements")

    bn, bk, bd, bdo, ns = _default_blocks(N, K, D, xt.device)
    bn, bk, bd, bdo = block_n or bn, block_k or bk, block_d or bd, block_do or bdo
    for name, b in (("block_n", bn), ("block_k", bk), ("block_d", bd), ("block_do", bdo)):
        if b < 16 or b != next_power_of_2(b):
            raise ValueError(f"{name} must be a power of two >= 16, got {b}")
    k_tiles = triton.cdiv(K, bk)
    ns = max(1, min(num_splits or ns, k_tiles))
    tiles_per_split = triton.cdiv(k_tiles, ns)
    ns = triton.cdiv(k_tiles, tiles_per_split)      # so that no split is empty
    if num_warps is None:
        num_warps = 8 if bn * bdo >= 64 * 128 else 4

    if ns * N * D >= 2**31:
        raise ValueError("too many K splits for 32-bit offsets; pass a smaller num_splits")
    # partial states of the S splits, float32 (NaN-filled when poisoned)
    fill = torch.full if poison else (lambda shape, _v, **kw: torch.empty(shape, **kw))
    f32 = dict(dtype=torch.float32, device=xt.device)
    m_part = fill((ns, N), math.nan, **f32)
    l_part = fill((ns, N), math.nan, **f32)
    acc_part = fill((ns, N, D), math.nan, **f32)

    check_interpretable(_ideal_denoiser_partial_kernel, xt, means)
    grid = (triton.cdiv(N, bn), triton.cdiv(D, bdo), ns)
    _ideal_denoiser_partial_kernel[grid](
        xt_c, means_c, log_w, ab, m_part, l_part, acc_part,
        N, K, D, comp_var, tiles_per_split,
        HAS_LOG_W=log_weights is not None,
        BLOCK_N=bn, BLOCK_K=bk, BLOCK_D=bd, BLOCK_DO=bdo, num_warps=num_warps)
    grid = (triton.cdiv(N, bn), triton.cdiv(D, bdo))
    _ideal_denoiser_combine_kernel[grid](
        xt_c, ab, m_part, l_part, acc_part, out, N, D, ns, comp_var,
        BLOCK_N=bn, BLOCK_DO=bdo, num_warps=num_warps)
    return out
