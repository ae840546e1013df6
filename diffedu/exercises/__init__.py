"""Exercise checkers: a student writes a function, `check(name, fn)` grades it on fixed random
inputs against a reference solution and says what went wrong.

    dd.exercises.list_exercises()          # what there is
    dd.exercises.hint("elbo_weight")         # a nudge
    dd.exercises.check("elbo_weight", my_fn) # True, or a message naming the failing case
    dd.exercises.solution("elbo_weight")     # the reference answer, as source

Each module of this package holds one group of chapters and defines `EXERCISES`, a list of
`Exercise`; every module found here is registered on import.
"""
from __future__ import annotations

import importlib
import inspect
import pkgutil
from dataclasses import dataclass
from typing import Callable

import torch

from .._validate import check_nonneg, check_real


@dataclass
class Exercise:
    name: str
    chapter: str
    task: str
    reference: Callable      # the solution; its keyword arguments are the case keys
    cases: Callable          # () -> list of kwargs dicts
    hint: str


EXERCISES: dict[str, Exercise] = {}
for _mod in pkgutil.iter_modules(__path__):
    for _ex in importlib.import_module(f"{__name__}.{_mod.name}").EXERCISES:
        if _ex.name in EXERCISES:
            raise RuntimeError(f"exercise {_ex.name!r} is defined twice")
        EXERCISES[_ex.name] = _ex


def _get(name: str) -> Exercise:
    if name not in EXERCISES:
        raise ValueError(f"unknown exercise {name!r}; available: {sorted(EXERCISES)}")
    return EXERCISES[name]


def list_exercises(chapter: str | None = None) -> list[str]:
    return [f"{e.name} (chapter {e.chapter}): {e.task}" for e in EXERCISES.values()
            if chapter is None or e.chapter == chapter]


def hint(name: str) -> str:
    h = _get(name).hint
    print(h)
    return h


def solution(name: str) -> str:
    src = inspect.getsource(_get(name).reference)
    print(src)
    return src


class _Timeout(BaseException):
    """Raised inside a student's function that runs past the time limit (a BaseException, so a
    bare `except Exception` in the student's code cannot swallow it)."""


def _call(fn: Callable, kwargs: dict, timeout: float):
    """("ok", result), ("raised", exception) or ("timeout", None). On the main thread a
    SIGALRM timer interrupts the function; elsewhere (no signals) it runs in a daemon thread
    that is abandoned, still running, when the time is up."""
    import signal
    import threading
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer"):
        def on_alarm(signum, frame):
            raise _Timeout()
        previous = signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            return "ok", fn(**kwargs)
        except _Timeout:
            return "timeout", None
        except Exception as err:         # a student's bug: feedback, not a traceback
            return "raised", err
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    box = {}

    def run():
        try:
            box["out"] = ("ok", fn(**kwargs))
        except Exception as err:
            box["out"] = ("raised", err)
    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout)
    return box.get("out", ("timeout", None))


def _describe(v) -> str:
    return f"tensor{tuple(v.shape)}" if isinstance(v, torch.Tensor) else repr(v)[:40]


def check(name: str, fn: Callable, atol: float = 1e-6, verbose: bool = True, timeout: float = 10.0) -> bool:
    """Grade `fn` on the exercise's cases; print and return whether it is right.

    Whatever the student's function does (raises, forgets `return`, returns a string, the wrong
    shape, NaN, or runs longer than `timeout` seconds per case) becomes a message, not a
    traceback. atol >= 0: the tolerance, relative to the size of the expected answer."""
    ex = _get(name)
    if not callable(fn):
        raise TypeError(f"pass your function itself, e.g. check({name!r}, my_{name}), not {type(fn).__name__}")
    atol = check_nonneg("atol", atol)
    timeout = check_real("timeout", timeout, lo=0, lo_open=True)
    cases = ex.cases()
    for k, case in enumerate(cases):
        args = {key: (v.clone() if isinstance(v, torch.Tensor) else v) for key, v in case.items()}
        want = ex.reference(**case)
        status, got = _call(fn, args, timeout)
        if status == "timeout":
            return _report(False, f"✗ {name}, case {k}: your function ran for more than {timeout:g} s "
                                  f"(an endless loop?); arguments: {', '.join(case)}", name, verbose)
        if status == "raised":
            return _report(False, f"✗ {name}: your function raised {type(got).__name__}: {got} "
                                  f"(arguments: {', '.join(case)})", name, verbose)
        if got is None:
            return _report(False, f"✗ {name}, case {k}: your function returned None: did you forget `return`?",
                           name, verbose)
        wants = want if isinstance(want, tuple) else (want,)
        gots = (got if isinstance(got, tuple) else (got,)) if isinstance(want, tuple) else (got,)
        if len(gots) != len(wants):
            return _report(False, f"✗ {name}: expected {len(wants)} outputs, got {len(gots)}", name, verbose)
        for w, g in zip(wants, gots):
            w = torch.as_tensor(w)
            if isinstance(g, (str, bytes)) or g is None:
                return _report(False, f"✗ {name}, case {k}: your function returned {type(g).__name__} {_describe(g)}; "
                                      f"expected a tensor of shape {tuple(w.shape)}", name, verbose)
            try:
                g = torch.as_tensor(g, dtype=w.dtype)
            except (TypeError, ValueError, RuntimeError):
                return _report(False, f"✗ {name}, case {k}: your function returned {type(g).__name__} {_describe(g)}, "
                                      f"which is not a tensor or a number; expected shape {tuple(w.shape)}",
                               name, verbose)
            if g.shape != w.shape:
                return _report(False, f"✗ {name}, case {k}: output shape {tuple(g.shape)}, expected {tuple(w.shape)}",
                               name, verbose)
            if g.is_floating_point() and g.numel() and not bool(torch.isfinite(g).all()) \
                    and bool(torch.isfinite(w).all()):
                return _report(False, f"✗ {name}, case {k}: your output holds NaN or inf values", name, verbose)
            err = (g.double() - w.double()).abs().max().item() if w.numel() else 0.0
            scale = w.double().abs().max().item() if w.numel() else 0.0
            if not err <= atol * (1 + scale):            # NaN-safe: a NaN error fails
                shown = {key: _describe(v) for key, v in case.items()}
                first = lambda t: t.flatten()[0].item() if t.numel() else float("nan")   # noqa: E731
                return _report(False, f"✗ {name}, case {k} {shown}: max error {err:.3g} "
                                      f"(expected e.g. {first(w):.4f}, got {first(g):.4f})",
                               name, verbose)
    return _report(True, f"✓ {name}: correct on all {len(cases)} cases", name, verbose)


def _report(ok: bool, msg: str, name: str, verbose: bool) -> bool:
    if verbose:
        print(msg if ok else msg + f"\n  hint: {_get(name).hint}")
    return ok


