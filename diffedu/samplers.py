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

from ._validate import check_callable, check_choice, check_nonneg, check_real, check_schedule, check_tensor
from .denoiser import as_denoiser
from .schedules import NoiseSchedule


def _check_levels(ab_t, ab_prev):
    """ab_t in (0, 1), ab_prev in [ab_t, 1] (a step goes towards less noise); NaN refused."""
    ab_t = check_real("ab_t", ab_t, lo=0, lo_open=True, hi=1)
    ab_prev = check_real("ab_prev", ab_prev, lo=0, lo_open=True, hi=1)
    if ab_t == 1:
        raise ValueError("ab_t must be < 1 (the noise-free level has no step before it)")
    if ab_prev < ab_t:
        raise ValueError(f"a reverse step goes to less noise: need ab_t <= ab_prev, got ab_t={ab_t}, ab_prev={ab_prev}")
    return ab_t, ab_prev


def _check_step_tensors(xt, noise=None, **others):
    check_tensor("xt", xt)
    for name, v in (*others.items(), ("noise", noise)):
        if (v is not None or name != "noise") and check_tensor(name, v).shape != xt.shape:
            raise ValueError(f"{name} has shape {tuple(v.shape)} but xt has {tuple(xt.shape)}; they must match")


def ddim_sigma(ab_t, ab_prev, eta: float):
    """The DDIM noise scale sigma_i for one step (eq. 16 of DDIM); ab_t in (0, 1), ab_prev in
    [ab_t, 1], eta in [0, 1]."""
    ab_t, ab_prev = _check_levels(ab_t, ab_prev)
    return _ddim_sigma(ab_t, ab_prev, check_nonneg("eta", eta, upper=1.0))


def _ddim_sigma(ab_t: float, ab_prev: float, eta: float) -> float:
    return eta * ((1 - ab_prev) / (1 - ab_t) * (1 - ab_t / ab_prev)) ** 0.5


def _ddim_update(x0_hat, eps_hat, ab_t: float, ab_prev: float, eta: float, noise):
    sigma = _ddim_sigma(ab_t, ab_prev, eta)
    # 1. "predicted x0" term, 2. "direction pointing to x_t" term, 3. fresh noise
    x_prev = ab_prev ** 0.5 * x0_hat + max(1 - ab_prev - sigma ** 2, 0.0) ** 0.5 * eps_hat
    if sigma > 0:
        if noise is None:
            raise ValueError("ddim_step with eta > 0 needs a noise tensor")
        x_prev = x_prev + sigma * noise
    return x_prev


def ddim_step(xt: torch.Tensor, x0_hat: torch.Tensor, eps_hat: torch.Tensor, ab_t: float, ab_prev: float,
              eta: float = 0.0, noise: torch.Tensor | None = None) -> torch.Tensor:
    """One DDIM update from x_t to x_prev (eq. 12 of DDIM). xt, x0_hat, eps_hat, noise: (B, ...);
    ab_t in (0, 1), ab_prev in [ab_t, 1]; eta in [0, 1] (sigma_i^2 <= 1 - ab_prev needs it)."""
    _check_step_tensors(xt, x0_hat=x0_hat, eps_hat=eps_hat, noise=noise)
    ab_t, ab_prev = _check_levels(ab_t, ab_prev)
    return _ddim_update(x0_hat, eps_hat, ab_t, ab_prev, check_nonneg("eta", eta, upper=1.0), noise)


def ddpm_step(xt: torch.Tensor, x0_hat: torch.Tensor, ab_t: float, ab_prev: float,
              noise: torch.Tensor | None = None, variance: str = "small") -> torch.Tensor:
    """One DDPM ancestral step: x_prev ~ N(mu~(x_t, x0_hat), var) (Ho et al. 2020, eq. 6-7 with
    x_0 replaced by the model's x0_hat; variance "small" = beta~_t, "large" = beta_t).
    xt, x0_hat, noise: (B, ...); ab_t in (0, 1), ab_prev in [ab_t, 1]."""
    check_choice("variance", variance, ("small", "large"))
    _check_step_tensors(xt, x0_hat=x0_hat, noise=noise)
    ab_t, ab_prev = _check_levels(ab_t, ab_prev)
    return _ddpm_update(xt, x0_hat, ab_t, ab_prev, noise, variance)


def _ddpm_update(xt, x0_hat, ab_t: float, ab_prev: float, noise, variance: str):
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
    the trajectory that `result` returns as (x, xs (S+1, B, ...), x0_hats (S, B, ...)).

    It is also where the contract is checked, once for every sampler: after the first step,
    x and x0_hat must have x_T's shape and dtype (a (B, 1) or (1, D) answer from `source`, the
    denoiser / score_fn / velocity_fn, would otherwise broadcast into plausible wrong samples);
    after every step one sum of x is kept (one tensor op, no device sync), and `result` raises
    if any was NaN or inf, naming the first step i (and its t / tau / sigma) where x stopped
    being finite (or grew so large that its sum overflows: diverged all the same)."""

    def __init__(self, x_T: torch.Tensor, keep: bool, callback=None, source: str = "denoiser"):
        check_tensor("x_T", x_T)
        if callback is not None:
            check_callable("callback", callback, "callback(info: dict)")
        self.keep, self.callback, self.xs, self.x0s = keep, callback, [x_T.detach()], []
        self.source, self.like, self.sums, self.steps = source, x_T, [], []

    def __call__(self, x: torch.Tensor, x0: torch.Tensor, i: int, **info):
        if not self.sums:                                    # the first step: shape and dtype
            for name, v in (("x", x), ("x0_hat", x0)):
                if not isinstance(v, torch.Tensor) or v.shape != self.like.shape or v.dtype != self.like.dtype:
                    got = (f"shape {tuple(v.shape)}, dtype {v.dtype}" if isinstance(v, torch.Tensor)
                           else type(v).__name__)
                    raise ValueError(f"after step i={i} ({_info_str(info)}) the sampler's {name} has {got}, "
                                     f"but x_T has shape {tuple(self.like.shape)}, dtype {self.like.dtype}: "
                                     f"the {self.source} must return one value per entry of its input, "
                                     f"in its dtype")
        xd = x.detach() if x.requires_grad else x
        # the one per-step op (float16 sums in float32: 64 images of 32 x 32 would overflow it)
        self.sums.append(xd.sum(dtype=torch.float32) if xd.dtype == torch.float16 else xd.sum())
        self.steps.append((i, info))
        if self.callback is not None:
            self.callback({"x": x, "i": i, **info, "denoised": x0})
        if self.keep:
            self.xs.append(x.detach())
            self.x0s.append(x0.detach())

    def check_finite(self):
        """Raise if x became NaN or inf at some step, naming the first (one sync, at the end)."""
        if not self.sums:
            return
        ok = torch.isfinite(torch.stack(self.sums))
        if not bool(ok.all()):
            k = int((~ok).nonzero()[0, 0])
            i, info = self.steps[k]
            raise ValueError(
                f"the sample became NaN or inf at step i={i} ({_info_str(info)}), step {k + 1} of "
                f"{len(self.sums)}: check the {self.source}'s output there (it must be finite) and the "
                f"sampler's arguments")

    def result(self, x: torch.Tensor):
        self.check_finite()
        if not self.keep:
            return x
        x0s = torch.stack(self.x0s) if self.x0s else x.new_zeros((0,) + tuple(x.shape))
        return x, torch.stack(self.xs), x0s


def _info_str(info: dict) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in info.items() if isinstance(v, (int, float))) or "no info"


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
    check_callable("step", step, "step(x, i, t, ab_t, ab_prev, z) -> (x_prev, x0_hat, info)")
    check_tensor("x_T", x_T, min_ndim=1, nonempty=True, finite=True)
    check_schedule(schedule)
    if steps is not None:
        schedule = schedule.respace(steps)
    ab, ts = schedule.alpha_bar.tolist(), schedule.timesteps.tolist()
    x, trace = x_T, Trace(x_T, return_trajectory, callback)
    for i in reversed(range(len(schedule))):
        t_i = ts[i]
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
    entries of `schedule` (all if None); eta in [0, 1]. Returns x_0, or (x_0, xs (S+1, B, ...), x0_hats (S, B, ...))
    with return_trajectory. callback gets {'x', 'i', 't', 'denoised'} after each step."""
    # eta: 0 = deterministic DDIM, 1 = DDPM's variance; above 1, sigma_i^2 would exceed 1 - ab_prev
    eta = check_nonneg("eta", eta, upper=1.0)
    step = _denoise_step(denoiser, lambda x, x0, eps, ab_t, ab_prev, z: _ddim_update(x0, eps, ab_t, ab_prev, eta, z))
    return reverse_loop(step, x_T, schedule, steps, generator=generator, return_trajectory=return_trajectory,
                        callback=callback, needs_noise=eta > 0)


def ddpm(denoiser, x_T: torch.Tensor, schedule: NoiseSchedule, steps: int | None = None, variance: str = "small",
         generator: torch.Generator | None = None, return_trajectory: bool = False, callback=None):
    """DDPM ancestral sampling (Ho et al. 2020, Algorithm 2), on any respaced schedule. Returns as `ddim`."""
    check_choice("variance", variance, ("small", "large"))
    step = _denoise_step(denoiser, lambda x, x0, eps, ab_t, ab_prev, z: _ddpm_update(x, x0, ab_t, ab_prev, z, variance))
    return reverse_loop(step, x_T, schedule, steps, generator=generator, return_trajectory=return_trajectory,
                        callback=callback)


def pf_ode_euler_sigma(denoiser, x_T: torch.Tensor, schedule: NoiseSchedule, steps: int | None = None,
                       heun: bool = False, return_trajectory: bool = False, callback=None):
    """The probability-flow ODE in Karras et al.'s (2022) variables, Euler (= DDIM) or Heun
    (their Algorithm 1) steps on the entries of `schedule` (respaced to `steps`), as a step of the
    one reverse loop. x_T: (B, ...) a VP sample at the last entry.

    Notation: x_bar = x / sqrt(alpha_bar), sigma = sqrt((1 - alpha_bar) / alpha_bar) (schedule.sigmas);
    then x_bar = x_0 + sigma eps and the PF-ODE is d x_bar / d sigma = eps_hat = (x_bar - D) / sigma
    (Karras et al. eq. 4 with s = 1). One Euler step sigma_i -> sigma_{i-1} is
        x_bar_{i-1} = x_bar_i + (sigma_{i-1} - sigma_i) eps_hat,
    i.e. sqrt(ab_prev) x0_hat + sqrt(1 - ab_prev) eps_hat after multiplying by sqrt(ab_prev): DDIM
    with eta = 0, exactly. Returns x_0 (sigma = 0), or (x_0, xs, x0_hats) as `ddim`; the
    callback also gets 'sigma'."""
    check_schedule(schedule)
    D = as_denoiser(denoiser, schedule)
    if steps is not None:
        schedule = schedule.respace(steps)
    sig, ts = schedule.sigmas.tolist(), schedule.timesteps.tolist()

    def step(x, i, t, ab_t, ab_prev, z):
        s_next, xbar = (sig[i - 1] if i > 0 else 0.0), x / ab_t ** 0.5
        with torch.no_grad():
            x0, d = D.x0_eps(x, t, alpha_bar=ab_t)                    # 1. slope eps_hat at sigma_i
            x_new = xbar + (s_next - sig[i]) * d                      # 2. Euler step
            if heun and i > 0:                                        # 3. Heun correction (not to sigma = 0)
                _, d2 = D.x0_eps(x_new * ab_prev ** 0.5, torch.full_like(t, ts[i - 1]), alpha_bar=ab_prev)
                x_new = xbar + (s_next - sig[i]) * 0.5 * (d + d2)
        return x_new * ab_prev ** 0.5, x0, {"sigma": sig[i]}          # back to the VP variable
    return reverse_loop(step, x_T, schedule, generator=None, return_trajectory=return_trajectory,
                        callback=callback, needs_noise=False)


SAMPLERS = {"ddim": ddim, "ddpm": ddpm}
