"""Measurement operators for inverse problems  y = A(x) + sigma_y * n,  n ~ N(0, I).

Scope: small operator objects in the style of deepinv (`A`, `A_adjoint`, `A_dagger`), with
the singular value decomposition that DDRM (Kawar et al. 2022) needs where one is cheap, and
the masks and blur kernels that build them. Solvers live in `classical.py` and `pnp.py`.

Notation (shapes are per batch; B is the batch size)
    x    : (B, *in_shape)   the unknown, an image (B, C, H, W) or a point (B, D) for `Dense`
    y    : (B, *out_shape)  the measurement
    n, m : prod(in_shape), prod(out_shape); k = min(n, m)
    A = U diag(s) V^T       SVD: V (n x n) and U (m x m) orthogonal, s >= 0
    V_T(x)  -> (B, n)       coefficients of x in the right singular basis, V(z) its inverse
    U_T(y)  -> (B, m)       coefficients of y in the left singular basis, U(z) its inverse
    singular_values() -> (n,)  s padded with zeros for the null space (DDRM's H_functions),
                            so that  A x = U(s[:k] * V_T(x)[:, :k])  (padded to length m).

Every linear operator satisfies <A x, y> = <x, A^T y>, A A^+ A = A; those with an SVD
reconstruct A from it. Operators keep float64 buffers and cast them to the input's dtype
and device on each call, so one object serves float32 or float64, CPU or CUDA.
"""
from __future__ import annotations

import math
import numbers

import torch
import torch.nn.functional as F

from .._validate import check_choice, check_positive_int, check_tensor

__all__ = ["Operator", "LinearOperator", "Dense", "SuperResolution", "Inpainting", "Blur",
           "Turbulence", "PhaseRetrieval", "conjugate_gradient", "box_mask", "random_mask",
           "freeform_mask", "gaussian_kernel", "motion_kernel"]


# ----------------------------------------------------------------------------- helpers

def _pair(name, v):
    """An image size given as int or (H, W) -> (H, W) of positive ints."""
    if isinstance(v, numbers.Integral) and not isinstance(v, bool):
        v = (int(v), int(v))
    if (not isinstance(v, (tuple, list)) or len(v) != 2
            or not all(isinstance(a, numbers.Integral) and not isinstance(a, bool) and a > 0 for a in v)):
        raise ValueError(f"{name} must be a positive int or a pair (H, W) of positive ints, got {v!r}")
    return int(v[0]), int(v[1])


def _nonneg_float(name, v):
    if isinstance(v, torch.Tensor) and v.numel() == 1:
        v = v.item()
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(v).__name__}")
    if not v >= 0 or math.isinf(v):
        raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
    return float(v)


def _cast(t, like):
    return t.to(dtype=like.dtype, device=like.device)


def _bdot(a, b):
    """Per-sample inner product of two (B, ...) tensors -> (B,)."""
    return (a * b).reshape(len(a), -1).sum(1)


def conjugate_gradient(M, b, x0=None, iters: int = 100, tol: float = 1e-10):
    """Solve M x = b for a symmetric positive (semi-)definite linear map M, per sample.

    M: callable (B, ...) -> (B, ...); b: (B, ...). Each sample has its own step sizes
    (Hestenes & Stiefel 1952). Stops when every residual has ||r|| <= tol * ||b||. Started
    from x0 = 0 on M = A^T A, the iterates stay in range(A^T), so CG returns the
    minimum-norm least-squares solution, i.e. the pseudo-inverse.
    """
    x = torch.zeros_like(b) if x0 is None else x0.clone()
    r = b - M(x) if x0 is not None else b.clone()
    p = r.clone()
    rr = _bdot(r, r)
    stop = (tol * _bdot(b, b).sqrt()) ** 2
    shape = (-1,) + (1,) * (b.ndim - 1)
    for _ in range(iters):
        if bool((rr <= stop).all()):
            break
        Mp = M(p)
        pMp = _bdot(p, Mp)
        alpha = torch.where(pMp > 0, rr / pMp.clamp_min(1e-300), torch.zeros_like(rr))
        x = x + alpha.view(shape) * p
        r = r - alpha.view(shape) * Mp
        rr_new = _bdot(r, r)
        beta = torch.where(rr > 0, rr_new / rr.clamp_min(1e-300), torch.zeros_like(rr))
        p = r + beta.view(shape) * p
        rr = rr_new
    return x


# ----------------------------------------------------------------------------- base classes

class Operator:
    """Forward model y = A(x) (possibly nonlinear). Subclasses set `in_shape`, `out_shape`
    (per-sample shapes, None = any 4D image) and implement `_A`.

    x: (B, *in_shape) -> y: (B, *out_shape). `op(x)` is `op.A(x)`.
    """
    in_shape: tuple | None = None
    out_shape: tuple | None = None
    linear = False

    def __repr__(self):
        return f"{type(self).__name__}(in_shape={self.in_shape}, out_shape={self.out_shape})"

    def _check(self, name, t, shape):
        check_tensor(name, t)
        want = "(B, " + ", ".join(map(str, shape)) + ")" if shape is not None else "(B, C, H, W)"
        if (t.ndim != (len(shape) + 1 if shape is not None else 4)
                or (shape is not None and tuple(t.shape[1:]) != tuple(shape))):
            raise ValueError(f"{name} must have shape {want} for {type(self).__name__}, "
                             f"got {tuple(t.shape)}")
        return t

    def _check_x(self, x, name="x"):
        return self._check(name, x, self.in_shape)

    def _check_y(self, y, name="y"):
        return self._check(name, y, self.out_shape)

    def A(self, x: torch.Tensor) -> torch.Tensor:
        """Forward model. x: (B, *in_shape) -> (B, *out_shape)."""
        return self._A(self._check_x(x))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.A(x)

    def measure(self, x: torch.Tensor, sigma_y: float = 0.0,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """y = A(x) + sigma_y * n with n ~ N(0, I) drawn from `generator`.
        x: (B, *in_shape) -> y: (B, *out_shape)."""
        sigma_y = _nonneg_float("sigma_y", sigma_y)
        y = self.A(x)
        if sigma_y > 0:
            dev = generator.device if generator is not None else y.device
            y = y + sigma_y * torch.randn(y.shape, generator=generator, dtype=y.dtype,
                                          device=dev).to(y.device)
        return y

    def A_adjoint(self, y):
        raise NotImplementedError(f"{type(self).__name__} is nonlinear: it has no adjoint A^T")

    def A_dagger(self, y):
        raise NotImplementedError(f"{type(self).__name__} is nonlinear: it has no pseudo-inverse A^+")


class LinearOperator(Operator):
    """A linear y = A x with adjoint, pseudo-inverse and (where `has_svd`) an SVD.

    Subclasses implement `_A`, `_A_adjoint` and, for an SVD, `_V_T`, `_V`, `_U_T`, `_U`,
    `_s` (singular values as a float64 (n,) vector). Without an SVD the pseudo-inverse and
    the normal equations are solved by conjugate gradient.
    """
    linear = True
    has_svd = False
    rcond = 1e-6      # singular values below rcond * s_max count as zero in A_dagger

    # --- adjoint, pseudo-inverse, normal equations
    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """Adjoint A^T. y: (B, *out_shape) -> (B, *in_shape)."""
        return self._A_adjoint(self._check_y(y))

    def A_dagger(self, y: torch.Tensor, iters: int = 200) -> torch.Tensor:
        """Moore-Penrose pseudo-inverse A^+ y: the minimum-norm least-squares solution.
        y: (B, *out_shape) -> (B, *in_shape). Exact via the SVD where there is one, else
        `iters` conjugate-gradient steps on A^T A x = A^T y from x = 0."""
        y = self._check_y(y)
        if not self.has_svd:
            return conjugate_gradient(lambda v: self._A_adjoint(self._A(v)), self._A_adjoint(y),
                                      iters=iters)
        s = _cast(self._s(), y)
        k = min(self._n, self._m)
        sk = s[:k]
        inv = torch.where(sk > self.rcond * s.max(), 1.0 / sk.clamp_min(1e-300), torch.zeros_like(sk))
        c = y.new_zeros(len(y), self._n)
        c[:, :k] = inv * self._U_T(y)[:, :k]
        return self._V(c)

    def solve_normal(self, b: torch.Tensor, mu: float, iters: int = 200) -> torch.Tensor:
        """x = (A^T A + mu I)^{-1} b for mu > 0; b, x: (B, *in_shape). Closed form through
        the SVD (or a subclass's faster diagonalisation), else conjugate gradient."""
        b = self._check_x(b, "b")
        if isinstance(mu, torch.Tensor) and mu.numel() == 1:
            mu = mu.item()
        if not isinstance(mu, numbers.Real) or not mu > 0:
            raise ValueError(f"mu must be a number > 0, got {mu!r}")
        return self._solve_normal(b, float(mu), iters)

    def _solve_normal(self, b, mu, iters):
        if self.has_svd:
            s = _cast(self._s(), b)
            return self._V(self._V_T(b) / (s * s + mu))
        return conjugate_gradient(lambda v: self._A_adjoint(self._A(v)) + mu * v, b, iters=iters)

    def norm(self, iters: int = 50, generator: torch.Generator | None = None) -> float:
        """Operator 2-norm ||A|| = s_max: exact from the SVD, else power iteration on A^T A
        (`iters` steps from a seeded random start, enlarged by 1% as a safety margin)."""
        if self.has_svd:
            return float(self._s().max())
        g = generator if generator is not None else torch.Generator().manual_seed(0)
        v = torch.randn((1,) + tuple(self.in_shape), generator=g, dtype=torch.float64)
        lam = 0.0
        for _ in range(iters):
            v = v / v.norm()
            w = self._A_adjoint(self._A(v))
            lam = float(_bdot(v, w))
            v = w
        return 1.01 * math.sqrt(max(lam, 0.0))

    def adjointness_test(self, generator: torch.Generator | None = None,
                         dtype=torch.float64) -> float:
        """Relative gap |<A x, y> - <x, A^T y>| / (|<A x, y>| + tiny) on random x, y (deepinv's
        check that `A_adjoint` is the adjoint of `A`; ~1e-15 in float64 when it is)."""
        g = generator if generator is not None else torch.Generator().manual_seed(0)
        x = torch.randn((1,) + tuple(self.in_shape), generator=g, dtype=dtype)
        y = torch.randn((1,) + tuple(self.out_shape), generator=g, dtype=dtype)
        lhs, rhs = float(_bdot(self.A(x), y)), float(_bdot(x, self.A_adjoint(y)))
        return abs(lhs - rhs) / (abs(lhs) + 1e-30)

    # --- SVD interface (DDRM's H_functions)
    @property
    def _n(self):
        return math.prod(self.in_shape)

    @property
    def _m(self):
        return math.prod(self.out_shape)

    def _need_svd(self):
        if not self.has_svd:
            raise NotImplementedError(
                f"{type(self).__name__} has no closed-form SVD; use A, A_adjoint and A_dagger "
                f"(conjugate gradient), e.g. in the pseudo-inverse path of DDRM/DDNM")

    def _check_flat(self, name, z, size):
        check_tensor(name, z, ndim=2)
        if z.shape[1] != size:
            raise ValueError(f"{name} must have shape (B, {size}) for {type(self).__name__}, "
                             f"got {tuple(z.shape)}")
        return z

    def V_T(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, *in_shape) -> (B, n) right-singular coefficients V^T x."""
        self._need_svd()
        return self._V_T(self._check_x(x))

    def V(self, z: torch.Tensor) -> torch.Tensor:
        """z: (B, n) -> (B, *in_shape), the inverse of V_T."""
        self._need_svd()
        return self._V(self._check_flat("z", z, self._n))

    def U_T(self, y: torch.Tensor) -> torch.Tensor:
        """y: (B, *out_shape) -> (B, m) left-singular coefficients U^T y."""
        self._need_svd()
        return self._U_T(self._check_y(y))

    def U(self, z: torch.Tensor) -> torch.Tensor:
        """z: (B, m) -> (B, *out_shape), the inverse of U_T."""
        self._need_svd()
        return self._U(self._check_flat("z", z, self._m))

    def singular_values(self) -> torch.Tensor:
        """(n,) float64: s_1..s_k, then zeros for the null space (length prod(in_shape))."""
        self._need_svd()
        return self._s().clone()

    def svd_A(self, x: torch.Tensor) -> torch.Tensor:
        """A x rebuilt from the SVD, U(s * V^T x); equals A(x) (used by the tests).
        x: (B, *in_shape) -> (B, *out_shape)."""
        self._need_svd()
        x = self._check_x(x)
        k = min(self._n, self._m)
        c = x.new_zeros(len(x), self._m)
        c[:, :k] = _cast(self._s(), x)[:k] * self._V_T(x)[:, :k]
        return self._U(c)


# ----------------------------------------------------------------------------- operators

class Dense(LinearOperator):
    """y = H x for a matrix H: (m, n); x: (B, n), y: (B, m). Exact SVD by torch.linalg.svd.
    The Gaussian-mixture benchmark's linear model y = H x + sigma_y n."""
    has_svd = True

    def __init__(self, H: torch.Tensor):
        check_tensor("H", H, ndim=2)
        self.H = H.detach().double()
        self.out_shape, self.in_shape = (H.shape[0],), (H.shape[1],)
        U, S, Vh = torch.linalg.svd(self.H, full_matrices=True)   # U (m, m), S (k,), Vh (n, n)
        self._Um, self._Vh = U, Vh
        self._svals = torch.zeros(H.shape[1], dtype=torch.float64)
        self._svals[:len(S)] = S

    def _A(self, x):
        return x @ _cast(self.H, x).T

    def _A_adjoint(self, y):
        return y @ _cast(self.H, y)

    def _V_T(self, x):
        return x @ _cast(self._Vh, x).T

    def _V(self, z):
        return z @ _cast(self._Vh, z)

    def _U_T(self, y):
        return y @ _cast(self._Um, y)

    def _U(self, z):
        return z @ _cast(self._Um, z).T

    def _s(self):
        return self._svals


class _Separable(LinearOperator):
    """y = Ky x Kx^T on each channel, Ky: (h, H), Kx: (w, W), h <= H, w <= W.

    SVD from the 1D SVDs Ky = Uy Sy Vy^T, Kx = Ux Sx Vx^T (the Kronecker structure):
    V^T x = Vy^T x Vx, whose top-left (h, w) block carries singular values Sy_i Sx_j and
    comes first in the flat layout; the rest is the null space.
    """
    has_svd = True

    def _setup(self, Ky, Kx, channels):
        self.Ky, self.Kx = Ky, Kx
        (h, H), (w, W) = Ky.shape, Kx.shape
        C = channels
        self.in_shape, self.out_shape = (C, H, W), (C, h, w)
        self._Uy, Sy, self._Vyh = torch.linalg.svd(Ky, full_matrices=True)
        self._Ux, Sx, self._Vxh = torch.linalg.svd(Kx, full_matrices=True)
        keep = torch.zeros(C, H, W, dtype=torch.bool)
        keep[:, :h, :w] = True
        keep = keep.flatten()
        self._perm = torch.cat([keep.nonzero()[:, 0], (~keep).nonzero()[:, 0]])  # kept first
        s = (Sy[:, None] * Sx[None, :]).expand(C, h, w).flatten()
        self._svals = torch.cat([s, torch.zeros(C * H * W - s.numel(), dtype=torch.float64)])

    def _A(self, x):
        return _cast(self.Ky, x) @ x @ _cast(self.Kx, x).T

    def _A_adjoint(self, y):
        return _cast(self.Ky, y).T @ y @ _cast(self.Kx, y)

    def _V_T(self, x):
        Z = _cast(self._Vyh, x) @ x @ _cast(self._Vxh, x).T          # (B, C, H, W)
        return Z.reshape(len(x), -1)[:, self._perm.to(x.device)]

    def _V(self, z):
        Zf = torch.empty_like(z)
        Zf[:, self._perm.to(z.device)] = z
        Z = Zf.reshape((len(z),) + self.in_shape)
        return _cast(self._Vyh, z).T @ Z @ _cast(self._Vxh, z)

    def _U_T(self, y):
        return (_cast(self._Uy, y).T @ y @ _cast(self._Ux, y)).reshape(len(y), -1)

    def _U(self, z):
        Y = z.reshape((len(z),) + self.out_shape)
        return _cast(self._Uy, z) @ Y @ _cast(self._Ux, z).T

    def _s(self):
        return self._svals


def _cubic(t, a=-0.5):
    """Keys' cubic convolution kernel (a = -0.5, as MATLAB imresize and PyTorch bicubic)."""
    t = t.abs()
    return torch.where(t <= 1, (a + 2) * t**3 - (a + 3) * t**2 + 1,
                       torch.where(t < 2, a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a,
                                   torch.zeros_like(t)))


def _downsample_matrix(N, factor, mode):
    """(N // factor, N) float64 1D downsampling matrix; rows sum to 1."""
    n = N // factor
    K = torch.zeros(n, N, dtype=torch.float64)
    if mode == "avgpool":
        for i in range(n):
            K[i, i * factor:(i + 1) * factor] = 1.0 / factor
        return K
    # bicubic with antialiasing: the cubic kernel stretched by `factor` (support 4 * factor),
    # centred on output pixel i at input coordinate (i + 0.5) * factor - 0.5; samples
    # outside [0, N) are folded back by half-sample symmetric reflection.
    for i in range(n):
        c = (i + 0.5) * factor - 0.5
        j = torch.arange(math.floor(c - 2 * factor), math.ceil(c + 2 * factor) + 1)
        w = _cubic((j - c).double() / factor)
        j = j % (2 * N)
        j = torch.where(j >= N, 2 * N - 1 - j, j)
        K[i].index_add_(0, j, w)
    return K / K.sum(1, keepdim=True)


class SuperResolution(_Separable):
    """Downsampling by an integer `factor`: x: (B, C, H, W) -> y: (B, C, H/f, W/f).

    mode "avgpool": the mean of each f x f block (singular values all 1/f);
    mode "bicubic": antialiased bicubic (Keys, a = -0.5) as an explicit 1D matrix per axis,
    y = Ky x Kx^T. Both are separable, so the SVD is the Kronecker product of 1D SVDs.
    """

    def __init__(self, factor: int, img_size, mode: str = "avgpool", channels: int = 3):
        check_positive_int("factor", factor)
        check_choice("mode", mode, {"avgpool", "bicubic"})
        check_positive_int("channels", channels)
        H, W = _pair("img_size", img_size)
        if H % factor or W % factor:
            raise ValueError(f"img_size {(H, W)} must be divisible by factor {factor}")
        self.factor, self.mode = factor, mode
        self._setup(_downsample_matrix(H, factor, mode), _downsample_matrix(W, factor, mode), channels)


class Inpainting(LinearOperator):
    """y = mask * x: keeps the pixels where mask = 1. x, y: (B, C, H, W).

    mask: (H, W) (shared by the `channels` channels) or (C, H, W), entries 0 or 1. A = A^T =
    A^+ is a diagonal projection; its SVD is a permutation with the kept pixels first
    (singular value 1) and the missing ones last (0). `measure` masks the noise as well, so
    y stays zero where nothing was observed.
    """
    has_svd = True

    def __init__(self, mask: torch.Tensor, channels: int = 3):
        check_tensor("mask", mask, ndim=(2, 3), floating=False)
        check_positive_int("channels", channels)
        m = mask.detach().double().cpu()
        if not bool(((m == 0) | (m == 1)).all()):
            raise ValueError("mask must contain only 0 (missing) and 1 (observed)")
        if m.ndim == 2:
            m = m.expand(channels, *m.shape)
        self.mask = m.contiguous()                               # (C, H, W)
        self.in_shape = self.out_shape = tuple(m.shape)
        keep = self.mask.flatten() > 0
        self._perm = torch.cat([keep.nonzero()[:, 0], (~keep).nonzero()[:, 0]])
        self._svals = keep[self._perm].double()

    def _A(self, x):
        return x * _cast(self.mask, x)

    _A_adjoint = _A

    def measure(self, x, sigma_y=0.0, generator=None):
        return super().measure(x, sigma_y, generator) * _cast(self.mask, x)

    def _solve_normal(self, b, mu, iters):
        return b / (_cast(self.mask, b) + mu)

    def _V_T(self, x):
        return x.reshape(len(x), -1)[:, self._perm.to(x.device)]

    def _V(self, z):
        out = torch.empty_like(z)
        out[:, self._perm.to(z.device)] = z
        return out.reshape((len(z),) + self.in_shape)

    _U_T, _U = _V_T, _V

    def _s(self):
        return self._svals


class Blur(LinearOperator):
    """Circular convolution y = k * x (periodic boundary), computed by FFT.
    x, y: (B, C, H, W); kernel: (kh, kw) with its centre at (kh // 2, kw // 2).

    The DFT diagonalises it: FFT(A x) = K . FFT(x), K = FFT(kernel). For the real SVD DDRM
    needs, V^T is the orthonormal *real* Fourier transform (for each conjugate pair k, -k:
    sqrt(2) Re X_k and sqrt(2) Im X_k; self-conjugate frequencies: X_k), the singular values
    are |K|, and U^T applies the same real transform after removing the phase of K.
    """
    has_svd = True

    def __init__(self, kernel: torch.Tensor, img_size, channels: int = 3):
        check_tensor("kernel", kernel, ndim=2)
        check_positive_int("channels", channels)
        H, W = _pair("img_size", img_size)
        kh, kw = kernel.shape
        if kh > H or kw > W:
            raise ValueError(f"kernel of shape {(kh, kw)} does not fit in img_size {(H, W)}")
        self.kernel = kernel.detach().double().cpu()
        self.in_shape = self.out_shape = (channels, H, W)
        pad = torch.zeros(H, W, dtype=torch.float64)
        pad[:kh, :kw] = self.kernel
        pad = torch.roll(pad, shifts=(-(kh // 2), -(kw // 2)), dims=(0, 1))
        self.fourier_multiplier = torch.fft.fft2(pad)                 # K: (H, W) complex128
        absK = self.fourier_multiplier.abs()
        self._phase = torch.where(absK > 0, self.fourier_multiplier / absK.clamp_min(1e-300),
                                  torch.ones_like(self.fourier_multiplier))
        # real orthonormal Fourier coordinates: self-conjugate frequencies, then Re, Im of one
        # representative q < partner(q) of each conjugate pair
        u, v = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
        q = (u * W + v).flatten()
        partner = (((-u) % H) * W + (-v) % W).flatten()
        self._S, self._P = q[partner == q], q[q < partner]
        self._Pc = partner[self._P]
        a = absK.flatten()
        self._svals = torch.cat([a[self._S], a[self._P], a[self._P]]).repeat(channels)

    def _mult(self, x, M):
        return torch.fft.ifft2(torch.fft.fft2(x) * M.to(device=x.device)).real.to(x.dtype)

    def _A(self, x):
        return self._mult(x, self.fourier_multiplier)

    def _A_adjoint(self, y):
        return self._mult(y, self.fourier_multiplier.conj())

    def _solve_normal(self, b, mu, iters):
        return self._mult(b, 1.0 / (self.fourier_multiplier.abs() ** 2 + mu))

    def _realify(self, X):                     # (B, C, H, W) Hermitian complex -> (B, n) real
        Xf = X.flatten(2)
        S, P = self._S.to(X.device), self._P.to(X.device)
        r2 = math.sqrt(2.0)
        return torch.cat([Xf[..., S].real, r2 * Xf[..., P].real, r2 * Xf[..., P].imag],
                         dim=-1).flatten(1)

    def _unrealify(self, z):                   # inverse of _realify
        C, H, W = self.in_shape
        z = z.reshape(len(z), C, H * W)
        nS, nP = len(self._S), len(self._P)
        re, im = z[..., nS:nS + nP], z[..., nS + nP:]
        X = torch.zeros(len(z), C, H * W, dtype=torch.complex128 if z.dtype == torch.float64
                        else torch.complex64, device=z.device)
        S, P, Pc = (t.to(z.device) for t in (self._S, self._P, self._Pc))
        X[..., S] = z[..., :nS].to(X.dtype)
        X[..., P] = torch.complex(re, im) / math.sqrt(2.0)
        X[..., Pc] = torch.complex(re, -im) / math.sqrt(2.0)
        return X.reshape(len(z), C, H, W)

    def _V_T(self, x):
        return self._realify(torch.fft.fft2(x, norm="ortho")).to(x.dtype)

    def _V(self, z):
        return torch.fft.ifft2(self._unrealify(z), norm="ortho").real.to(z.dtype)

    def _U_T(self, y):
        Y = torch.fft.fft2(y, norm="ortho") * self._phase.conj().to(y.device)
        return self._realify(Y).to(y.dtype)

    def _U(self, z):
        return torch.fft.ifft2(self._unrealify(z) * self._phase.to(z.device), norm="ortho").real.to(z.dtype)

    def _s(self):
        return self._svals


class Turbulence(LinearOperator):
    """Atmospheric turbulence: a random smooth tilt (warp) followed by a Gaussian blur,
    y = blur(warp(x)). x, y: (B, C, H, W).

    The tilt field is white noise smoothed by a Gaussian of std `correlation` pixels
    (default H / 8), scaled to an RMS displacement of `strength` pixels, fixed by `seed`.
    The warp is bilinear `grid_sample` (border padding), which is linear in x for a fixed
    field, so A is linear; its adjoint is the vector-Jacobian product of the warp computed by
    autograd (exact, since the Jacobian of a linear map is the map). No closed-form SVD:
    A_dagger and the normal equations use conjugate gradient.
    """

    def __init__(self, img_size, strength: float = 1.0, seed: int = 0, channels: int = 3,
                 correlation: float | None = None, blur_sigma: float = 1.0,
                 kernel_size: int | None = None):
        H, W = _pair("img_size", img_size)
        check_positive_int("channels", channels)
        self.strength = _nonneg_float("strength", strength)
        corr = H / 8 if correlation is None else correlation
        if not corr > 0:
            raise ValueError(f"correlation must be > 0 pixels, got {correlation!r}")
        self.in_shape = self.out_shape = (channels, H, W)
        g = torch.Generator().manual_seed(seed)
        noise = torch.randn(2, H, W, generator=g, dtype=torch.float64)
        fy, fx = torch.fft.fftfreq(H, dtype=torch.float64), torch.fft.fftfreq(W, dtype=torch.float64)
        smooth = torch.exp(-2 * math.pi**2 * corr**2 * (fy[:, None] ** 2 + fx[None, :] ** 2))
        d = torch.fft.ifft2(torch.fft.fft2(noise) * smooth).real                  # (2, H, W)
        d = d / d.pow(2).sum(0).mean().sqrt().clamp_min(1e-12) * self.strength    # RMS = strength px
        self.displacement = d                                   # (2, H, W): (dy, dx) in pixels
        ys = (2 * torch.arange(H, dtype=torch.float64) + 1) / H - 1               # pixel centres
        xs = (2 * torch.arange(W, dtype=torch.float64) + 1) / W - 1               # (align_corners=False)
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        self._grid = torch.stack([gx + 2 * d[1] / W, gy + 2 * d[0] / H], dim=-1)[None]  # (1, H, W, 2)
        if kernel_size is None:
            kernel_size = min(2 * math.ceil(3 * blur_sigma) + 1, H, W)
        self.blur = Blur(gaussian_kernel(kernel_size, blur_sigma), (H, W), channels)

    def _warp(self, x):
        grid = _cast(self._grid, x).expand(len(x), -1, -1, -1)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    def _warp_adjoint(self, v):
        keep_graph = torch.is_grad_enabled() and v.requires_grad
        with torch.enable_grad():
            x = torch.zeros_like(v, requires_grad=True)
            (g,) = torch.autograd.grad(self._warp(x), x, grad_outputs=v, create_graph=keep_graph)
        return g

    def _A(self, x):
        return self.blur._A(self._warp(x))

    def _A_adjoint(self, y):
        return self._warp_adjoint(self.blur._A_adjoint(y))


class PhaseRetrieval(Operator):
    """Fourier phase retrieval y = |F(pad(x))|: the magnitude of the unitary 2D DFT of x
    zero-padded to ceil(oversampling * (H, W)). x: (B, C, H, W) -> y: (B, C, H', W').
    Without `img_size` it accepts any (B, C, H, W); with it (and `channels`, default 3) the
    shapes are fixed and checked like the other operators'.
    Nonlinear: there is no adjoint or pseudo-inverse (DPS-style solvers differentiate
    through A instead). By Parseval, ||y|| = ||x||.
    """

    def __init__(self, oversampling: float = 2.0, img_size=None, channels: int | None = None):
        if isinstance(oversampling, bool) or not isinstance(oversampling, numbers.Real) or not oversampling >= 1:
            raise ValueError(f"oversampling must be a number >= 1, got {oversampling!r}")
        self.oversampling = float(oversampling)
        if img_size is not None:
            H, W = _pair("img_size", img_size)
            C = check_positive_int("channels", 3 if channels is None else channels)
            self.in_shape = (C, H, W)
            self.out_shape = (C,) + self._padded(H, W)

    def _padded(self, H, W):
        return math.ceil(self.oversampling * H), math.ceil(self.oversampling * W)

    def _A(self, x):
        Hp, Wp = self._padded(*x.shape[-2:])
        xp = F.pad(x, (0, Wp - x.shape[-1], 0, Hp - x.shape[-2]))
        return torch.fft.fft2(xp, norm="ortho").abs()

    def A_adjoint(self, y):
        raise NotImplementedError("PhaseRetrieval is nonlinear (y = |F pad(x)|): it has no adjoint; "
                                  "use the gradient of ||y - A(x)||^2 by autograd instead")

    def A_dagger(self, y):
        raise NotImplementedError("PhaseRetrieval is nonlinear (y = |F pad(x)|): it has no "
                                  "pseudo-inverse; use an iterative method (e.g. Fienup's HIO) or DPS")


# ----------------------------------------------------------------------------- masks and kernels

def _gen(seed):
    return torch.Generator().manual_seed(int(seed))


def box_mask(img_size, box_size=None, seed: int | None = None) -> torch.Tensor:
    """(H, W) float mask, 1 = observed, with a box of 0s of size `box_size` (int or (h, w);
    default half the image) centred, or at a random place when `seed` is given."""
    H, W = _pair("img_size", img_size)
    bh, bw = (H // 2, W // 2) if box_size is None else _pair("box_size", box_size)
    if bh > H or bw > W:
        raise ValueError(f"box_size {(bh, bw)} does not fit in img_size {(H, W)}")
    if seed is None:
        top, left = (H - bh) // 2, (W - bw) // 2
    else:
        g = _gen(seed)
        top = int(torch.randint(0, H - bh + 1, (1,), generator=g))
        left = int(torch.randint(0, W - bw + 1, (1,), generator=g))
    m = torch.ones(H, W)
    m[top:top + bh, left:left + bw] = 0
    return m


def random_mask(img_size, p: float, seed: int = 0) -> torch.Tensor:
    """(H, W) float mask, 1 = observed: each pixel is missing independently with probability p."""
    H, W = _pair("img_size", img_size)
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 <= p <= 1:
        raise ValueError(f"p (probability a pixel is missing) must be in [0, 1], got {p!r}")
    return (torch.rand(H, W, generator=_gen(seed)) >= p).float()


def freeform_mask(img_size, seed: int = 0, strokes: int = 4, max_vertices: int = 6,
                  max_width: float | None = None) -> torch.Tensor:
    """(H, W) float mask, 1 = observed, with random brush strokes of 0s (as in free-form
    inpainting, Yu et al. 2019): each stroke is a random polyline of up to `max_vertices`
    segments painted with a round brush of random width up to `max_width` (default H / 8)."""
    H, W = _pair("img_size", img_size)
    check_positive_int("strokes", strokes)
    check_positive_int("max_vertices", max_vertices)
    g = _gen(seed)
    max_width = max(2.0, H / 8) if max_width is None else float(max_width)
    yy, xx = torch.meshgrid(torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64),
                            indexing="ij")
    P = torch.stack([yy, xx], -1)                                                  # (H, W, 2)
    hole = torch.zeros(H, W, dtype=torch.bool)
    for _ in range(strokes):
        n_seg = int(torch.randint(1, max_vertices + 1, (1,), generator=g))
        width = 1.0 + (max_width - 1.0) * float(torch.rand(1, generator=g, dtype=torch.float64))
        a = torch.rand(2, generator=g, dtype=torch.float64) * torch.tensor([H - 1.0, W - 1.0])
        for _ in range(n_seg):
            angle = 2 * math.pi * float(torch.rand(1, generator=g))
            length = (0.1 + 0.3 * float(torch.rand(1, generator=g))) * max(H, W)
            b = a + length * torch.tensor([math.sin(angle), math.cos(angle)], dtype=torch.float64)
            b = torch.minimum(torch.maximum(b, torch.zeros(2, dtype=torch.float64)),
                              torch.tensor([H - 1.0, W - 1.0]))
            ab = b - a                                       # distance of pixels to segment [a, b]
            t = (((P - a) @ ab) / ab.dot(ab).clamp_min(1e-12)).clamp(0, 1)
            dist = (P - a - t[..., None] * ab).norm(dim=-1)
            hole |= dist <= width / 2
            a = b
    return (~hole).float()


def gaussian_kernel(size: int, sigma: float) -> torch.Tensor:
    """(size, size) normalised isotropic Gaussian blur kernel of std `sigma` pixels."""
    check_positive_int("size", size)
    if isinstance(sigma, bool) or not isinstance(sigma, numbers.Real) or not sigma > 0:
        raise ValueError(f"sigma must be a number > 0, got {sigma!r}")
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    k1 = torch.exp(-r**2 / (2 * sigma**2))
    k = k1[:, None] * k1[None, :]
    return (k / k.sum()).float()


def motion_kernel(size: int, seed: int = 0, intensity: float = 0.5) -> torch.Tensor:
    """(size, size) normalised motion-blur kernel: a random camera trajectory (a random walk
    whose velocity turns by random angles, `intensity` in [0, 1] scaling how much it turns),
    centred, scaled to fit the kernel and splatted bilinearly."""
    check_positive_int("size", size)
    if not 0 <= intensity <= 1:
        raise ValueError(f"intensity must be in [0, 1], got {intensity!r}")
    g = _gen(seed)
    n = 8 * size
    angle0 = 2 * math.pi * torch.rand(1, generator=g, dtype=torch.float64)
    turns = intensity * 0.6 * torch.randn(n, generator=g, dtype=torch.float64)
    angles = angle0 + torch.cumsum(turns, 0)
    speed = 1.0 + 0.5 * torch.rand(n, generator=g, dtype=torch.float64)
    path = torch.cumsum(torch.stack([speed * torch.sin(angles), speed * torch.cos(angles)], -1), 0)
    path = path - (path.amax(0) + path.amin(0)) / 2                 # centre the trajectory
    half = (size - 1) / 2
    path = path / path.abs().max().clamp_min(1e-12) * half + half   # fit in [0, size - 1]
    k = torch.zeros(size, size, dtype=torch.float64)
    i0 = path.floor().long().clamp(0, size - 1)
    f = path - i0
    for di in (0, 1):
        for dj in (0, 1):
            w = (f[:, 0] if di else 1 - f[:, 0]) * (f[:, 1] if dj else 1 - f[:, 1])
            ii, jj = (i0[:, 0] + di).clamp(max=size - 1), (i0[:, 1] + dj).clamp(max=size - 1)
            k.index_put_((ii, jj), w, accumulate=True)
    return (k / k.sum()).float()
