"""Linear measurement operators: dense matrices, super-resolution, inpainting, blur and
turbulence. Each is a `LinearOperator` (base.py): A, A_adjoint, A_dagger, solve_normal and,
except Turbulence, a closed-form SVD for DDRM.

    Dense            y = H x                            x: (B, n)        SVD by torch.linalg.svd
    SuperResolution  block mean / antialiased bicubic   (B, C, H, W) -> (B, C, H/f, W/f)
    Inpainting       y = mask * x                       SVD: a permutation
    Blur             circular convolution (FFT)         SVD: the real Fourier basis, s = |K|
    Turbulence       Gaussian blur of a random warp     no SVD: conjugate gradient
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..._validate import check_choice, check_int, check_nonneg, check_positive_int, check_real, check_tensor
from .base import LinearOperator, _cast, _pair
from .masks import gaussian_kernel

__all__ = ["Dense", "SuperResolution", "Inpainting", "Blur", "Turbulence"]


class Dense(LinearOperator):
    """y = H x for a matrix H: (m, n); x: (B, n), y: (B, m). Exact SVD by torch.linalg.svd.
    The Gaussian-mixture benchmark's linear model y = H x + sigma_y n."""
    has_svd = True

    def __init__(self, H: torch.Tensor):
        check_tensor("H", H, ndim=2, nonempty=True, finite=True)
        if H.shape[1] == 0:
            raise ValueError(f"H must have at least one column, got shape {tuple(H.shape)}")
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
        check_tensor("mask", mask, ndim=(2, 3), floating=False, nonempty=True)
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
        check_tensor("kernel", kernel, ndim=2, nonempty=True, finite=True)
        if kernel.shape[1] == 0:
            raise ValueError(f"kernel must not be empty, got shape {tuple(kernel.shape)}")
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
        self.strength = check_nonneg("strength", strength)
        corr = H / 8 if correlation is None else check_real("correlation", correlation, lo=0, lo_open=True)
        seed = check_int("seed", seed)
        blur_sigma = check_real("blur_sigma", blur_sigma, lo=0, lo_open=True)
        if kernel_size is not None:
            kernel_size = check_positive_int("kernel_size", kernel_size)
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
