"""Choosing between a Triton kernel and its plain-torch reference.

Every public function in `diffedu.kernels` takes `backend="auto" | "torch" | "triton"`:

- `"torch"`  : always the plain-torch reference (any device, any machine).
- `"triton"` : always the Triton kernel; raises a clear error where it cannot run
               (triton not installed, or CPU tensors without the interpreter).
- `"auto"`   : the environment variable `DIFFEDU_KERNELS=torch|triton` decides if set;
               otherwise Triton when it is installed AND (the tensors are on CUDA OR
               `TRITON_INTERPRET=1`, Triton's CPU interpreter, is set), else torch.
               The kernels compute in float32, so float64 inputs go to torch under "auto".

An explicit `backend="torch"` or `"triton"` argument wins over the environment variable.

Triton is never imported here: `importlib.util.find_spec` only asks whether it is
installed, so `import diffedu.kernels` works on machines without it. The `*_triton.py`
modules (which do `import triton`) are imported on the first Triton call.
Note: Triton reads `TRITON_INTERPRET` when a kernel is *defined* (decorated with
`@triton.jit`), so set it before the first Triton call of the process.
"""
from __future__ import annotations

import importlib.util
import os

import torch

from .._validate import check_choice

BACKENDS = ("auto", "torch", "triton")
ENV_VAR = "DIFFEDU_KERNELS"


def triton_available() -> bool:
    """True when the `triton` package is installed (without importing it)."""
    return importlib.util.find_spec("triton") is not None


def interpreter_enabled() -> bool:
    """True when Triton's CPU interpreter is switched on (`TRITON_INTERPRET=1`)."""
    return os.environ.get("TRITON_INTERPRET", "0").strip().lower() in ("1", "true", "on", "yes")


def resolve_backend(backend: str, *tensors: torch.Tensor) -> str:
    """Return "torch" or "triton" for a call on `tensors` (rules in the module docstring)."""
    check_choice("backend", backend, set(BACKENDS))
    if backend == "auto":
        forced = os.environ.get(ENV_VAR, "").strip().lower()
        if forced:
            if forced not in BACKENDS:
                raise ValueError(f"environment variable {ENV_VAR}={forced!r} is not understood; "
                                 f"set it to one of {list(BACKENDS)} or unset it")
            backend = forced
    on_cuda = all(t.is_cuda for t in tensors)
    if backend == "auto":
        if any(t.dtype == torch.float64 for t in tensors):
            return "torch"
        return "triton" if triton_available() and (on_cuda or interpreter_enabled()) else "torch"
    if backend == "triton":
        if not triton_available():
            raise ImportError("backend='triton' needs the `triton` package, which is not "
                              "installed; `pip install triton`, or use backend='torch' "
                              "(or 'auto', which falls back to torch)")
        if not (on_cuda or interpreter_enabled()):
            devices = sorted({str(t.device) for t in tensors})
            raise ValueError(f"backend='triton' needs CUDA tensors, got tensors on {devices}; "
                             "move them with .cuda(), or run Triton's CPU interpreter by setting "
                             "TRITON_INTERPRET=1 before the first Triton call")
    return backend


def check_interpretable(kernel, *tensors: torch.Tensor) -> None:
    """Raise a clear error when CPU tensors meet a kernel compiled for the GPU.

    That happens when `TRITON_INTERPRET=1` was set only after the kernel was defined.
    """
    if all(t.is_cuda for t in tensors):
        return
    if type(kernel).__name__ != "InterpretedFunction":     # what @triton.jit makes under it
        raise RuntimeError("the Triton kernels were defined without the interpreter, so they "
                           "cannot run on CPU tensors; set TRITON_INTERPRET=1 before the first "
                           "Triton call of the process (e.g. at the top of the script)")


def same_device(**tensors: torch.Tensor) -> None:
    """Raise a ValueError naming the arguments when tensors sit on different devices."""
    devices = {name: t.device for name, t in tensors.items()}
    if len(set(devices.values())) > 1:
        listing = ", ".join(f"{k} on {v}" for k, v in devices.items())
        raise ValueError(f"all tensors must be on one device, got {listing}")


def next_power_of_2(n: int) -> int:
    """Smallest power of two >= n (Triton block sizes must be powers of two)."""
    return 1 << max(int(n) - 1, 0).bit_length()
