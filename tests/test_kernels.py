"""Tests for diffedu.kernels: each Triton kernel against its torch reference, each reference
against an independent computation, the dispatcher, and input errors.

Where: with CUDA the kernels are compiled and run on the GPU; without it they run on CPU
under Triton's interpreter (TRITON_INTERPRET=1). Triton reads that variable when a kernel
is defined, so this module sets it while importing the kernel modules, and each test runs
with it set (an autouse fixture), without leaking it into other test modules.
Sizes are odd (not multiples of the block sizes) and small: the interpreter is slow.
"""
from __future__ import annotations

import importlib
import importlib.util
import math
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

import diffedu.kernels as K
from diffedu.kernels import _dispatch

HAS_TRITON = importlib.util.find_spec("triton") is not None
ON_GPU = torch.cuda.is_available()
DEVICE = torch.device("cuda" if ON_GPU else "cpu")
needs_triton = pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed")


def _import_kernel_modules():
    """Import the *_triton modules, under the interpreter when there is no GPU."""
    if not HAS_TRITON:
        return None
    names = ["gmm_denoiser_triton", "ddim_step_triton", "adaln_triton"]
    old = os.environ.get("TRITON_INTERPRET")
    if not ON_GPU:
        os.environ["TRITON_INTERPRET"] = "1"
    try:
        return {n: importlib.import_module(f"diffedu.kernels.{n}") for n in names}
    finally:
        if old is None:
            os.environ.pop("TRITON_INTERPRET", None)
        else:
            os.environ["TRITON_INTERPRET"] = old


MODS = _import_kernel_modules()


@pytest.fixture(autouse=True)
def _interpreter_env(monkeypatch):
    """Run each test with TRITON_INTERPRET=1 on CPU and no DIFFEDU_KERNELS override."""
    monkeypatch.delenv("DIFFEDU_KERNELS", raising=False)
    if not ON_GPU:
        monkeypatch.setenv("TRITON_INTERPRET", "1")


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _randn(*shape, seed, dtype=torch.float32, scale=1.0):
    return (scale * torch.randn(*shape, generator=_gen(seed))).to(device=DEVICE, dtype=dtype)


# Tolerances for kernel-vs-reference on the same inputs (both compute in float32; half
# precision adds one rounding of the output).
TOL = {torch.float32: dict(atol=1e-4, rtol=1e-4),
       torch.float16: dict(atol=2e-3, rtol=2e-3),
       torch.bfloat16: dict(atol=2e-2, rtol=2e-2)}


def _assert_written_and_close(got, want, dtype):
    assert got.dtype == want.dtype
    assert not torch.isnan(got).any(), "some output elements were never written (still NaN)"
    torch.testing.assert_close(got.float(), want.float(), **TOL[dtype])


# =======================================================================================
# Ideal denoiser
# =======================================================================================
def _ideal_exact_f64(xt, means, alpha_bar, log_weights, comp_var):
    """Independent float64 evaluation: explicit (N, K, D) differences and logsumexp."""
    x, mu = xt.double(), means.double()
    N, K = x.shape[0], mu.shape[0]
    ab = torch.as_tensor(alpha_bar, dtype=torch.float64, device=x.device).expand(N)
    lw = torch.full((K,), -math.log(K), dtype=torch.float64, device=x.device) \
        if log_weights is None else log_weights.double()
    a = ab.sqrt()[:, None, None]
    v = ab * comp_var + 1 - ab                                    # (N,)
    d2 = ((x[:, None, :] - a * mu[None, :, :]) ** 2).sum(-1)     # (N, K)
    logits = lw[None, :] - d2 / (2 * v[:, None])
    r = torch.exp(logits - torch.logsumexp(logits, dim=1, keepdim=True))
    post = mu[None] + (ab.sqrt() * comp_var / v)[:, None, None] * (x[:, None, :] - a * mu[None])
    return (r[:, :, None] * post).sum(1)                          # (N, D)


@pytest.mark.parametrize("comp_var", [0.0, 0.5])
@pytest.mark.parametrize("per_row_alpha", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
def test_ideal_references_match_exact_float64(comp_var, per_row_alpha, weighted):
    N, Kc, D = 13, 29, 5
    xt, means = _randn(N, D, seed=1), _randn(Kc, D, seed=2)
    ab = (0.05 + 0.9 * torch.rand(N, generator=_gen(3))).to(DEVICE) if per_row_alpha else 0.4
    lw = torch.randn(Kc, generator=_gen(4)).log_softmax(0).to(DEVICE) if weighted else None
    want = _ideal_exact_f64(xt, means, ab, lw, comp_var)
    ab64 = ab.double() if per_row_alpha else ab
    lw64 = lw.double() if weighted else None
    for fn in (K.ideal_denoiser_naive, K.ideal_denoiser_torch):
        torch.testing.assert_close(fn(xt.double(), means.double(), ab64, lw64, comp_var), want,
                                   atol=1e-10, rtol=1e-10)
        torch.testing.assert_close(fn(xt, means, ab, lw, comp_var).double(), want,
                                   atol=1e-4, rtol=1e-4)
    # chunks smaller than K, and not dividing it, give the same answer
    got = K.ideal_denoiser_torch(xt.double(), means.double(), ab64, lw64, comp_var, chunk_size=4)
    torch.testing.assert_close(got, want, atol=1e-10, rtol=1e-10)


def test_ideal_gaussian_mixture_matches_2d_quadrature():
    """comp_var > 0: E[x0 | xt] = int x0 p(x0) p(xt | x0) dx0 / int p(x0) p(xt | x0) dx0."""
    means = torch.tensor([[-1.5, 0.5], [1.0, 1.0], [0.5, -2.0]], dtype=torch.float64)
    log_w = torch.tensor([0.2, 0.5, 0.3], dtype=torch.float64).log()
    s2, ab = 0.3, 0.6
    xt = torch.tensor([[0.3, -0.2], [1.5, 0.7], [-2.0, 1.0]], dtype=torch.float64)
    g = torch.linspace(-7, 7, 561, dtype=torch.float64)
    X0 = torch.stack(torch.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)      # (G, 2)
    log_prior = torch.logsumexp(log_w[None] - ((X0[:, None] - means[None]) ** 2).sum(-1)
                                / (2 * s2), dim=1)                               # (G,)
    log_lik = -((xt[:, None] - math.sqrt(ab) * X0[None]) ** 2).sum(-1) / (2 * (1 - ab))  # (N, G)
    w = torch.softmax(log_prior[None] + log_lik, dim=1)
    want = w @ X0
    got = K.ideal_denoiser_naive(xt, means, ab, log_w, comp_var=s2)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-6)


def test_ideal_limits():
    """alpha_bar = 0: the prior mean sum_k pi_k mu_k; comp_var > 0 with K = 1: Gaussian Wiener."""
    means, lw = _randn(4, 3, seed=5).double(), torch.randn(4, generator=_gen(6)).double()
    xt = _randn(6, 3, seed=7).double()
    prior_mean = (lw.softmax(0)[:, None] * means).sum(0)
    got = K.ideal_denoiser_torch(xt, means, 0.0, lw.to(DEVICE))
    torch.testing.assert_close(got, prior_mean.expand(6, 3))
    ab, s2 = 0.7, 2.0                                   # single Gaussian: linear shrinkage
    want = means[0] + math.sqrt(ab) * s2 / (ab * s2 + 1 - ab) * (xt - math.sqrt(ab) * means[0])
    torch.testing.assert_close(K.ideal_denoiser_torch(xt, means[:1], ab, None, s2), want)


def test_ideal_matches_the_books_gaussian_mixture():
    """Same function as diffedu.exact.gmm.GaussianMixture.denoiser (full-covariance code path)."""
    from diffedu.exact.gmm import GaussianMixture

    means = torch.randn(5, 3, generator=_gen(8), dtype=torch.float64)
    w = torch.rand(5, generator=_gen(9), dtype=torch.float64) + 0.1
    xt = torch.randn(7, 3, generator=_gen(10), dtype=torch.float64)
    want = GaussianMixture(w, means, 0.3).denoiser(xt, 0.4)
    got = K.ideal_denoiser_torch(xt, means, 0.4, (w / w.sum()).log(), comp_var=0.3)
    torch.testing.assert_close(got, want, atol=1e-10, rtol=1e-10)


# (N, K, D, comp_var, per-row alpha, weights, splits, blocks (n, k, d, do) or None=default)
IDEAL_CASES = [
    (37, 301, 50, 0.0, False, False, 1, (16, 32, 16, 16)),
    (37, 301, 50, 0.3, True, True, 3, (16, 32, 16, 32)),
    (5, 70, 3, 0.0, True, True, 2, None),
    (19, 45, 150, 0.1, False, True, None, None),
]


@needs_triton
@pytest.mark.parametrize("case", IDEAL_CASES, ids=lambda c: f"N{c[0]}K{c[1]}D{c[2]}s{c[6]}")
def test_ideal_triton_matches_reference_fp32(case):
    N, Kc, D, s2, per_row, weighted, splits, blocks = case
    xt, means = _randn(N, D, seed=10), _randn(Kc, D, seed=11)
    ab = (0.05 + 0.85 * torch.rand(N, generator=_gen(12))).to(DEVICE) if per_row else 0.6
    lw = torch.randn(Kc, generator=_gen(13)).log_softmax(0).to(DEVICE) if weighted else None
    bn, bk, bd, bdo = blocks or (None,) * 4
    got = MODS["gmm_denoiser_triton"].ideal_denoiser_triton(
        xt, means, ab, lw, s2, num_splits=splits, block_n=bn, block_k=bk, block_d=bd,
        block_do=bdo, poison=True)
    _assert_written_and_close(got, K.ideal_denoiser_torch(xt, means, ab, lw, s2), torch.float32)


@needs_triton
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_ideal_triton_matches_reference_half(dtype):
    xt, means = _randn(21, 33, seed=14, dtype=dtype), _randn(90, 33, seed=15, dtype=dtype)
    lw = torch.randn(90, generator=_gen(16)).log_softmax(0).to(DEVICE, dtype)
    got = MODS["gmm_denoiser_triton"].ideal_denoiser_triton(
        xt, means, 0.5, lw, 0.2, num_splits=2, block_k=32, block_do=16, poison=True)
    _assert_written_and_close(got, K.ideal_denoiser_torch(xt, means, 0.5, lw, 0.2), dtype)


@needs_triton
def test_ideal_triton_zero_weight_components():
    """log pi_k = -inf for a whole tile of components (and a whole split): weight 0, no NaN."""
    xt, means = _randn(9, 4, seed=17), _randn(70, 4, seed=18)
    lw = torch.zeros(70)
    lw[:40] = -math.inf
    lw = lw.to(DEVICE)
    got = MODS["gmm_denoiser_triton"].ideal_denoiser_triton(
        xt, means, 0.3, lw, 0.0, num_splits=3, block_k=16, poison=True)
    _assert_written_and_close(got, K.ideal_denoiser_torch(xt, means[40:], 0.3), torch.float32)


def test_ideal_bad_inputs():
    xt, means = torch.randn(4, 3), torch.randn(5, 3)
    with pytest.raises(ValueError, match="xt must have 2 dimensions"):
        K.ideal_denoiser(xt[0], means, 0.5)
    with pytest.raises(ValueError, match="means must be"):
        K.ideal_denoiser(xt, torch.randn(5, 2), 0.5)
    with pytest.raises(ValueError, match="log_weights must be"):
        K.ideal_denoiser(xt, means, 0.5, log_weights=torch.zeros(4))
    with pytest.raises(ValueError, match=r"alpha_bar must lie in \[0, 1\]"):
        K.ideal_denoiser(xt, means, 1.5)
    with pytest.raises(ValueError, match="alpha_bar = 1 with comp_var = 0"):
        K.ideal_denoiser(xt, means, 1.0)
    with pytest.raises(ValueError, match="alpha_bar must be a float or a"):
        K.ideal_denoiser(xt, means, torch.full((3,), 0.5))
    with pytest.raises(ValueError, match="comp_var must be a number >= 0"):
        K.ideal_denoiser(xt, means, 0.5, comp_var=-1.0)
    with pytest.raises(TypeError, match="xt must be a floating-point tensor"):
        K.ideal_denoiser(xt.long(), means, 0.5)
    with pytest.raises(ValueError, match="chunk_size must be a positive integer"):
        K.ideal_denoiser_torch(xt, means, 0.5, chunk_size=0)


# =======================================================================================
# Fused DDIM / DDPM step
# =======================================================================================
def _forward(shape, ab, seed):
    """x0, eps and xt = sqrt(ab) x0 + sqrt(1 - ab) eps."""
    x0, eps = _randn(*shape, seed=seed), _randn(*shape, seed=seed + 1)
    return x0, eps, math.sqrt(ab) * x0 + math.sqrt(1 - ab) * eps


def test_ddim_reference_parameterizations_agree_and_are_exact():
    """Given the true eps / x0 / v, DDIM (eta = 0) lands exactly on the forward process."""
    ab_t, ab_prev = 0.3, 0.7
    x0, eps, xt = _forward((4, 6), ab_t, seed=20)
    a, s = math.sqrt(ab_t), math.sqrt(1 - ab_t)
    v = a * eps - s * x0
    want_prev = math.sqrt(ab_prev) * x0 + math.sqrt(1 - ab_prev) * eps
    for pred, out in (("eps", eps), ("x0", x0), ("v", v)):
        x_prev, x0_hat = K.ddim_step_torch(xt, out, ab_t, ab_prev, prediction=pred)
        torch.testing.assert_close(x0_hat, x0, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(x_prev, want_prev, atol=1e-5, rtol=1e-5)


def test_ddim_eta1_is_ddpm_posterior():
    """eta = 1: mean and variance of x_prev are those of q(x_{t-1} | x_t, x0) (DDPM eq. 7)."""
    ab_t, ab_prev = 0.5, 0.8
    x0, eps, xt = _forward((3, 5), ab_t, seed=22)
    alpha_t, beta_t = ab_t / ab_prev, 1 - ab_t / ab_prev
    mean = (math.sqrt(ab_prev) * beta_t / (1 - ab_t)) * x0 \
        + (math.sqrt(alpha_t) * (1 - ab_prev) / (1 - ab_t)) * xt
    var = (1 - ab_prev) / (1 - ab_t) * beta_t
    got_mean, _ = K.ddim_step_torch(xt, x0, ab_t, ab_prev, eta=1.0, prediction="x0",
                                    noise=torch.zeros_like(xt))
    torch.testing.assert_close(got_mean, mean, atol=1e-6, rtol=1e-5)
    z = torch.ones_like(xt)
    got, _ = K.ddim_step_torch(xt, x0, ab_t, ab_prev, eta=1.0, prediction="x0", noise=z)
    torch.testing.assert_close(got - got_mean, torch.full_like(xt, math.sqrt(var)),
                               atol=1e-6, rtol=1e-5)


def test_ddim_clip_recomputes_eps():
    x0, eps, xt = _forward((50,), 0.4, seed=24)
    x_prev, x0_hat = K.ddim_step_torch(xt, 3 * x0, 0.4, 0.9, prediction="x0", clip=1.0)
    assert x0_hat.abs().max() <= 1.0
    eps_hat = (xt - math.sqrt(0.4) * x0_hat) / math.sqrt(0.6)
    torch.testing.assert_close(x_prev, math.sqrt(0.9) * x0_hat + math.sqrt(0.1) * eps_hat)


@needs_triton
@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
@pytest.mark.parametrize("clip", [None, 1.0])
@pytest.mark.parametrize("per_sample", [False, True])
def test_ddim_triton_matches_reference_fp32(prediction, clip, per_sample):
    shape = (3, 5, 7, 11)                                 # 1155 elements, block 128
    xt, out, z = (_randn(*shape, seed=30 + i) for i in range(3))
    if per_sample:
        ab_t = torch.tensor([0.2, 0.5, 0.7], device=DEVICE)
        ab_prev = torch.tensor([0.4, 0.9, 1.0], device=DEVICE)
    else:
        ab_t, ab_prev = 0.3, 0.6
    kw = dict(eta=0.7, prediction=prediction, noise=z, clip=clip)
    got = MODS["ddim_step_triton"].ddim_step_triton(xt, out, ab_t, ab_prev, **kw, block=128,
                                                    poison=True)
    want = K.ddim_step_torch(xt, out, ab_t, ab_prev, **kw)
    for g, w in zip(got, want):
        _assert_written_and_close(g, w, torch.float32)


@needs_triton
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_ddim_triton_matches_reference_half(dtype, eta):
    xt, out, z = (_randn(2, 3, 17, 9, seed=40 + i, dtype=dtype) for i in range(3))
    kw = dict(eta=eta, prediction="v", noise=z)
    got = MODS["ddim_step_triton"].ddim_step_triton(xt, out, 0.25, 0.5, **kw, block=256,
                                                    poison=True)
    for g, w in zip(got, K.ddim_step_torch(xt, out, 0.25, 0.5, **kw)):
        _assert_written_and_close(g, w, dtype)


@needs_triton
def test_ddim_triton_seeded_noise_statistics():
    """In-kernel tl.randn vs the torch reference's generator: equal in distribution only."""
    ab_t, ab_prev, n = 0.5, 0.8, 40_000
    x0, eps, xt = _forward((8, n // 8), ab_t, seed=50)
    step = MODS["ddim_step_triton"].ddim_step_triton
    a, _ = step(xt, eps, ab_t, ab_prev, eta=1.0, seed=7, poison=True)
    b, _ = step(xt, eps, ab_t, ab_prev, eta=1.0, seed=7)
    c, _ = step(xt, eps, ab_t, ab_prev, eta=1.0, seed=8)
    assert torch.equal(a, b), "same seed must give the same output"
    assert not torch.equal(a, c)
    ref1, _ = K.ddim_step_torch(xt, eps, ab_t, ab_prev, eta=1.0, seed=7)
    ref2, _ = K.ddim_step_torch(xt, eps, ab_t, ab_prev, eta=1.0, seed=7)
    assert torch.equal(ref1, ref2)
    mean, _ = K.ddim_step_torch(xt, eps, ab_t, ab_prev, eta=1.0, noise=torch.zeros_like(xt))
    sigma = math.sqrt((1 - ab_prev) / (1 - ab_t) * (1 - ab_t / ab_prev))
    for x_prev in (a, ref1):
        z = ((x_prev - mean) / sigma).flatten().double()
        assert abs(z.mean().item()) < 5 / math.sqrt(n)                 # 5 standard errors
        assert abs(z.var().item() - 1) < 5 * math.sqrt(2 / n)
        assert abs((z ** 3).mean().item()) < 5 * math.sqrt(15 / n)     # no skew
    # the noise is independent of position: neighbouring elements are uncorrelated
    z = ((a - mean) / sigma).flatten().double()
    assert abs((z[1:] * z[:-1]).mean().item()) < 5 / math.sqrt(n)


def test_ddim_bad_inputs():
    x = torch.randn(2, 3)
    with pytest.raises(ValueError, match="unknown prediction"):
        K.ddim_step_fused(x, x, 0.5, 0.8, prediction="score")
    with pytest.raises(ValueError, match="model_out must have the shape"):
        K.ddim_step_fused(x, x[0], 0.5, 0.8)
    with pytest.raises(ValueError, match=r"alpha_bar_t must lie in \(0, 1\)"):
        K.ddim_step_fused(x, x, 1.0, 1.0)
    with pytest.raises(ValueError, match="alpha_bar_prev must be >= alpha_bar_t"):
        K.ddim_step_fused(x, x, 0.8, 0.5, eta=1.0)
    with pytest.raises(ValueError, match="eta must be a number >= 0"):
        K.ddim_step_fused(x, x, 0.5, 0.8, eta=-0.1)
    with pytest.raises(ValueError, match="either noise or seed"):
        K.ddim_step_fused(x, x, 0.5, 0.8, eta=1.0, noise=x, seed=1)
    with pytest.raises(ValueError, match="alpha_bar_t must be a float or a"):
        K.ddim_step_fused(x, x, torch.full((3,), 0.5), 0.8)
    with pytest.raises(ValueError, match="clip must be None or a number > 0"):
        K.ddim_step_fused(x, x, 0.5, 0.8, clip=0)
    # eta = 0 may run backwards (DDIM inversion)
    K.ddim_step_fused(x, x, 0.8, 0.5, eta=0.0)


# =======================================================================================
# adaLN: LayerNorm + modulate, gated residual, fused
# =======================================================================================
def _adaln_inputs(B, T, C, dtype, seed):
    x, y = _randn(B, T, C, seed=seed, dtype=dtype, scale=3.0), _randn(B, T, C, seed=seed + 1,
                                                                      dtype=dtype)
    gate, shift, scale = (_randn(B, C, seed=seed + 2 + i, dtype=dtype) for i in range(3))
    return x, y, gate, shift, scale


def test_adaln_references_match_torch_layer_norm():
    x, y, gate, shift, scale = _adaln_inputs(2, 7, 45, torch.float64, seed=60)
    want = F.layer_norm(x, (45,), eps=1e-6) * (1 + scale[:, None]) + shift[:, None]
    torch.testing.assert_close(K.layernorm_modulate_torch(x, shift, scale), want)
    res = x + gate.unsqueeze(1) * y
    torch.testing.assert_close(K.gated_residual_torch(x, gate, y), res)
    x_new, h = K.modulated_residual_torch(x, gate, y, shift, scale)
    torch.testing.assert_close(x_new, res)
    torch.testing.assert_close(h, K.layernorm_modulate_torch(res, shift, scale))


@needs_triton
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("C", [45, 100])
def test_adaln_triton_matches_reference(dtype, C):
    x, y, gate, shift, scale = _adaln_inputs(3, 5, C, dtype, seed=70)
    run = MODS["adaln_triton"].adaln_triton
    _, h = run(x, shift=shift, scale=scale, poison=True)
    _assert_written_and_close(h, K.layernorm_modulate_torch(x, shift, scale), dtype)
    r, none = run(x, gate=gate, y=y, poison=True)
    assert none is None
    _assert_written_and_close(r, K.gated_residual_torch(x, gate, y), dtype)
    for g, w in zip(run(x, gate=gate, y=y, shift=shift, scale=scale, poison=True),
                    K.modulated_residual_torch(x, gate, y, shift, scale)):
        _assert_written_and_close(g, w, dtype)


def test_adaln_bad_inputs():
    x, y, gate, shift, scale = _adaln_inputs(2, 3, 8, torch.float32, seed=80)
    with pytest.raises(ValueError, match="x must have 3 dimensions"):
        K.layernorm_modulate(x[0], shift, scale)
    with pytest.raises(ValueError, match=r"shift must have shape \(2, 8\)"):
        K.layernorm_modulate(x, shift[:, :4], scale)
    with pytest.raises(ValueError, match=r"y must have shape \(2, 3, 8\)"):
        K.gated_residual(x, gate, y[:, :2])
    with pytest.raises(ValueError, match="eps must be a number > 0"):
        K.modulated_residual(x, gate, y, shift, scale, eps=0.0)
    if HAS_TRITON:
        with pytest.raises(ValueError, match="gate and y go together"):
            MODS["adaln_triton"].adaln_triton(x, gate=gate)


# =======================================================================================
# Dispatch
# =======================================================================================
def test_dispatch_rules(monkeypatch):
    cpu = torch.zeros(2)
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    assert _dispatch.resolve_backend("auto", cpu) == "torch"       # CPU, no interpreter
    assert _dispatch.resolve_backend("torch", cpu) == "torch"
    with pytest.raises(ValueError, match="unknown backend"):
        _dispatch.resolve_backend("cuda", cpu)
    monkeypatch.setenv("DIFFEDU_KERNELS", "torch")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert _dispatch.resolve_backend("auto", cpu) == "torch"       # env var forces torch
    monkeypatch.setenv("DIFFEDU_KERNELS", "tirton")
    with pytest.raises(ValueError, match="DIFFEDU_KERNELS"):
        _dispatch.resolve_backend("auto", cpu)
    monkeypatch.delenv("DIFFEDU_KERNELS")
    assert _dispatch.resolve_backend("auto", cpu.double()) == "torch"   # float64 -> torch
    monkeypatch.setattr(_dispatch, "triton_available", lambda: False)
    assert _dispatch.resolve_backend("auto", cpu) == "torch"
    with pytest.raises(ImportError, match="needs the `triton` package"):
        _dispatch.resolve_backend("triton", cpu)


@needs_triton
def test_dispatch_triton_paths(monkeypatch):
    cpu = torch.zeros(2)
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert _dispatch.resolve_backend("auto", cpu) == "triton"      # interpreter on CPU
    monkeypatch.setenv("DIFFEDU_KERNELS", "triton")
    assert _dispatch.resolve_backend("auto", cpu.double()) == "triton"  # forced
    assert _dispatch.resolve_backend("torch", cpu) == "torch"      # the argument wins
    monkeypatch.delenv("DIFFEDU_KERNELS")
    if not ON_GPU:
        monkeypatch.delenv("TRITON_INTERPRET")
        with pytest.raises(ValueError, match="needs CUDA tensors"):
            _dispatch.resolve_backend("triton", cpu)


@needs_triton
def test_public_functions_route_to_the_forced_backend(monkeypatch):
    """DIFFEDU_KERNELS=triton sends each public function to its Triton launcher."""
    calls = []
    spies = {("gmm_denoiser_triton", "ideal_denoiser_triton"): lambda *a, **k: "id",
             ("ddim_step_triton", "ddim_step_triton"): lambda *a, **k: "ddim",
             ("adaln_triton", "adaln_triton"): lambda *a, **k: ("res", "ln")}
    for (mod, fn), spy in spies.items():
        monkeypatch.setattr(MODS[mod], fn, lambda *a, _s=spy, _n=fn, **k: calls.append(_n) or _s())
    x, y, gate, shift, scale = _adaln_inputs(1, 2, 4, torch.float32, seed=90)
    monkeypatch.setenv("DIFFEDU_KERNELS", "triton")
    assert K.ideal_denoiser(x[0], x[0], 0.5) == "id"
    assert K.ddim_step_fused(x, x, 0.5, 0.8) == "ddim"
    assert K.layernorm_modulate(x, shift, scale) == "ln"
    assert K.gated_residual(x, gate, y) == "res"
    assert K.modulated_residual(x, gate, y, shift, scale) == ("res", "ln")
    monkeypatch.setenv("DIFFEDU_KERNELS", "torch")
    assert torch.is_tensor(K.ideal_denoiser(x[0], x[0], 0.5))
    assert len(calls) == 5


@needs_triton
def test_public_auto_uses_kernel_and_agrees():
    """backend='auto' on this machine (GPU or interpreter) runs Triton; results agree."""
    xt, means = _randn(7, 6, seed=95), _randn(40, 6, seed=96)
    assert _dispatch.resolve_backend("auto", xt, means) == "triton"
    torch.testing.assert_close(K.ideal_denoiser(xt, means, 0.5),
                               K.ideal_denoiser(xt, means, 0.5, backend="torch"),
                               atol=1e-5, rtol=1e-5)


def test_package_imports_without_triton():
    """`import diffedu.kernels` and the torch paths never import triton."""
    code = ("import sys, torch, diffedu.kernels as K\n"
            "x = torch.randn(3, 2)\n"
            "K.ideal_denoiser(x, x, 0.5); K.ddim_step_fused(x, x, 0.5, 0.9)\n"
            "assert 'triton' not in sys.modules, 'triton was imported'\n")
    env = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET", "DIFFEDU_KERNELS")}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    env["CUDA_VISIBLE_DEVICES"] = ""
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr


# =======================================================================================
# Memory: the chunked reference and the kernel never allocate N x K
# =======================================================================================
def test_peak_tensor_memory_counts_new_storage_only():
    from diffedu.kernels.memory import peak_tensor_memory

    x = torch.zeros(1000)
    assert peak_tensor_memory(lambda: x.view(10, 100).add_(1))[1] == 0      # view + in-place
    assert peak_tensor_memory(lambda: (x * 2).sum())[1] == 4000 + 4          # x * 2, then sum
    def two_temps():
        a = x + 1
        b = a * 2                                                           # a and b alive
        return b.sum()
    assert peak_tensor_memory(two_temps)[1] == 8000 + 4


@pytest.mark.parametrize("backend", ["torch", pytest.param("triton", marks=needs_triton)])
def test_ideal_chunked_never_allocates_n_by_k(backend):
    from diffedu.kernels.memory import peak_tensor_memory

    N, Kc, D = 40, 3000, 4
    xt, means = _randn(N, D, seed=100), _randn(Kc, D, seed=101)
    nk_bytes = N * Kc * 4
    _, naive = peak_tensor_memory(K.ideal_denoiser_naive, xt, means, 0.5)
    assert naive >= 2 * nk_bytes
    if backend == "torch":
        _, peak = peak_tensor_memory(K.ideal_denoiser_torch, xt, means, 0.5, chunk_size=64)
    else:
        _, peak = peak_tensor_memory(MODS["gmm_denoiser_triton"].ideal_denoiser_triton,
                                     xt, means, 0.5, num_splits=2)
    assert peak < nk_bytes / 4, f"{backend} held {peak} bytes, N x K is {nk_bytes}"
