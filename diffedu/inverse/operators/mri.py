"""Accelerated MRI: Cartesian k-space undersampling, single-coil and multi-coil (SENSE).

Scope: `cartesian_mask` (equispaced or random phase-encoding lines with a fully sampled
centre), `SingleCoilMRI` (a `LinearOperator` with an exact SVD, so DDRM applies),
`MultiCoilMRI` (the SENSE model with smooth synthetic `coil_sensitivities`; no closed-form
SVD), and the classical baselines `zero_filled` and `root_sum_of_squares`.

Conventions (stated once, used everywhere here)
    images   x: (B, 1, H, W) real float (diffedu's images are real; a complex image is
             refused with a TypeError rather than silently dropping its imaginary part)
    k-space  y: (B, Nc, H, W, 2) real float, the last axis (Re, Im) (torch.view_as_real);
             Nc = 1 for a single coil. A complex (B, Nc, H, W) tensor is accepted wherever
             a k-space is an input and converted with view_as_real.
    FFT      orthonormal (norm="ortho"): F is unitary, so ||F x|| = ||x||, F^H = F^{-1}.
    layout   k-space is stored centred: K = fftshift(fft2(x)), the zero frequency at
             (H // 2, W // 2). The image is not shifted (no ifftshift before the FFT), so
             the image origin is pixel (0, 0) and F is a plain DFT up to the reordering.
    mask     (H, W) of 0/1 in the same centred layout; Cartesian: whole columns (phase-
             encoding lines k_x = const, all k_y read out), as in fastMRI.
Forward models (M the mask, S_c the coil maps, sum_c |S_c|^2 = 1):
    single coil  y = M . F x                     A^T y = Re F^H (M . y)
    multi coil   y_c = M . F (S_c x)             A^T y = Re sum_c conj(S_c) F^H (M . y_c)

Why single coil has an exact real SVD: x is real, so its spectrum is Hermitian (X_{-k} =
conj X_k). In the real Fourier basis V (per conjugate pair k, -k: sqrt(2) Re X_k and
sqrt(2) Im X_k; self-conjugate frequencies X_k), A^T A is diagonal with eigenvalue
(M_k + M_{-k}) / 2: 1 where both k and -k are sampled, 1/2 where one is, 0 where neither.
So s in {1, 1/sqrt(2), 0}: a line without its mirror carries half the energy (for a real
image it carries all the information, which is why real-valued "partial Fourier" works).
Multi-coil: the coil maps mix neighbouring frequencies, and CT's Radon matrix has no cheap
diagonalisation either, so DDRM does not apply to them (use CG-based solvers: DDS, DPS).
"""
from __future__ import annotations

import math

import torch

from ..._validate import check_choice, check_int, check_positive_int, check_real, check_tensor
from .base import LinearOperator, _cast
from .ct import signed_measurement

__all__ = ["cartesian_mask", "SingleCoilMRI", "MultiCoilMRI", "coil_sensitivities", "zero_filled",
           "root_sum_of_squares", "signed_measurement"]


# ----------------------------------------------------------------------------- functions

def cartesian_mask(size, acceleration: float, center_fraction: float, kind: str = "equispaced",
                   seed: int = 0) -> torch.Tensor:
    """A Cartesian undersampling mask: (H, W) float64 of 0/1, whole columns, centred layout.

    size: N or (H, W); acceleration R >= 1: about W / R columns in all; center_fraction in
    [0, 1]: the round(center_fraction * W) central columns are always sampled (the
    autocalibration region); the rest of the budget goes to equispaced columns (every R-th,
    from a seeded offset) or random columns (uniform without replacement, `seed`).
    fastMRI's settings: 4x with 0.08, 8x with 0.04.
    """
    H, W = (size, size) if isinstance(size, int) and not isinstance(size, bool) else tuple(size)
    H, W = check_positive_int("size[0]", H), check_positive_int("size[1]", W)
    R = check_real("acceleration", acceleration, lo=1)
    cf = check_real("center_fraction", center_fraction, lo=0, hi=1)
    check_choice("kind", kind, {"equispaced", "random"})
    seed = check_int("seed", seed)
    n_total = max(1, round(W / R))
    n_center = min(round(cf * W), n_total)
    cols = torch.zeros(W, dtype=torch.bool)
    c0 = W // 2 - n_center // 2
    cols[c0:c0 + n_center] = True
    g = torch.Generator().manual_seed(seed)
    free = (~cols).nonzero()[:, 0]
    n_more = n_total - int(cols.sum())
    if n_more > 0:
        if kind == "random":
            pick = free[torch.randperm(len(free), generator=g)[:n_more]]
        else:   # every step-th free column from a seeded offset, step chosen to spend the budget
            step = len(free) / n_more
            offset = float(torch.rand(1, generator=g)) * step
            pick = free[(offset + step * torch.arange(n_more)).long().clamp_max(len(free) - 1)]
        cols[pick] = True
    return cols.double()[None, :].expand(H, W).contiguous()


def coil_sensitivities(n_coils: int, size, *, width: float = 0.8, dtype=torch.complex128) -> torch.Tensor:
    """Smooth synthetic coil maps S: (n_coils, H, W) complex, normalised so that
    sum_c |S_c|^2 = 1 at every pixel. Coil c sits at angle 2 pi c / n_coils on a circle of
    radius 1.5 (image half-widths) around the centre; its magnitude is a Gaussian of the
    distance (std `width` half-widths) and its phase a smooth linear ramp towards it."""
    n_coils = check_positive_int("n_coils", n_coils)
    H, W = (size, size) if isinstance(size, int) and not isinstance(size, bool) else tuple(size)
    H, W = check_positive_int("size[0]", H), check_positive_int("size[1]", W)
    width = check_real("width", width, lo=0, lo_open=True)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, H, dtype=torch.float64),
                            torch.linspace(-1, 1, W, dtype=torch.float64), indexing="ij")
    maps = []
    for c in range(n_coils):
        phi = 2 * math.pi * c / n_coils
        cx, cy = 1.5 * math.cos(phi), 1.5 * math.sin(phi)
        mag = torch.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * width ** 2))
        phase = 0.5 * (math.cos(phi) * xx + math.sin(phi) * yy)
        maps.append(torch.polar(mag, phase))
    S = torch.stack(maps)
    S = S / S.abs().pow(2).sum(0, keepdim=True).sqrt()
    return S.to(dtype)


def _as_real_kspace(name: str, y):
    """A complex (B, Nc, H, W) k-space -> the real (B, Nc, H, W, 2) view; real passes."""
    if isinstance(y, torch.Tensor) and y.is_complex():
        return torch.view_as_real(y)
    return y


def zero_filled(y: torch.Tensor, operator: "SingleCoilMRI | MultiCoilMRI") -> torch.Tensor:
    """The zero-filled reconstruction |F^H (M . y)|, coils combined by root-sum-of-squares:
    y: (B, Nc, H, W, 2) -> (B, 1, H, W) real magnitude (the classical MRI baseline; it
    assumes a non-negative image, so apply it to intensities in [0, 1])."""
    return root_sum_of_squares(y, operator)


def root_sum_of_squares(y: torch.Tensor, operator: "SingleCoilMRI | MultiCoilMRI") -> torch.Tensor:
    """sqrt(sum_c |F^H (M . y_c)|^2): y: (B, Nc, H, W, 2) -> (B, 1, H, W). With sum_c |S_c|^2 = 1
    and full sampling it returns |x| exactly."""
    if not isinstance(operator, _MRI):
        raise TypeError(f"operator must be SingleCoilMRI or MultiCoilMRI, got {type(operator).__name__}")
    y = operator._check_y(y)
    imgs = operator._coil_images(y)                                     # (B, Nc, H, W) complex
    return imgs.abs().pow(2).sum(1, keepdim=True).sqrt().to(y.dtype)


# ----------------------------------------------------------------------------- operators

class _MRI(LinearOperator):
    """Shared checks and FFTs of the two MRI operators (module doc: conventions)."""

    def _set_mask(self, mask):
        check_tensor("mask", mask, ndim=2, floating=False, nonempty=True, finite=True)
        if mask.is_complex():
            raise TypeError(f"mask must be real 0/1, got dtype {mask.dtype}")
        m = mask.detach().double().cpu()
        if not bool(((m == 0) | (m == 1)).all()):
            raise ValueError("mask must contain only 0 (skipped) and 1 (sampled)")
        self.mask = m.contiguous()                                      # (H, W) centred layout
        self._mfft = torch.fft.ifftshift(m, dim=(-2, -1))                  # the same in FFT layout
        self.size = tuple(m.shape)

    def _check_x(self, x, name="x"):
        if isinstance(x, torch.Tensor) and x.is_complex():
            raise TypeError(f"{name} must be a real image (B, 1, H, W) for {type(self).__name__}, got a "
                            f"complex {x.dtype} tensor; the image model here is real (module doc)")
        return super()._check_x(x, name)

    def _check_y(self, y, name="y"):
        return super()._check_y(_as_real_kspace(name, y), name)

    def _F(self, z):                                    # complex image -> centred k-space
        return torch.fft.fftshift(torch.fft.fft2(z, norm="ortho"), dim=(-2, -1))

    def _FH(self, Z):                                   # centred k-space -> complex image
        return torch.fft.ifft2(torch.fft.ifftshift(Z, dim=(-2, -1)), norm="ortho")

    def _complex(self, y):
        return torch.view_as_complex(y.contiguous())


class SingleCoilMRI(_MRI):
    """Single-coil Cartesian MRI y = M . F x: x: (B, 1, H, W) real -> y: (B, 1, H, W, 2).

    mask: (H, W) 0/1 in the centred layout (`cartesian_mask`). Exact real SVD (module doc):
    V^T = the orthonormal real Fourier transform, s in {1, 1/sqrt(2), 0}; so A^+, the normal
    equations and DDRM are closed form. measure() masks the noise too (y = 0 off the mask).
    """
    has_svd = True

    def __init__(self, mask: torch.Tensor):
        self._set_mask(mask)
        H, W = self.size
        self.in_shape, self.out_shape = (1, H, W), (1, H, W, 2)
        # real Fourier coordinates in FFT layout: self-conjugate frequencies S, then one
        # representative P of each conjugate pair with its partner Pc (module doc)
        u, v = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
        q = (u * W + v).flatten()
        partner = (((-u) % H) * W + (-v) % W).flatten()
        self._S, self._P = q[partner == q], q[q < partner]
        self._Pc = partner[self._P]
        mf = self._mfft.flatten()
        mP, mQ = mf[self._P], mf[self._Pc]
        # left singular vectors per pair (Re Y_P, Im Y_P, Re Y_Pc, Im Y_Pc): u_c = (a, 0, b, 0),
        # u_s = (0, a, 0, -b) and the completions (b, 0, -a, 0), (0, b, 0, a), a^2 + b^2 = 1
        both = mP + mQ
        self._a = torch.where(both > 0, mP / both.clamp_min(1).sqrt(), torch.full_like(mP, 0.5 ** 0.5))
        self._b = torch.where(both > 0, mQ / both.clamp_min(1).sqrt(), torch.full_like(mQ, 0.5 ** 0.5))
        sP = (both / 2).sqrt()
        self._svals = torch.cat([mf[self._S], sP, sP])                  # (n,) = (H * W,)

    def _A(self, x):
        X = self._F(x.to(torch.complex128 if x.dtype == torch.float64 else torch.complex64))
        return torch.view_as_real(X * _cast(self.mask, x)).to(x.dtype)

    def _A_adjoint(self, y):
        return self._FH(self._complex(y) * _cast(self.mask, y)).real.to(y.dtype)

    def _coil_images(self, y):
        return self._FH(self._complex(y) * _cast(self.mask, y))

    def measure(self, x, sigma_y=0.0, generator=None):
        return super().measure(x, sigma_y, generator) * _cast(self.mask, x)[..., None]

    def _solve_normal(self, b, mu, iters):
        s2 = (self._mfft + torch.roll(torch.flip(self._mfft, (0, 1)), (1, 1), (0, 1))) / 2    # (M_k + M_-k) / 2
        B = torch.fft.fft2(b.to(torch.complex128 if b.dtype == torch.float64 else torch.complex64), norm="ortho")
        return torch.fft.ifft2(B / (_cast(s2, b) + mu), norm="ortho").real.to(b.dtype)

    # --- SVD (module doc); flat layout per image: [S, P (cos), P (sin)]
    def _V_T(self, x):
        Xf = torch.fft.fft2(x.to(torch.complex128 if x.dtype == torch.float64 else torch.complex64),
                            norm="ortho").flatten(1)
        S, P = self._S.to(x.device), self._P.to(x.device)
        r2 = math.sqrt(2.0)
        return torch.cat([Xf[:, S].real, r2 * Xf[:, P].real, r2 * Xf[:, P].imag], 1).to(x.dtype)

    def _V(self, z):
        H, W = self.size
        nS, nP = len(self._S), len(self._P)
        S, P, Pc = (t.to(z.device) for t in (self._S, self._P, self._Pc))
        X = torch.zeros(len(z), H * W, dtype=torch.complex128 if z.dtype == torch.float64 else torch.complex64,
                        device=z.device)
        re, im = z[:, nS:nS + nP], z[:, nS + nP:]
        X[:, S] = z[:, :nS].to(X.dtype)
        X[:, P] = torch.complex(re, im) / math.sqrt(2.0)
        X[:, Pc] = torch.complex(re, -im) / math.sqrt(2.0)
        return torch.fft.ifft2(X.reshape(len(z), 1, H, W), norm="ortho").real.to(z.dtype)

    def _U_T(self, y):
        Yc = torch.fft.ifftshift(self._complex(y), dim=(-2, -1)).flatten(1)            # (B, H * W) FFT layout
        S, P, Pc = (t.to(y.device) for t in (self._S, self._P, self._Pc))
        a, b = _cast(self._a, y), _cast(self._b, y)
        yP, yQ = Yc[:, P], Yc[:, Pc]
        first = [Yc[:, S].real, a * yP.real + b * yQ.real, a * yP.imag - b * yQ.imag]
        rest = [Yc[:, S].imag, b * yP.real - a * yQ.real, b * yP.imag + a * yQ.imag]
        return torch.cat(first + rest, 1)

    def _U(self, z):
        H, W = self.size
        n, nS, nP = H * W, len(self._S), len(self._P)
        S, P, Pc = (t.to(z.device) for t in (self._S, self._P, self._Pc))
        a, b = _cast(self._a, z), _cast(self._b, z)
        sc, pc, ps = z[:, :nS], z[:, nS:nS + nP], z[:, nS + nP:n]
        si, q1, q2 = z[:, n:n + nS], z[:, n + nS:n + nS + nP], z[:, n + nS + nP:]
        re = z.new_zeros(len(z), n)
        im = z.new_zeros(len(z), n)
        re[:, S], im[:, S] = sc, si
        re[:, P], im[:, P] = a * pc + b * q1, a * ps + b * q2
        re[:, Pc], im[:, Pc] = b * pc - a * q1, -b * ps + a * q2
        Y = torch.stack([re, im], -1).reshape(len(z), H, W, 2)
        return torch.fft.fftshift(Y, dim=(1, 2))[:, None].contiguous()

    def _s(self):
        return self._svals


class MultiCoilMRI(_MRI):
    """Multi-coil SENSE MRI y_c = M . F (S_c x): x: (B, 1, H, W) real -> y: (B, Nc, H, W, 2).

    mask: (H, W) 0/1 centred layout; sensitivities: (Nc, H, W) complex coil maps (e.g.
    `coil_sensitivities`), normalised so sum_c |S_c|^2 = 1 (checked, to 1e-6), which makes
    A an isometry at full sampling. No closed-form SVD (module doc): conjugate gradient.
    """

    def __init__(self, mask: torch.Tensor, sensitivities: torch.Tensor):
        self._set_mask(mask)
        if not isinstance(sensitivities, torch.Tensor):
            raise TypeError(f"sensitivities must be a torch.Tensor (Nc, H, W), got {type(sensitivities).__name__}")
        if sensitivities.ndim != 3 or tuple(sensitivities.shape[1:]) != self.size:
            raise ValueError(f"sensitivities must have shape (Nc, H, W) = (Nc, {self.size[0]}, {self.size[1]}) "
                             f"to match the mask, got {tuple(sensitivities.shape)}")
        S = sensitivities.detach().cpu().to(torch.complex128)
        total = S.abs().pow(2).sum(0)
        if not bool(torch.isfinite(total).all()) or float((total - 1).abs().max()) > 1e-6:
            raise ValueError("sensitivities must satisfy sum_c |S_c|^2 = 1 at every pixel (use "
                             "coil_sensitivities, or divide by sqrt(sum_c |S_c|^2))")
        self.sensitivities = S
        Nc, (H, W) = len(S), self.size
        self.in_shape, self.out_shape = (1, H, W), (Nc, H, W, 2)

    def _maps(self, like):
        return self.sensitivities.to(dtype=torch.complex128 if like.dtype == torch.float64 else torch.complex64,
                                     device=like.device)

    def _A(self, x):
        S = self._maps(x)
        return torch.view_as_real(self._F(x * S) * _cast(self.mask, x)).to(x.dtype)        # (B, Nc, H, W, 2)

    def _coil_images(self, y):
        return self._FH(self._complex(y) * _cast(self.mask, y))

    def _A_adjoint(self, y):
        S = self._maps(y)
        return (S.conj() * self._coil_images(y)).sum(1, keepdim=True).real.to(y.dtype)

    def measure(self, x, sigma_y=0.0, generator=None):
        return super().measure(x, sigma_y, generator) * _cast(self.mask, x)[..., None]
