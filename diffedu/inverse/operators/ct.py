"""Parallel-beam computed tomography: the Radon transform, its exact adjoint and filtered
back-projection (FBP), for any set of view angles (sparse-view, limited-angle).

Scope: `ParallelBeamCT`, a `LinearOperator` whose forward model is the discrete Radon
transform written as one sparse matrix (built once in float64, cast to the input's dtype
and device on use; CPU and CUDA, differentiable), so its adjoint (back-projection) is the
transpose of the same matrix and the adjointness test holds to rounding. `fbp` is the
classical baseline (ramp filter with the usual windows), `sparse_view_angles` and
`limited_angle` make angle sets. No closed-form SVD (the Radon matrix of a few views has no
cheap diagonalisation), so DDRM does not apply; A_dagger and the normal equations use
conjugate gradient (base.py).

Discretisation (the geometry of `skimage.transform.radon` with circle=True, so the two agree):
    N          image size (H = W = N), pixel spacing 1, rotation centre c = N // 2
    theta_v    view angles in degrees, 0 <= theta < 180
    D          detectors (default N), offsets d_j = j - D // 2; ray samples s_r = r - D // 2
    ray (v, j) samples the image at  col =  cos(theta) d_j + sin(theta) s_r + c,
                                     row = -sin(theta) d_j + cos(theta) s_r + c
               by bilinear interpolation (zero outside), r = 0 .. D-1, and sums the samples:
    y[v, j] = sum_r bilinear(x; row, col)   (a line integral with unit step)
Shapes: x: (B, 1, N, N) -> sinogram y: (B, 1, V, D), one row per view (skimage's radon
returns the transpose, detectors by views).

FBP (Kak & Slaney, ch. 3): filter each view along the detector axis with the ramp |w| (built
in space, h[0] = 1/4, h[odd n] = -1/(pi n)^2, which has no DC error), optionally windowed
(shepp-logan sinc, cosine, hamming, hann), then back-project with A^T and weight pi / (2 V).
"""
from __future__ import annotations

import math
import numbers
import warnings

import torch

from ..._validate import check_choice, check_positive_int, check_tensor
from .base import LinearOperator

__all__ = ["ParallelBeamCT", "fbp", "sparse_view_angles", "limited_angle", "signed_measurement", "FBP_FILTERS"]

FBP_FILTERS = ("ramp", "shepp-logan", "cosine", "hamming", "hann")


def _check_angles(angles) -> torch.Tensor:
    """Angles in degrees as a float64 (V,) tensor, each finite and in [0, 180)."""
    if isinstance(angles, numbers.Real) and not isinstance(angles, bool):
        angles = [angles]
    try:
        a = torch.as_tensor(angles, dtype=torch.float64).flatten().cpu()
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(f"angles must be a sequence or tensor of numbers (degrees), got {type(angles).__name__}") from err
    if isinstance(angles, torch.Tensor) and angles.is_complex():
        raise TypeError(f"angles must be real (degrees), got dtype {angles.dtype}")
    if a.numel() == 0:
        raise ValueError("angles is empty; give at least one view angle in [0, 180) degrees")
    bad = ~torch.isfinite(a) | (a < 0) | (a >= 180)
    if bool(bad.any()):
        raise ValueError(f"angles must be finite degrees in [0, 180) (a parallel beam at theta + 180 repeats "
                         f"theta), got {float(a[bad][0])!r}")
    return a


def sparse_view_angles(n_views: int) -> torch.Tensor:
    """n_views equally spaced angles over [0, 180) degrees: (n_views,) float64."""
    n_views = check_positive_int("n_views", n_views)
    return torch.arange(n_views, dtype=torch.float64) * (180.0 / n_views)


def limited_angle(n_views: int, max_deg: float) -> torch.Tensor:
    """n_views equally spaced angles over [0, max_deg) degrees, 0 < max_deg <= 180: a
    limited-angle scan (a missing wedge of 180 - max_deg degrees). (n_views,) float64."""
    n_views = check_positive_int("n_views", n_views)
    if isinstance(max_deg, bool) or not isinstance(max_deg, numbers.Real) or not 0 < max_deg <= 180:
        raise ValueError(f"max_deg must be a number in (0, 180], got {max_deg!r}")
    return torch.arange(n_views, dtype=torch.float64) * (float(max_deg) / n_views)


def _radon_matrix(N: int, angles: torch.Tensor, D: int) -> torch.Tensor:
    """The (V * D, N * N) sparse float64 Radon matrix of the module doc (COO, coalesced)."""
    th = torch.deg2rad(angles)[:, None, None]                                  # (V, 1, 1)
    d = (torch.arange(D, dtype=torch.float64) - D // 2)[None, :, None]         # (1, D, 1) detector offsets
    s = (torch.arange(D, dtype=torch.float64) - D // 2)[None, None, :]         # (1, 1, D) ray samples
    c = float(N // 2)
    col = torch.cos(th) * d + torch.sin(th) * s + c                            # (V, D, D)
    row = -torch.sin(th) * d + torch.cos(th) * s + c
    r0, c0 = torch.floor(row), torch.floor(col)
    fr, fc = row - r0, col - c0
    ray = torch.arange(len(angles) * D).reshape(len(angles), D, 1).expand_as(row)
    rows, cols, vals = [], [], []
    for dr, dc, w in ((0, 0, (1 - fr) * (1 - fc)), (0, 1, (1 - fr) * fc), (1, 0, fr * (1 - fc)), (1, 1, fr * fc)):
        rr, cc = r0.long() + dr, c0.long() + dc
        ok = (rr >= 0) & (rr < N) & (cc >= 0) & (cc < N) & (w > 0)
        rows.append(ray[ok])
        cols.append((rr * N + cc)[ok])
        vals.append(w[ok])
    idx = torch.stack([torch.cat(rows), torch.cat(cols)])
    return torch.sparse_coo_tensor(idx, torch.cat(vals), (len(angles) * D, N * N)).coalesce()


class _SparseApply(torch.autograd.Function):
    """y = M x for a sparse M with the backward pass M^T g (both precomputed CSR matrices),
    x: (n, B) dense. Differentiable in x, so DPS can take gradients through the Radon transform."""

    @staticmethod
    def forward(ctx, x, M, MT):
        ctx.MT = MT
        return torch.sparse.mm(M, x)

    @staticmethod
    def backward(ctx, g):
        return torch.sparse.mm(ctx.MT, g.contiguous()), None, None


class ParallelBeamCT(LinearOperator):
    """Parallel-beam CT: x: (B, 1, N, N) -> sinogram y: (B, 1, V, D) (module doc).

    image_size: N (int); angles: view angles in degrees, any set in [0, 180) (see
    `sparse_view_angles`, `limited_angle`); n_detectors: D (default N, the inscribed circle,
    as skimage's radon with circle=True; use ceil(N * sqrt(2)) to see the whole square).
    A^T is the exact transpose of the same sparse matrix (back-projection). No SVD.
    """
    has_svd = False

    def __init__(self, image_size: int, angles, n_detectors: int | None = None):
        N = check_positive_int("image_size", image_size)
        D = N if n_detectors is None else check_positive_int("n_detectors", n_detectors)
        self.image_size, self.n_detectors = N, D
        self.angles = _check_angles(angles)                              # (V,) float64 degrees
        self.in_shape, self.out_shape = (1, N, N), (1, len(self.angles), D)
        with warnings.catch_warnings():          # torch's notes that sparse CSR is in beta
            warnings.simplefilter("ignore", UserWarning)
            M = _radon_matrix(N, self.angles, D)
            self._M, self._MT = M.to_sparse_csr(), M.t().coalesce().to_sparse_csr()
        self._cache = {}

    def __repr__(self):
        return (f"ParallelBeamCT(image_size={self.image_size}, views={len(self.angles)}, "
                f"n_detectors={self.n_detectors})")

    @property
    def n_views(self) -> int:
        return len(self.angles)

    def matrices(self, like: torch.Tensor):
        """(M, M^T) as sparse CSR in like's dtype and device (cached per dtype and device)."""
        key = (like.dtype, like.device)
        if key not in self._cache:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                self._cache[key] = tuple(m.to(dtype=like.dtype).to(like.device) for m in (self._M, self._MT))
        return self._cache[key]

    def _apply(self, v, M, MT, out_shape):
        flat = v.reshape(len(v), -1).t().contiguous()                  # (n, B)
        return _SparseApply.apply(flat, M, MT).t().reshape((len(v),) + out_shape)

    def _A(self, x):
        M, MT = self.matrices(x)
        return self._apply(x, M, MT, self.out_shape)

    def _A_adjoint(self, y):
        M, MT = self.matrices(y)
        return self._apply(y, MT, M, self.in_shape)


def _fbp_filter(P: int, kind: str) -> torch.Tensor:
    """(P,) float64 frequency response (torch.fft layout) of the windowed ramp, P even."""
    n = torch.arange(P, dtype=torch.float64)
    n = torch.where(n <= P // 2, n, n - P)                                      # signed tap index
    h = torch.zeros(P, dtype=torch.float64)
    h[n == 0] = 0.25
    odd = (n.abs() % 2) == 1
    h[odd] = -1.0 / (math.pi * n[odd]) ** 2                                     # band-limited ramp taps
    H = 2 * torch.fft.fft(h).real                                               # ~ |f| / ... (2|f| at f = 0.5 -> 1)
    f = torch.fft.fftfreq(P, dtype=torch.float64)                               # cycles per sample in [-0.5, 0.5)
    window = {"ramp": torch.ones_like(f),
              "shepp-logan": torch.sinc(f),                                      # sin(pi f) / (pi f)
              "cosine": torch.cos(math.pi * f),
              "hamming": 0.54 + 0.46 * torch.cos(2 * math.pi * f),
              "hann": 0.5 + 0.5 * torch.cos(2 * math.pi * f)}[kind]
    return H * window


def fbp(y: torch.Tensor, operator: ParallelBeamCT, filter: str = "ramp", circle: bool = True) -> torch.Tensor:
    """Filtered back-projection: y: (B, 1, V, D) sinogram -> x: (B, 1, N, N).

    Each view is zero-padded to P = max(64, next power of two >= 2 D) detectors, filtered by
    the ramp times the window `filter` (one of FBP_FILTERS), back-projected with the
    operator's exact adjoint and weighted by pi / (2 V) (module doc). circle: zero the
    pixels outside the inscribed circle, which the default detector row does not see fully.
    """
    if not isinstance(operator, ParallelBeamCT):
        raise TypeError(f"operator must be a ParallelBeamCT, got {type(operator).__name__}")
    check_choice("filter", filter, set(FBP_FILTERS))
    y = check_tensor("y", operator._check_y(y), nonempty=True)
    D, V = operator.n_detectors, operator.n_views
    P = max(64, 2 ** math.ceil(math.log2(2 * D)))
    Hf = _fbp_filter(P, filter).to(dtype=y.dtype, device=y.device)
    q = torch.fft.ifft(torch.fft.fft(y, n=P, dim=-1) * Hf, dim=-1).real[..., :D].to(y.dtype)
    x = operator.A_adjoint(q) * (math.pi / (2 * V))
    if circle:
        N = operator.image_size
        g = torch.arange(N, dtype=y.dtype, device=y.device) - N // 2
        x = x * ((g[:, None] ** 2 + g[None, :] ** 2) <= (N // 2) ** 2)
    return x


def signed_measurement(y_intensity: torch.Tensor, operator: LinearOperator) -> torch.Tensor:
    """The measurement of the [-1, 1] image from that of the physical [0, 1] image.

    Data live in [0, 1] (attenuation, proton density u), diffedu's images in [-1, 1]
    (x = 2 u - 1). A is linear, so A x = 2 A u - A 1: y_intensity: (B, *out_shape) ->
    (B, *out_shape), the same information, ready for a solver that works on x. Noise on
    A u is doubled (sigma_y for x is 2 sigma_y for u)."""
    if not isinstance(operator, LinearOperator):
        raise TypeError(f"operator must be a LinearOperator, got {type(operator).__name__}")
    y = check_tensor("y_intensity", operator._check_y(y_intensity))
    ones = torch.ones((1,) + tuple(operator.in_shape), dtype=y.dtype, device=y.device)
    return 2 * y - operator.A(ones)
