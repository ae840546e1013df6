"""Measurement operators for inverse problems  y = A(x) + sigma_y * n,  n ~ N(0, I): the base.

Scope: the two base classes every operator derives from, `Operator` (any forward model,
possibly nonlinear) and `LinearOperator` (adjoint, pseudo-inverse, normal equations, norm,
the adjointness test and DDRM's SVD interface), and the conjugate-gradient solver they fall
back on. The operators themselves live beside it: `linear.py` (Dense, SuperResolution,
Inpainting, Blur, Turbulence), `nonlinear.py` (PhaseRetrieval), `masks.py` (masks and blur
kernels). Solvers live in `inverse/classical.py` and `inverse/pnp.py`.

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

from ..._validate import (check_callable, check_int, check_nonneg, check_positive_int, check_real, check_tensor,
                          rows)

__all__ = ["Operator", "LinearOperator", "conjugate_gradient"]


# ----------------------------------------------------------------------------- helpers

def _pair(name, v):
    """An image size given as int or (H, W) -> (H, W) of positive ints."""
    if isinstance(v, numbers.Integral) and not isinstance(v, bool):
        v = (int(v), int(v))
    if (not isinstance(v, (tuple, list)) or len(v) != 2
            or not all(isinstance(a, numbers.Integral) and not isinstance(a, bool) and a > 0 for a in v)):
        raise ValueError(f"{name} must be a positive int or a pair (H, W) of positive ints, got {v!r}")
    return int(v[0]), int(v[1])


def _cast(t, like):
    return t.to(dtype=like.dtype, device=like.device)


def _bdot(a, b):
    """Per-sample inner product of two (B, ...) tensors -> (B,)."""
    return rows(a * b).sum(1)


def _batched(fn, x):
    """fn(x) for a (B, ...) batch; an empty batch (B = 0) gives an empty result of the right
    shape without running fn on it (FFTs and solvers refuse zero-size inputs)."""
    if x.shape[0] == 0:
        return fn(x.new_zeros((1,) + tuple(x.shape[1:])))[:0]
    return fn(x)


def conjugate_gradient(M, b, x0=None, iters: int = 100, tol: float = 1e-10):
    """Solve M x = b for a symmetric positive (semi-)definite linear map M, per sample.

    M: callable (B, ...) -> (B, ...); b: (B, ...). Each sample has its own step sizes
    (Hestenes & Stiefel 1952). Stops when every residual has ||r|| <= tol * ||b||. Started
    from x0 = 0 on M = A^T A, the iterates stay in range(A^T), so CG returns the
    minimum-norm least-squares solution, i.e. the pseudo-inverse.
    """
    check_callable("M", M, "M(x) -> (B, ...) like x")
    check_tensor("b", b, min_ndim=1)
    if x0 is not None and check_tensor("x0", x0).shape != b.shape:
        raise ValueError(f"x0 must have the shape of b {tuple(b.shape)}, got {tuple(x0.shape)}")
    iters = check_int("iters", iters, lo=0)
    tol = check_nonneg("tol", tol)
    if b.shape[0] == 0:
        return b.clone()
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
        return _batched(self._A, self._check_x(x))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.A(x)

    def measure(self, x: torch.Tensor, sigma_y: float = 0.0,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """y = A(x) + sigma_y * n with n ~ N(0, I) drawn from `generator`.
        x: (B, *in_shape) -> y: (B, *out_shape)."""
        sigma_y = check_nonneg("sigma_y", sigma_y)
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
        return _batched(self._A_adjoint, self._check_y(y))

    def A_dagger(self, y: torch.Tensor, iters: int = 200) -> torch.Tensor:
        """Moore-Penrose pseudo-inverse A^+ y: the minimum-norm least-squares solution.
        y: (B, *out_shape) -> (B, *in_shape). Exact via the SVD where there is one, else
        `iters` conjugate-gradient steps on A^T A x = A^T y from x = 0."""
        y = self._check_y(y)
        iters = check_positive_int("iters", iters)
        if len(y) == 0:
            return _batched(lambda v: self.A_dagger(v, iters), y)
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
        mu, iters = check_real("mu", mu, lo=0, lo_open=True), check_positive_int("iters", iters)
        return _batched(lambda v: self._solve_normal(v, mu, iters), b)

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
        return _batched(self._V_T, self._check_x(x))

    def V(self, z: torch.Tensor) -> torch.Tensor:
        """z: (B, n) -> (B, *in_shape), the inverse of V_T."""
        self._need_svd()
        return _batched(self._V, self._check_flat("z", z, self._n))

    def U_T(self, y: torch.Tensor) -> torch.Tensor:
        """y: (B, *out_shape) -> (B, m) left-singular coefficients U^T y."""
        self._need_svd()
        return _batched(self._U_T, self._check_y(y))

    def U(self, z: torch.Tensor) -> torch.Tensor:
        """z: (B, m) -> (B, *out_shape), the inverse of U_T."""
        self._need_svd()
        return _batched(self._U, self._check_flat("z", z, self._m))

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
