"""Reverse-process samplers: DDPM ancestral and DDIM(eta), each a loop over a public step.

Notation (Song et al. 2021, DDIM, eq. 12; entries i = N-1 .. 0 of a possibly respaced schedule):
    ab_t, ab_prev   alpha_bar at entry i and i-1 (ab_prev = 1 after the last step)
    x0_hat, eps_hat the denoiser's E[x_0 | x_t] and the matching noise estimate
    sigma_i = eta sqrt((1 - ab_prev) / (1 - ab_t)) sqrt(1 - ab_t / ab_prev)
    x_prev  = sqrt(ab_prev) x0_hat + sqrt(1 - ab_prev - sigma_i^2) eps_hat + sigma_i z
eta = 0 is deterministic (DDIM); eta = 1 gives sigma_i^2 = beta~_i, DDPM's posterior variance.
The denoiser is anything `denoiser.as_denoiser` accepts (the contract; t: the schedule's
original timesteps (B,)). Every sampler is a step plugged into `reverse_loop`.
"""
from __future__ import annotations

import torch

from ._validate import check_choice, check_nonneg, check_schedule, check_tensor
from .denoiser import as_denoiser
from .schedules import NoiseSchedule


def ddim_sigma(ab_t, ab_prev, eta: float):
    """The DDIM noise scale sigma_i for one step (eq. 16 of DDIM)."""
    return eta * ((1 - ab_prev) / (1 - ab_t) * (1 - ab_t / ab_prev)) ** 0.5


def ddim_step(xt: torch.Tensor, x0_hat: torch.Tensor, eps_hat: torch.Tensor, ab_t: float, ab_prev: float,
              eta: float = 0.0, noise: torch.Tensor | None = None) -> torch.Tensor:
    """One DDIM update from x_t to x_prev (eq. 12 of DDIM). xt, x0_hat, eps_hat, noise: (B, ...)."""
    sigma = ddim_sigma(ab_t, ab_prev, eta)
    # 1. "predicted x0" term, 2. "direction pointing to x_t" term, 3. fresh noise
    x_prev = ab_prev ** 0.5 * x0_hat + max(1 - ab_prev - sigma ** 2, 0.0) ** 0.5 * eps_hat
    if sigma > 0:
        if noise is None:
            raise ValueError("ddim_step with eta > 0 needs a noise tensor")
        x_prev = x_prev + sigma * noise
    return x_prev


def ddpm_step(xt: torch.Tensor, x0_hat: torch.Tensor, ab_t: float, ab_prev: float,
              noise: torch.Tensor | None = None, variance: str = "small") -> torch.Tensor:
    """One DDPM ancestral step: x_prev ~ N(mu~(x_t, x0_hat), var) (Ho et al. 2020, eq. 6-7 with
    x_0 replaced by the model's x0_hat; variance "small" = beta~_t, "large" = beta_t)."""
    check_choice("variance", variance, ("small", "large"))
    beta_t = 1 - ab_t / ab_prev
    mean = (ab_prev ** 0.5 * beta_t / (1 - ab_t)) * x0_hat + ((1 - beta_t) ** 0.5 * (1 - ab_prev) / (1 - ab_t)) * xt
    var = beta_t * (1 - ab_prev) / (1 - ab_t) if variance == "small" else beta_t
    if ab_prev >= 1.0 or var == 0:      # the last step returns the mean (x0_hat)
        return mean
    if noise is None:
        raise ValueError("ddpm_step needs a noise tensor")
    return mean + var ** 0.5 * noise


class Trace:
    """What every sampler loop reports: after each step it calls `callback({'x', 'i',
    'denoised', ...})` (the step's info, e.g. 't', 'sigma' or 'tau') and, when `keep`, records
    the trajectory that `result` returns as (x, xs (S+1, B, ...), x0_hats (S, B, ...))."""

    def __init__(self, x_T: torch.Tensor, keep: bool, callback=None):
        self.keep, self.callback, self.xs, self.x0s = keep, callback, [x_T.detach()], []

    def __call__(self, x: torch.Tensor, x0: torch.Tensor, i: int, **info):
        if self.callback is not None:
            self.callback({"x": x, "i": i, **info, "denoised": x0})
        if self.keep:
            self.xs.append(x.detach())
            self.x0s.append(x0.detach())

    def result(self, x: torch.Tensor):
        return (x, torch.stack(self.xs), torch.stack(self.x0s)) if self.keep else x


def reverse_loop(step, x_T: torch.Tensor, schedule: NoiseSchedule, steps: int | None = None, *,
                 generator: torch.Generator | None = None, return_trajectory: bool = False,
                 callback=None, needs_noise: bool = True):
    """The one reverse loop every discrete sampler runs (DDPM, DDIM, DPS, DDRM, DiffPIR, and
    RePaint inside each of its jumps): entries i = N-1 .. 0 of `schedule` (respaced to `steps`).
    At each entry it draws z ~ N(0, I) from `generator` (not at the last step, nor when
    needs_noise is False) and calls
        step(x, i, t, ab_t, ab_prev, z) -> (x_prev, x0_hat, info)
    with t: (B,) the entry's original timestep, ab_t, ab_prev: floats (ab_prev = 1 after the
    last step), info: a dict of extra things to report. Returns x_0, or (x_0, xs (S+1, B, ...),
    x0_hats (S, B, ...)) with return_trajectory; callback gets {'x', 'i', 't', 'denoised', **info}."""
    check_tensor("x_T", x_T, min_ndim=1)
    check_schedule(schedule)
    if steps is not None:
        schedule = schedule.respace(steps)
    ab = schedule.alpha_bar.tolist()
    x, trace = x_T, Trace(x_T, return_trajectory, callback)
    for i in reversed(range(len(schedule))):
        t_i = int(schedule.timesteps[i])
        t = torch.full((len(x),), t_i, dtype=torch.long, device=x.device)
        noise = None
        if i > 0 and needs_noise:
            noise = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
        x, x0, info = step(x, i, t, ab[i], ab[i - 1] if i > 0 else 1.0, noise)
        trace(x, x0, i, t=t_i, **info)
    return trace.result(x)


def _denoise_step(denoiser, update):
    """A reverse_loop step from a denoiser and an update(x, x0, eps, ab_t, ab_prev, z)."""
    D = as_denoiser(denoiser)

    def step(x, i, t, ab_t, ab_prev, z):
        with torch.no_grad():
            x0, eps = D.x0_eps(x, t, alpha_bar=ab_t)
        return update(x, x0, eps, ab_t, ab_prev, z), x0, {}
    return step


def ddim(denoiser, x_T: torch.Tensor, schedule: NoiseSchedule, steps: int | None = None, eta: float = 0.0,
         generator: torch.Generator | None = None, return_trajectory: bool = False, callback=None):
    """DDIM sampling (Song et al. 2021, Algorithm: eq. 12) from x_T: (B, ...) through `steps`
    entries of `schedule` (all if None). Returns x_0, or (x_0, xs (S+1, B, ...), x0_hats (S, B, ...))
    with return_trajectory. callback gets {'x', 'i', 't', 'denoised'} after each step."""
    eta = check_nonneg("eta", eta)     # 0 = deterministic DDIM, 1 = DDPM variance
    step = _denoise_step(denoiser, lambda x, x0, eps, ab_t, ab_prev, z: ddim_step(x, x0, eps, ab_t, ab_prev, eta, z))
    return reverse_loop(step, x_T, schedule, steps, generator=generator, return_trajectory=return_trajectory,
                        callback=callback, needs_noise=eta > 0)


def ddpm(denoiser, x_T: torch.Tensor, schedule: NoiseSchedule, steps: int | None = None, variance: str = "small",
         generator: torch.Generator | None = None, return_trajectory: bool = False, callback=None):
    """DDPM ancestral sampling (Ho et al. 2020, Algorithm 2), on any respaced schedule. Returns as `ddim`."""
    check_choice("variance", variance, ("small", "large"))
    step = _denoise_step(denoiser, lambda x, x0, eps, ab_t, ab_prev, z: ddpm_step(x, x0, ab_t, ab_prev, z, variance))
    return reverse_loop(step, x_T, schedule, steps, generator=generator, return_trajectory=return_trajectory,
                        callback=callback)


SAMPLERS = {"ddim": ddim, "ddpm": ddpm}
