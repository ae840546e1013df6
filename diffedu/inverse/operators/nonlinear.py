"""Nonlinear measurement operators: y = A(x) with no adjoint or pseudo-inverse, for the
solvers that only differentiate through A (DPS, Graikos et al.'s diffusion_prior_map).

    PhaseRetrieval   y = |F pad(x)|, the Fourier magnitude of the zero-padded image
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..._validate import check_positive_int, check_real
from .base import Operator, _pair

__all__ = ["PhaseRetrieval"]


class PhaseRetrieval(Operator):
    """Fourier phase retrieval y = |F(pad(x))|: the magnitude of the unitary 2D DFT of x
    zero-padded to ceil(oversampling * (H, W)). x: (B, C, H, W) -> y: (B, C, H', W').
    Without `img_size` it accepts any (B, C, H, W); with it (and `channels`, default 3) the
    shapes are fixed and checked like the other operators'.
    Nonlinear: there is no adjoint or pseudo-inverse (DPS-style solvers differentiate
    through A instead). By Parseval, ||y|| = ||x||.
    """

    def __init__(self, oversampling: float = 2.0, img_size=None, channels: int | None = None):
        self.oversampling = check_real("oversampling", oversampling, lo=1)
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
