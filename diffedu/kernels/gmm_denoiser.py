"""The ideal denoiser E[x0 | xt] of a Gaussian mixture (or of a finite data set), in torch.

Scope: two plain-torch references and the public dispatcher `ideal_denoiser`. The Triton
kernel that computes the same function lives beside it in `gmm_denoiser_triton.py`;
its comments point back to the numbered steps here.

Notation (one row n of the batch, one mixture component k):
    xt    : (N, D)  noisy points, xt = a x0 + sqrt(1 - alpha_bar) eps, eps ~ N(0, I)
    means : (K, D)  component means mu_k (for a data set: the K training points)
    log_w : (K,)    log pi_k, log mixture weights (None = uniform)
    s2    : float   comp_var, the variance of every component (0 = a finite data set)
    a     = sqrt(alpha_bar)                  signal scale, per row: (N,)
    v     = a^2 s2 + 1 - alpha_bar           variance of xt given component k, per row: (N,)
    logit_nk = log pi_k - ||xt_n - a mu_k||^2 / (2 v)
    r_nk  = softmax_k(logit_nk)               responsibility of component k for row n
    E[x0 | xt_n] = sum_k r_nk [ mu_k (1 - a^2 s2 / v) + (a s2 / v) xt_n ]
                 = (1 - a^2 s2 / v) sum_k r_nk mu_k + (a s2 / v) xt_n      (sum_k r_nk = 1)

Why: under component k, x0 ~ N(mu_k, s2 I), so xt ~ N(a mu_k, v I) (hence the logits:
Bayes' rule with a shared isotropic variance, whose normalising constant cancels), and
the Gaussian posterior mean of x0 is mu_k + (a s2 / v)(xt - a mu_k).

Three implementations of the same function:
    ideal_denoiser_naive : materialises the (N, K) logits; short and literal.
    ideal_denoiser_torch : walks over K in chunks with an online log-sum-exp, never holding
                           more than (N, chunk_size) logits; the torch twin of the kernel.
    Triton kernel        : the same online log-sum-exp, tiled over N, K and D (flash-attention
                           style), so no (N, K) matrix ever exists, even in chunks.

Numerics: the squared distance is expanded, ||xt - a mu||^2 = ||xt||^2 - 2 a xt.mu + a^2 ||mu||^2,
so that the K-dimension work is a matrix product. The chunked versions drop the ||xt||^2
term: it is the same for every k and cancels in the softmax. When v is tiny (alpha_bar -> 1
with comp_var = 0) the logits become huge and nearly tied components are decided by
round-off; compute in float64 (backend="torch") when that matters.
"""
from __future__ import annotations

import math

import torch

from .._validate import check_tensor
from ._dispatch import resolve_backend, same_device

__all__ = ["ideal_denoiser", "ideal_denoiser_naive", "ideal_denoiser_torch"]


# ---------------------------------------------------------------------------------------
# Input checks shared by the three entry points
# ---------------------------------------------------------------------------------------
def _check_inputs(xt, means, alpha_bar, log_weights, comp_var):
    """Validate the arguments; return (alpha_bar as a (N,) tensor on xt's device, comp_var)."""
    check_tensor("xt", xt, ndim=2)
    check_tensor("means", means, ndim=2)
    N, D = xt.shape
    K = means.shape[0]
    if means.shape[1] != D:
        raise ValueError(f"means must be (K, D) with the D of xt (N, D) = {tuple(xt.shape)}, "
                         f"got means of shape {tuple(means.shape)}")
    if K == 0 or D == 0:
        raise ValueError(f"means must hold at least one component of dimension >= 1, "
                         f"got shape {tuple(means.shape)}")
    if log_weights is not None:
        check_tensor("log_weights", log_weights, ndim=1)
        if log_weights.shape[0] != K:
            raise ValueError(f"log_weights must be (K,) = ({K},) like means, "
                             f"got shape {tuple(log_weights.shape)}")
        same_device(xt=xt, means=means, log_weights=log_weights)
    else:
        same_device(xt=xt, means=means)
    if isinstance(comp_var, torch.Tensor):
        comp_var = comp_var.item()
    if isinstance(comp_var, bool) or not isinstance(comp_var, (int, float)) or not comp_var >= 0:
        raise ValueError(f"comp_var must be a number >= 0 (the variance of each component; "
                         f"0 for a finite data set), got {comp_var!r}")
    comp_var = float(comp_var)
    if isinstance(alpha_bar, torch.Tensor):
        check_tensor("alpha_bar", alpha_bar, ndim=(0, 1))
        if alpha_bar.ndim == 1 and alpha_bar.shape[0] != N:
            raise ValueError(f"alpha_bar must be a float or a (N,) = ({N},) tensor, "
                             f"got shape {tuple(alpha_bar.shape)}")
        ab = alpha_bar.to(device=xt.device, dtype=torch.float64).expand(N)
    elif isinstance(alpha_bar, (int, float)) and not isinstance(alpha_bar, bool):
        ab = torch.full((N,), float(alpha_bar), dtype=torch.float64, device=xt.device)
    else:
        raise TypeError(f"alpha_bar must be a float or a (N,) tensor, "
                        f"got {type(alpha_bar).__name__}")
    if N > 0:
        if not bool(((ab >= 0) & (ab <= 1)).all()):
            raise ValueError(f"alpha_bar must lie in [0, 1], got values in "
                             f"[{ab.min().item():.4g}, {ab.max().item():.4g}]")
        if comp_var == 0 and bool((ab == 1).any()):
            raise ValueError("alpha_bar = 1 with comp_var = 0 means no noise: the denoiser is "
                             "then the (discontinuous) nearest-mean map; use alpha_bar < 1")
    return ab, comp_var


def _compute_dtype(*tensors) -> torch.dtype:
    """float64 if any input is float64, else float32 (half inputs are computed in float32)."""
    return torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32


def _coefficients(ab, comp_var):
    """Per-row a, v and the two mixing coefficients of the posterior mean, each (N,)."""
    a = ab.sqrt()                              # signal scale sqrt(alpha_bar)
    v = a * a * comp_var + 1.0 - ab            # variance of xt under one component
    c_mu = 1.0 - a * a * comp_var / v          # weight of sum_k r_k mu_k
    c_x = a * comp_var / v                     # weight of xt
    return a, v, c_mu, c_x


# ---------------------------------------------------------------------------------------
# Reference 1: naive, materialises the (N, K) logits
# ---------------------------------------------------------------------------------------
def ideal_denoiser_naive(xt, means, alpha_bar, log_weights=None, comp_var=0.0):
    """E[x0 | xt] for x0 ~ sum_k pi_k N(mu_k, comp_var I), computed with full (N, K) logits.

    xt: (N, D), means: (K, D), alpha_bar: float or (N,), log_weights: (K,) or None (uniform).
    Returns (N, D) in xt's dtype. Memory O(N K): fine for small K, the problem the
    chunked versions solve for large K.
    """
    ab, s2 = _check_inputs(xt, means, alpha_bar, log_weights, comp_var)
    dt = _compute_dtype(xt, means)
    log_w = None if log_weights is None else log_weights.to(dt)
    return _naive_core(xt.to(dt), means.to(dt), ab.to(dt), log_w, s2).to(xt.dtype)


def _naive_core(x, mu, ab, log_w, s2):
    """The math of `ideal_denoiser_naive` on checked tensors of one float dtype.

    x: (N, D), mu: (K, D), ab: (N,), log_w: (K,) or None, s2: float. Returns (N, D).
    """
    a, v, c_mu, c_x = _coefficients(ab, s2)
    # 1. all squared distances ||xt_n - a_n mu_k||^2, (N, K)
    sq_dist = ((x * x).sum(1)[:, None] - 2 * a[:, None] * (x @ mu.T)
               + (a * a)[:, None] * (mu * mu).sum(1)[None, :])
    # 2. logits and responsibilities r_nk = softmax_k(log pi_k - dist / (2 v)), (N, K)
    logits = -sq_dist / (2 * v[:, None])
    if log_w is not None:
        logits = logits + log_w[None, :]
    r = torch.softmax(logits, dim=1)
    # 3. mix the per-component posterior means
    return c_mu[:, None] * (r @ mu) + c_x[:, None] * x


# ---------------------------------------------------------------------------------------
# Reference 2: chunked over K with an online log-sum-exp (the kernel's twin)
# ---------------------------------------------------------------------------------------
def ideal_denoiser_torch(xt, means, alpha_bar, log_weights=None, comp_var=0.0, chunk_size=4096):
    """Same function as `ideal_denoiser_naive`, streaming over K in chunks of `chunk_size`.

    xt: (N, D), means: (K, D), alpha_bar: float or (N,), log_weights: (K,) or None.
    Returns (N, D) in xt's dtype. Holds at most (N, chunk_size) logits at a time.

    The online log-sum-exp keeps, for each row n, three running quantities over the
    components seen so far:
        m   : (N,)    the largest logit so far
        l   : (N,)    sum_k exp(logit_k - m)
        acc : (N, D)  sum_k exp(logit_k - m) mu_k
    A new chunk with a larger max m' rescales the old sums by exp(m - m') before adding.
    At the end acc / l = sum_k r_k mu_k and m + log(l) = logsumexp_k(logit_k).
    """
    ab, s2 = _check_inputs(xt, means, alpha_bar, log_weights, comp_var)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    dt = _compute_dtype(xt, means)
    log_w = None if log_weights is None else log_weights.to(dt)
    return _chunked_core(xt.to(dt), means, ab.to(dt), log_w, s2, chunk_size).to(xt.dtype)


def _chunked_core(x, means, ab, log_w, s2, chunk_size):
    """The math of `ideal_denoiser_torch` on checked tensors (means is cast chunk by chunk).

    x: (N, D), means: (K, D), ab: (N,), log_w: (K,) or None, s2: float. Returns (N, D).
    """
    dt = x.dtype
    N, D = x.shape
    K = means.shape[0]
    a, v, c_mu, c_x = _coefficients(ab, s2)
    m = torch.full((N,), -math.inf, dtype=dt, device=x.device)
    l = torch.zeros(N, dtype=dt, device=x.device)
    acc = torch.zeros(N, D, dtype=dt, device=x.device)
    for k0 in range(0, K, chunk_size):
        mu = means[k0:k0 + chunk_size].to(dt)                                   # (Kc, D)
        # 1. logits of this chunk, without the row constant -||xt||^2 / (2 v)   (N, Kc)
        logits = (a[:, None] * (x @ mu.T) - 0.5 * (a * a)[:, None] * (mu * mu).sum(1)[None, :]) \
            / v[:, None]
        if log_w is not None:
            logits = logits + log_w[k0:k0 + chunk_size][None, :]
        # 2. online log-sum-exp: new running max, rescale the old sums, add this chunk
        m_new = torch.maximum(m, logits.max(dim=1).values)
        m_safe = torch.where(torch.isinf(m_new), torch.zeros_like(m_new), m_new)  # all -inf so far
        alpha = torch.exp(m - m_safe)                                           # (N,)
        p = torch.exp(logits - m_safe[:, None])                                 # (N, Kc)
        l = l * alpha + p.sum(dim=1)
        acc = acc * alpha[:, None] + p @ mu
        m = m_new
    # 3. normalise (acc / l = sum_k r_k mu_k) and mix with xt
    return c_mu[:, None] * (acc / l[:, None]) + c_x[:, None] * x


# ---------------------------------------------------------------------------------------
# Public dispatcher
# ---------------------------------------------------------------------------------------
def ideal_denoiser(xt, means, alpha_bar, log_weights=None, comp_var=0.0, backend="auto"):
    """Closed-form E[x0 | xt] for x0 ~ sum_k pi_k N(mu_k, comp_var I) (comp_var = 0: data set).

    xt: (N, D) noisy points at noise level alpha_bar (a float, or a (N,) tensor: one level
    per row); means: (K, D); log_weights: (K,) log pi_k, or None for uniform weights.
    Returns (N, D) in xt's dtype. backend: "auto" | "torch" | "triton" (see
    `diffedu.kernels`); Triton computes in float32, so float64 inputs go to torch under "auto".
    """
    _check_inputs(xt, means, alpha_bar, log_weights, comp_var)
    tensors = [xt, means] + ([log_weights] if log_weights is not None else [])
    if resolve_backend(backend, *tensors) == "triton":
        from .gmm_denoiser_triton import ideal_denoiser_triton
        return ideal_denoiser_triton(xt, means, alpha_bar, log_weights, comp_var)
    return ideal_denoiser_torch(xt, means, alpha_bar, log_weights, comp_var)
