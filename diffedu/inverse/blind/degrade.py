"""Real-world degradations: blur with a random kernel, downsampling, noise and JPEG-like
quantisation, applied in a random order with random strengths (in the spirit of the
Real-ESRGAN / BSRGAN pipelines), seeded, with a held-out test set.

Scope: images x: (B, C, H, W) in [-1, 1]. Four operations, each differentiable in x (and
the blur in its kernel), so that the same code is the forward model of the oracle and of
the blind solvers:
    blur(x, kernel)              circular convolution with a per-image kernel (B, k, k), by FFT,
                                 the convention of `operators.Blur` (centre at (k // 2, k // 2))
    downsample(x, factor, mode)  `operators.SuperResolution` ("bicubic" antialiased, or "area")
    add_noise(x, sigma, g)       x + sigma n, n ~ N(0, I)
    jpeg(x, quality, block)      blockwise orthonormal DCT-II, quantised by the JPEG luminance
                                 table scaled by the IJG quality rule, then inverse DCT. Rounding
                                 has zero gradient; `straight_through=True` passes the gradient
                                 of the identity instead (so an oracle can differentiate A)
A `Degradation` records one image's draw (order, kernel, factor, mode, sigma, quality);
`random_degradation` draws one, `degrade(x, g)` draws and applies one per image, and
`test_set(name, n)` is the held-out set every method of chapter 10 is scored on.

Strength ranges (defaults, checked): kernel size 3..15 odd; sigma in [0, 0.3]; JPEG quality
in [5, 100]; factor 1, 2 or 4.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from ..._validate import check_choice, check_int, check_real, check_tensor
from ..operators import Operator, SuperResolution
from .kernels import KINDS, check_kernel_size, random_kernel

__all__ = ["OPS", "JPEG_LUMINANCE", "blur", "downsample", "add_noise", "jpeg", "dct_matrix", "quant_table",
           "Degradation", "random_degradation", "degrade", "test_set", "PipelineOperator"]

OPS = ("blur", "downsample", "noise", "jpeg")
MAX_SIGMA = 0.3                     # noise std in [-1, 1] units (0.3 ~ 38 grey levels): beyond it digits vanish

# The luminance quantisation table of the JPEG standard (ITU-T T.81, Annex K, Table K.1)
JPEG_LUMINANCE = torch.tensor([
    [16, 11, 10, 16, 24, 40, 51, 61], [12, 12, 14, 19, 26, 58, 60, 55],
    [14, 13, 16, 24, 40, 57, 69, 56], [14, 17, 22, 29, 51, 87, 80, 62],
    [18, 22, 37, 56, 68, 109, 103, 77], [24, 35, 55, 64, 81, 104, 113, 92],
    [49, 64, 78, 87, 103, 121, 120, 101], [72, 92, 95, 98, 112, 100, 103, 99]], dtype=torch.float64)


# ----------------------------------------------------------------------------- operations

def _kernels(kernel: torch.Tensor, B: int) -> torch.Tensor:
    check_tensor("kernel", kernel, ndim=(2, 3))
    k = kernel if kernel.ndim == 3 else kernel.expand(B, *kernel.shape)
    if len(k) != B:
        raise ValueError(f"kernel must be (k, k) or ({B}, k, k), one per image of x, got {tuple(kernel.shape)}")
    if k.shape[-1] != k.shape[-2] or k.shape[-1] % 2 == 0:
        raise ValueError(f"kernel must be square with an odd side, got {tuple(kernel.shape[-2:])}")
    return k


def blur(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Circular convolution y = k * x, per image. x: (B, C, H, W); kernel: (k, k) or (B, k, k)
    with k <= H, W. Equal to `operators.Blur(kernel, (H, W), C).A(x)` (tested); differentiable
    in x and in the kernel (Blind-DPS and BIRD need both)."""
    check_tensor("x", x, ndim=4)
    B, C, H, W = x.shape
    k = _kernels(kernel, B).to(x.dtype)
    s = k.shape[-1]
    if s > H or s > W:
        raise ValueError(f"a kernel of size {s} does not fit in images of size {(H, W)}")
    pad = torch.nn.functional.pad(k, (0, W - s, 0, H - s))                      # (B, H, W)
    pad = torch.roll(pad, shifts=(-(s // 2), -(s // 2)), dims=(-2, -1))          # centre -> (0, 0)
    K = torch.fft.fft2(pad)[:, None]                                             # (B, 1, H, W)
    return torch.fft.ifft2(torch.fft.fft2(x) * K).real.to(x.dtype)


_SR_CACHE: dict = {}


def downsample(x: torch.Tensor, factor: int, mode: str = "bicubic") -> torch.Tensor:
    """x: (B, C, H, W) -> (B, C, H / factor, W / factor) by `operators.SuperResolution`
    (mode "bicubic": antialiased Keys cubic; "area": the mean of each block). factor 1: x."""
    check_tensor("x", x, ndim=4)
    factor = check_int("factor", factor, lo=1, hi=4)
    check_choice("mode", mode, ("bicubic", "area"))
    if factor == 1:
        return x
    key = (factor, tuple(x.shape[1:]), mode)
    if key not in _SR_CACHE:
        _SR_CACHE[key] = SuperResolution(factor, tuple(x.shape[-2:]), "avgpool" if mode == "area" else mode,
                                         channels=x.shape[1])
    return _SR_CACHE[key].A(x)


def add_noise(x: torch.Tensor, sigma, generator: torch.Generator | None = None) -> torch.Tensor:
    """x + sigma n, n ~ N(0, I) from `generator`; sigma: a number or (B,) in [0, 0.3]."""
    check_tensor("x", x, min_ndim=1)
    s = torch.as_tensor(sigma, dtype=x.dtype)
    if s.numel() not in (1, len(x)) or not bool(((s >= 0) & (s <= MAX_SIGMA)).all()):
        raise ValueError(f"sigma must be a number or ({len(x)},) values in [0, {MAX_SIGMA}], got {s.tolist()}")
    n = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
    return x + s.reshape(-1, *([1] * (x.ndim - 1))).to(x.device) * n


def dct_matrix(n: int) -> torch.Tensor:
    """(n, n) orthonormal DCT-II matrix M: the DCT of a vector v is M v, and M^T M = I."""
    n = check_int("n", n, lo=1)
    i = torch.arange(n, dtype=torch.float64)
    M = torch.cos(math.pi * (2 * i[None, :] + 1) * i[:, None] / (2 * n)) * math.sqrt(2 / n)
    M[0] /= math.sqrt(2)
    return M


def quant_table(quality: float, block: int = 8) -> torch.Tensor:
    """(block, block) quantisation steps: the JPEG luminance table scaled by the IJG rule
    (scale = 5000 / q for q < 50, else 200 - 2 q; step = max(1, floor((T scale + 50) / 100)));
    block 4 takes every other row and column of the 8 x 8 table. quality in [5, 100]."""
    q = check_real("quality", quality, lo=5, hi=100)
    block = check_int("block", block)
    if block not in (4, 8):
        raise ValueError(f"block must be 4 or 8 (the 8 x 8 JPEG table, or every other entry of it), got {block}")
    scale = 5000 / q if q < 50 else 200 - 2 * q
    T = torch.floor((JPEG_LUMINANCE * scale + 50) / 100).clamp_min(1)
    return T if block == 8 else T[::2, ::2]


def jpeg(x: torch.Tensor, quality, block: int = 8, straight_through: bool = False) -> torch.Tensor:
    """JPEG-like quantisation of x: (B, C, H, W) in [-1, 1], H and W multiples of `block`.
    Per block of pixels v = 127.5 (x + 1) - 128 (JPEG's level shift): coefficients
    c = M v M^T (orthonormal DCT), quantised round(c / Q) Q, inverse DCT, back to [-1, 1].
    quality: a number or (B,) in [5, 100]. straight_through: rounding passes the gradient of
    the identity (the whole map then has identity Jacobian)."""
    check_tensor("x", x, ndim=4)
    B, C, H, W = x.shape
    qs = torch.as_tensor(quality, dtype=torch.float64).reshape(-1)
    if qs.numel() not in (1, B):
        raise ValueError(f"quality must be a number or ({B},) values, got shape {tuple(qs.shape)}")
    if H % block or W % block:
        raise ValueError(f"image size {(H, W)} must be a multiple of block={block}")
    Q = torch.stack([quant_table(float(q), block) for q in qs.expand(B)]).to(x)   # (B, b, b)
    M = dct_matrix(block).to(x)
    v = 127.5 * (x + 1) - 128
    blocks = v.reshape(B, C, H // block, block, W // block, block).transpose(3, 4)  # (B, C, h, w, b, b)
    c = M @ blocks @ M.T
    Qb = Q[:, None, None, None]
    r = c / Qb
    r = r + (torch.round(r) - r).detach() if straight_through else torch.round(r)
    v2 = (M.T @ (r * Qb) @ M).transpose(3, 4).reshape(B, C, H, W)
    return (v2 + 128) / 127.5 - 1


# ----------------------------------------------------------------------------- the pipeline

@dataclass
class Degradation:
    """One image's degradation: `order` (a permutation of the operations used), the blur
    `kernel` (k, k), the downsampling `factor` and `mode`, the noise `sigma`, the JPEG
    `quality` and `block`; `info` describes the kernel (kind and parameters)."""
    order: tuple
    kernel: torch.Tensor
    factor: int = 2
    mode: str = "bicubic"
    sigma: float = 0.05
    quality: float = 75.0
    block: int = 8
    info: dict = field(default_factory=dict)

    def apply(self, x: torch.Tensor, generator: torch.Generator | None = None, noise: bool = True,
              straight_through: bool = False) -> torch.Tensor:
        """The degradation of x: (B, C, H, W) (every row gets this one); noise=False leaves the
        noise out (the oracle's forward model A). Returns (B, C, H / factor, W / factor)."""
        for op in self.order:
            if op == "blur":
                x = blur(x, self.kernel.to(x))
            elif op == "downsample":
                x = downsample(x, self.factor, self.mode)
            elif op == "noise" and noise and self.sigma > 0:
                x = add_noise(x, self.sigma, generator)
            elif op == "jpeg" and min(x.shape[-2:]) >= self.block:
                x = jpeg(x, self.quality, min(self.block, *x.shape[-2:]), straight_through)
        return x

    def describe(self) -> str:
        parts = {"blur": f"blur ({self.info.get('kind', 'kernel')} {self.kernel.shape[-1]}x{self.kernel.shape[-1]})",
                 "downsample": f"down x{self.factor} ({self.mode})", "noise": f"noise {self.sigma:.3f}",
                 "jpeg": f"JPEG q{self.quality:.0f}"}
        return " -> ".join(parts[op] for op in self.order)


def random_degradation(generator: torch.Generator, *, kernel_size: int = 7, factor: int = 2,
                       ops=OPS, shuffle: bool = True, sigma_range=(0.02, 0.1), quality_range=(30.0, 90.0),
                       kinds=KINDS, block: int = 8) -> Degradation:
    """Draw one Degradation: a random kernel (`kernels.random_kernel`) of `kernel_size`, a
    mode "bicubic" or "area", sigma ~ U(sigma_range), quality ~ U(quality_range), the
    operations `ops` in random order when `shuffle` (else in the order given)."""
    check_kernel_size(kernel_size)
    factor = check_int("factor", factor, lo=1, hi=4)
    if factor == 3:
        raise ValueError("factor must be 1, 2 or 4 (the images' sides are powers of 2), got 3")
    ops = tuple(ops)
    if not ops or any(op not in OPS for op in ops) or len(set(ops)) != len(ops):
        raise ValueError(f"ops must be distinct operations from {OPS}, got {ops!r}")
    lo, hi = (check_real(f"sigma_range[{i}]", v, lo=0, hi=MAX_SIGMA) for i, v in enumerate(sigma_range))
    qlo, qhi = (check_real(f"quality_range[{i}]", v, lo=5, hi=100) for i, v in enumerate(quality_range))
    if lo > hi or qlo > qhi:
        raise ValueError(f"ranges must be (low, high) with low <= high, got sigma_range={tuple(sigma_range)}, "
                         f"quality_range={tuple(quality_range)}")
    kernel, info = random_kernel(kernel_size, generator, kinds)
    u = lambda a, b: a + (b - a) * float(torch.rand((), generator=generator, dtype=torch.float64))  # noqa: E731
    mode = ("bicubic", "area")[int(torch.randint(2, (), generator=generator))]
    sigma, quality = u(lo, hi), u(qlo, qhi)
    if shuffle:
        ops = tuple(ops[i] for i in torch.randperm(len(ops), generator=generator).tolist())
    return Degradation(ops, kernel, factor, mode, sigma, quality, block, info)


def degrade(x: torch.Tensor, generator: torch.Generator, **kwargs):
    """One `random_degradation(generator, **kwargs)` per image of x: (B, C, H, W), applied
    (with its noise drawn from `generator`). Returns (y: (B, C, H / f, W / f), [Degradation])."""
    check_tensor("x", x, ndim=4, nonempty=True, finite=True)
    degs = [random_degradation(generator, **kwargs) for _ in range(len(x))]
    y = torch.cat([d.apply(x[i:i + 1], generator) for i, d in enumerate(degs)])
    return y, degs


def _images(name: str, n: int, seed: int):
    from ...data import images
    if name == "digits":
        x, _ = images.digits(16, split="test")                  # the split unet_digits never saw
        g = torch.Generator().manual_seed(seed)
        return x[torch.randperm(len(x), generator=g)[:n]]
    if name == "shapes":
        return images.shapes(n, 32, seed=seed).images
    return images.phantoms(n, 32, seed=seed).images


def test_set(name: str = "digits", n: int = 8, seed: int = 10_000, **kwargs):
    """The held-out set: n clean images (digits: the test split, which the digits prior never
    saw; shapes / phantoms: generated with a seed >= 10,000, the training sets use seeds
    below) and their degradations, both functions of `seed`. kwargs go to
    `random_degradation`. Returns (x: (n, C, H, W), y: (n, C, H / f, W / f), [Degradation])."""
    check_choice("name", name, ("digits", "shapes", "phantoms"))
    n = check_int("n", n, lo=1, hi=360)
    seed = check_int("seed", seed, lo=0)
    x = _images(name, n, seed)
    y, degs = degrade(x, torch.Generator().manual_seed(seed + 1), **kwargs)
    return x, y, degs


class PipelineOperator(Operator):
    """The true forward model of a batch of degradations (the oracle's A): row i of
    x: (B, C, H, W) goes through degradations[i] without its noise, JPEG rounding with a
    straight-through gradient. y: (B, C, H / f, W / f). Nonlinear (JPEG)."""

    def __init__(self, degradations, image_shape):
        self.degradations = list(degradations)
        if not self.degradations or not all(isinstance(d, Degradation) for d in self.degradations):
            raise TypeError("degradations must be a non-empty list of Degradation")
        f = {d.factor for d in self.degradations}
        if len(f) != 1:
            raise ValueError(f"all degradations must share one factor, got {sorted(f)}")
        C, H, W = image_shape
        self.in_shape, self.out_shape = (C, H, W), (C, H // f.pop(), W // self.degradations[0].factor)

    def _A(self, x):
        if len(x) != len(self.degradations):
            raise ValueError(f"x must have one row per degradation ({len(self.degradations)}), got {len(x)}")
        return torch.cat([d.apply(x[i:i + 1], noise=False, straight_through=True)
                          for i, d in enumerate(self.degradations)])
