"""Input checks shared by the public functions: each raises with a message that names
the argument, what was given and what is allowed."""
from __future__ import annotations

import math
import numbers

import torch


def check_tensor(name: str, x, *, ndim=None, min_ndim=None, floating=True) -> torch.Tensor:
    """Return `x` if it is a tensor of the right kind, else raise a clear TypeError/ValueError."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}; "
                        f"wrap data with torch.as_tensor(...)")
    if floating and not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}; "
                        f"use {name}.float()")
    if ndim is not None and x.ndim not in ((ndim,) if isinstance(ndim, int) else ndim):
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {tuple(x.shape)}")
    if min_ndim is not None and x.ndim < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} dimensions, got shape {tuple(x.shape)}")
    return x


def check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choose one of {sorted(choices)}")


def check_positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def check_real(name: str, value, *, lo=None, lo_open=False, hi=None) -> float:
    """A finite real number (a Python number or a one-element tensor) within [lo, hi]
    (lo excluded when lo_open); returns it as a float. NaN and inf are refused."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    if math.isnan(value) or math.isinf(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if (lo is not None and (value < lo or (lo_open and value == lo))) or (hi is not None and value > hi):
        lo_s = "" if lo is None else f"{'>' if lo_open else '>='} {lo}"
        hi_s = "" if hi is None else f"<= {hi}"
        raise ValueError(f"{name} must be {' and '.join(s for s in (lo_s, hi_s) if s)}, got {value!r}")
    return float(value)


def check_nonneg(name: str, value, upper=None) -> float:
    """A finite real number >= 0 (and <= upper when given)."""
    return check_real(name, value, lo=0, hi=upper)


def check_schedule(schedule, name: str = "schedule"):
    from .schedules import NoiseSchedule
    if not isinstance(schedule, NoiseSchedule):
        raise TypeError(f"{name} must be a NoiseSchedule (see diffedu.schedules: the schedule the "
                        f"denoiser was trained on, or a respaced one), got {type(schedule).__name__}")
    return schedule


def check_callable(name: str, fn, signature: str):
    if not callable(fn):
        raise TypeError(f"{name} must be callable as {signature}, got {type(fn).__name__}")
    return fn


def check_operator(operator, *, linear: bool = False, svd: bool = False, who: str = "this method"):
    """A diffedu.inverse Operator; `linear` / `svd` demand a LinearOperator (with an SVD)."""
    from .inverse.operators import LinearOperator, Operator
    if not isinstance(operator, Operator):
        raise TypeError(f"operator must be a diffedu.inverse Operator (e.g. Dense, Inpainting), "
                        f"got {type(operator).__name__}")
    if (linear or svd) and not isinstance(operator, LinearOperator):
        raise TypeError(f"{who} needs a linear operator, got the nonlinear "
                        f"{type(operator).__name__}; use diffedu.inverse.dps for nonlinear A")
    if svd and not operator.has_svd:
        raise TypeError(f"{who} needs an operator with an SVD (V_T, V, U_T, U, singular_values), "
                        f"and {type(operator).__name__} has none; use dps, diffpir or repaint")
    return operator
