"""Exercise checkers: a student writes a function, `check(name, fn)` grades it on fixed random
inputs against a reference solution and says what went wrong.

    dd.exercises.list_exercises()          # what there is
    dd.exercises.hint("ddim_step")         # a nudge
    dd.exercises.check("ddim_step", my_fn) # True, or a message naming the failing case
    dd.exercises.solution("ddim_step")     # the reference answer, as source

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


def check(name: str, fn: Callable, atol: float = 1e-6, verbose: bool = True) -> bool:
    """Grade `fn` on the exercise's cases; print and return whether it is right."""
    ex = _get(name)
    if not callable(fn):
        raise TypeError(f"pass your function itself, e.g. check({name!r}, my_{name}), not {type(fn).__name__}")
    for k, case in enumerate(ex.cases()):
        args = {key: (v.clone() if isinstance(v, torch.Tensor) else v) for key, v in case.items()}
        want = ex.reference(**case)
        try:
            got = fn(**args)
        except Exception as err:     # a student's bug: report it as feedback, not a traceback
            msg = f"✗ {name}: your function raised {type(err).__name__}: {err} (arguments: {', '.join(case)})"
            return _report(False, msg, name, verbose)
        wants, gots = (want, got) if isinstance(want, tuple) else ((want,), (got,) if not isinstance(got, tuple) else got)
        if len(gots) != len(wants):
            return _report(False, f"✗ {name}: expected {len(wants)} outputs, got {len(gots)}", name, verbose)
        for w, g in zip(wants, gots):
            g = torch.as_tensor(g, dtype=w.dtype)
            if g.shape != w.shape:
                return _report(False, f"✗ {name}, case {k}: output shape {tuple(g.shape)}, expected {tuple(w.shape)}",
                               name, verbose)
            err = (g - w).abs().max().item()
            if not err <= atol * (1 + w.abs().max().item()):
                shown = {key: (float(v) if not isinstance(v, torch.Tensor) else f"tensor{tuple(v.shape)}") for key, v in case.items()}
                return _report(False, f"✗ {name}, case {k} {shown}: max error {err:.3g} "
                                      f"(expected e.g. {w.flatten()[0].item():.4f}, got {g.flatten()[0].item():.4f})",
                               name, verbose)
    return _report(True, f"✓ {name}: correct on all {len(ex.cases())} cases", name, verbose)


def _report(ok: bool, msg: str, name: str, verbose: bool) -> bool:
    if verbose:
        print(msg if ok else msg + f"\n  hint: {_get(name).hint}")
    return ok


