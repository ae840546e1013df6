"""What the posterior samplers share: the setup before their reverse loop.

Scope: every sampler of this package (DPS, DDRM, DiffPIR, RePaint) solves y = A(x) + sigma_y n
with a diffusion prior given as a denoiser, and starts the same way:
    1. the operator is a diffedu.inverse Operator (linear, or with an SVD, where the method
       needs it), y: (B, *out_shape) fits it, and the schedule is a NoiseSchedule;
    2. the denoiser goes through `denoiser.as_denoiser` once, so a Denoiser or a plain
       callable D(x_t, t) -> x0_hat both work;
    3. the schedule is respaced to `steps`, and x_T: (B, *in_shape) is given or drawn from
       N(0, I) with `generator`, the way `samplers.reverse_loop` draws its noise.
The loop itself is `samplers.reverse_loop` (RePaint: its own time-travel loop over the same
kind of step; repaint.py says why). Nothing here is specific to one method.
"""
from __future__ import annotations

import torch

from ..._validate import check_operator, check_schedule, check_tensor
from ...denoiser import Denoiser, as_denoiser
from ...schedules import NoiseSchedule
from ..operators import Operator

__all__ = ["setup", "randn"]


def randn(shape, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """N(0, I) noise of `shape` in like's dtype and device, drawn from a CPU `generator`, as
    `samplers.reverse_loop` draws it (same seed, same numbers on every device)."""
    return torch.randn(shape, generator=generator, dtype=like.dtype).to(like.device)


def setup(y: torch.Tensor, operator: Operator, denoiser, schedule: NoiseSchedule, steps: int | None,
          x_T: torch.Tensor | None, generator: torch.Generator | None, *, linear: bool = False,
          svd: bool = False, who: str = "this sampler"):
    """Steps 1-3 of the module doc. Returns (y, D, schedule, x_T): y checked; D the Denoiser;
    schedule respaced to `steps` (None: as given); x_T: (B, *in_shape) with B = len(y)."""
    check_operator(operator, linear=linear, svd=svd, who=who)                     # 1.
    check_schedule(schedule)
    D: Denoiser = as_denoiser(denoiser, schedule)                                 # 2.
    # y enters every step: a NaN in it would surface later as a "non-finite sample"
    y = check_tensor("y", operator._check_y(y), nonempty=True, finite=True)
    if steps is not None:                                                         # 3.
        schedule = schedule.respace(steps)
    if x_T is None:
        if operator.in_shape is None:
            raise ValueError(f"{type(operator).__name__} has no fixed input shape: pass x_T, "
                             f"the starting noise (B, C, H, W)")
        x_T = randn((len(y),) + tuple(operator.in_shape), y, generator)
    else:
        x_T = check_tensor("x_T", operator._check_x(x_T, "x_T"), finite=True)
        if len(x_T) != len(y):
            raise ValueError(f"x_T and y must have the same batch size, got {len(x_T)} and {len(y)} "
                             f"(repeat y, e.g. y.expand(n, ...), for n samples of one measurement)")
        # the samples live in the wider of the two dtypes (a float64 y would promote them at the
        # first step anyway; starting there keeps every step in one dtype)
        x_T = x_T.to(torch.promote_types(x_T.dtype, y.dtype))
    return y, D, schedule, x_T
