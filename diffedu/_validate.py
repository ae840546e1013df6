"""Input checks shared by the public functions: each raises with a message that names
the argument, what was given and what is allowed."""
from __future__ import annotations

import math
import numbers

import torch


def check_tensor(name: str, x, *, ndim=None, min_ndim=None, floating=True, finite=False,
                 nonempty=False) -> torch.Tensor:
    """Return `x` if it is a tensor of the right kind, else raise a clear TypeError/ValueError.
    finite: refuse NaN / inf entries (one reduction over x: use it where data enters a public
    function, not inside a per-step loop); nonempty: refuse a batch of 0 rows."""
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
    if nonempty and (x.ndim == 0 or len(x) == 0):
        raise ValueError(f"{name} is empty (shape {tuple(x.shape)}); pass at least one row")
    if finite:
        check_finite(name, x)
    return x


def rows(x: torch.Tensor) -> torch.Tensor:
    """x: (B, ...) as (B, prod(...)); unlike reshape(len(x), -1) it also works for B = 0."""
    return x.reshape(x.shape[0], math.prod(x.shape[1:]))


def check_same_shape(ref_name: str, ref, optional=(), **tensors) -> torch.Tensor:
    """`ref` a float tensor and every other tensor shaped like it (names in `optional` may be
    None). A mismatch would otherwise broadcast into a plausible wrong answer. Returns ref."""
    check_tensor(ref_name, ref, min_ndim=1)
    for name, v in tensors.items():
        if v is None and name in optional:
            continue
        if check_tensor(name, v).shape != ref.shape:
            raise ValueError(f"{name} has shape {tuple(v.shape)} but {ref_name} has {tuple(ref.shape)}; they must match")
    return ref


def check_finite(name: str, x: torch.Tensor) -> torch.Tensor:
    """Refuse a tensor holding NaN or inf, naming the argument and the first bad row."""
    if x.numel() and x.dtype != torch.bool and not bool(torch.isfinite(x).all()):
        bad = ~torch.isfinite(x)
        where = f" (row {int(rows(bad).any(1).nonzero()[0, 0])})" if x.ndim > 1 else ""
        raise ValueError(f"{name} holds NaN or inf values{where}; every entry must be a finite number")
    return x


def check_int(name: str, value, *, lo=None, hi=None) -> int:
    """An integer (Python int, NumPy integer or one-element integer tensor) within [lo, hi].
    Floats are refused rather than truncated, and so are bools."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        if value.is_floating_point() or value.dtype == torch.bool or value.is_complex():
            raise TypeError(f"{name} must be an integer, got a {value.dtype} tensor")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    value = int(value)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        rng = f">= {lo}" if hi is None else (f"<= {hi}" if lo is None else f"in [{lo}, {hi}]")
        raise ValueError(f"{name} must be an integer {rng}, got {value}")
    return value


def check_index(name: str, value, n: int | None = None, device=None, of: str = "the batch") -> torch.Tensor:
    """Integer index values (an int, a sequence, or an integer tensor) as a long tensor; floats
    and bools are refused (a float timestep would otherwise be truncated). With n: an int or
    a 0-d tensor is expanded to (n,), and a 1D tensor must have n entries, one per row of `of`."""
    if isinstance(value, bool) or (isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral)):
        raise TypeError(f"{name} must hold integers, got {type(value).__name__} {value!r}")
    if not isinstance(value, (torch.Tensor, numbers.Integral, list, tuple, range)):
        raise TypeError(f"{name} must be an int or an integer tensor, got {type(value).__name__}")
    try:
        t = torch.as_tensor(value, device=device)
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(f"{name} must be an int or an integer tensor, got {value!r}") from err
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"{name} must hold integers, got dtype {t.dtype} (a float would be truncated)")
    t = t.long()
    if n is not None:
        if t.numel() == 1 and t.ndim <= 1:
            return t.reshape(()).expand(n)
        if t.shape != (n,):
            raise ValueError(f"{name} must be an int or shape ({n},), one per row of {of}, "
                             f"got shape {tuple(t.shape)}")
    return t


def check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choose one of {sorted(choices)}")


def check_positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


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


def check_output(who: str, out, like: torch.Tensor, where="") -> torch.Tensor:
    """The output of a user-supplied function (a denoiser, score or velocity) must be a tensor
    shaped and typed like its input `like`; otherwise broadcasting would turn a (B, 1) or
    (1, D) answer into plausible-looking wrong samples. Cheap: no tensor operation. `where`:
    a string or a callable giving one (e.g. "at t=500"), only evaluated on failure."""
    if isinstance(out, torch.Tensor) and out.shape == like.shape and out.dtype == like.dtype:
        return out
    where = where() if callable(where) else where
    at = f" {where}" if where else ""
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"{who} returned {type(out).__name__}{at}; it must return a tensor shaped like "
                        f"its input {tuple(like.shape)} (did it forget `return`?)")
    if out.shape != like.shape:
        raise ValueError(f"{who} returned shape {tuple(out.shape)}{at} for an input of shape "
                         f"{tuple(like.shape)}; it must return one value per entry of its input")
    if out.dtype != like.dtype:
        raise TypeError(f"{who} returned dtype {out.dtype}{at} for an input of dtype {like.dtype}; "
                        f"return the input's dtype")
    return out


def checked(fn, who: str):
    """fn(x, ...) wrapped so that every output passes `check_output` against x."""
    def wrapped(x, *args, **kwargs):
        return check_output(who, fn(x, *args, **kwargs), x)
    wrapped.__wrapped__ = fn
    return wrapped


def check_model_input(name: str, x: torch.Tensor, model, weight: torch.Tensor | None = None) -> torch.Tensor:
    """x's dtype must be the network's (float64 data into float32 weights fails deep inside a
    layer otherwise). weight: the first layer's weight (O(1), for a per-step forward pass);
    default: the model's first parameter."""
    p = weight if weight is not None else next(iter(model.parameters()), None)
    if p is not None and x.dtype != p.dtype:
        cast = {torch.float32: ".float()", torch.float64: ".double()", torch.float16: ".half()"}.get(p.dtype, f".to({p.dtype})")
        raise TypeError(f"{name} has dtype {x.dtype} but {type(model).__name__}'s weights are {p.dtype}: "
                        f"call {name}{cast} (or convert the model)")
    return x


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


def check_positive_range(lo_name: str, lo, hi_name: str, hi) -> tuple[float, float]:
    """Two finite numbers with 0 < lo < hi (e.g. beta_min < beta_max, sigma_min < sigma_max)."""
    lo = check_real(lo_name, lo, lo=0, lo_open=True)
    hi = check_real(hi_name, hi, lo=0, lo_open=True)
    if not lo < hi:
        raise ValueError(f"need 0 < {lo_name} < {hi_name}, got {lo_name}={lo}, {hi_name}={hi}")
    return lo, hi
