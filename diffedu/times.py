"""Continuous time: t in [0, 1] of the SDEs (sde.py) and tau of the flows (flow.py), both
"noise at 1". The one check of a time argument and the per-time evaluation both modules use."""
from __future__ import annotations

import numbers

import torch

from ._validate import check_tensor

__all__ = ["as_t", "check_times", "per_time"]


def as_t(t, like: torch.Tensor | None = None) -> torch.Tensor:
    """t as a float64 tensor; with `like` (B, ...): shaped (B, 1, ..., 1) in like's dtype/device."""
    t = torch.as_tensor(t, dtype=torch.float64)
    if like is None:
        return t
    if t.ndim == 0:
        t = t.expand(len(like))
    return t.reshape((-1,) + (1,) * (like.ndim - 1)).to(device=like.device, dtype=like.dtype)


def check_times(t, x: torch.Tensor, name: str = "t") -> torch.Tensor:
    """Times t: a number or a (B,) tensor (B = len(x)), finite and in [0, 1]; as float64 (B,) on CPU."""
    check_tensor("x", x, min_ndim=1)
    if isinstance(t, bool) or not isinstance(t, (numbers.Real, torch.Tensor)):
        raise TypeError(f"{name} must be a number or a (B,) tensor of times in [0, 1], got {type(t).__name__}")
    t = torch.tensor(float(t), dtype=torch.float64) if not isinstance(t, torch.Tensor) else t.detach()
    if t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"{name} must hold real times in [0, 1], got dtype {t.dtype}")
    t = t.to(dtype=torch.float64, device="cpu").reshape(-1)
    if t.numel() == 1:
        t = t.expand(len(x))
    if t.shape != (len(x),):
        raise ValueError(f"{name} must be a number or shape ({len(x)},) (one per row of x), got {t.numel()} values")
    if not bool(((t >= 0) & (t <= 1)).all()):                   # NaN fails both comparisons
        raise ValueError(f"{name} must hold finite times in [0, 1], got {t[~((t >= 0) & (t <= 1))][:4].tolist()}")
    return t


def per_time(fn, x: torch.Tensor, t, name: str = "t"):
    """Call fn(x_rows, t_float) once per distinct time in t (float or (B,)); an empty batch
    gives an empty result."""
    t = check_times(t, x, name)
    if len(x) == 0:
        return x.clone()
    if t.numel() == 1 or bool((t == t[0]).all()):
        return fn(x, float(t[0]))
    out = torch.empty_like(x)
    for tv in torch.unique(t):
        rows = (t == tv).nonzero()[:, 0].to(x.device)
        out[rows] = fn(x[rows], float(tv))
    return out
