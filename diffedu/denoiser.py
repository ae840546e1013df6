"""The denoiser contract: the one object every chapter reduces to.

A denoiser is D(x_t, t, cond=None) = E[x_0 | x_t], the posterior mean of the clean sample
given a noisy one x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps. Concretely it is
a `Denoiser`: an object with

    x0_eps(x, t, cond=None, alpha_bar=None) -> (x0_hat, eps_hat)   both (B, ...) like x
    __call__(x, t, cond=None)               -> x0_hat
    schedule                                   the NoiseSchedule whose original timesteps t are

x: (B, ...); t: an int or a (B,) tensor of the schedule's original integer timesteps (rows
may differ). Samplers pass `alpha_bar` (a float, or a tensor broadcasting against x) when they
already know the level, to skip the lookup. eps_hat is the noise estimate that matches x0_hat,
eps_hat = (x_t - sqrt(alpha_bar) x0_hat) / sqrt(1 - alpha_bar), so the two can never disagree.

Kinds (all pass one contract test, tests/test_denoiser.py):
    NetworkDenoiser   a network predicting eps / x0 / v / score / velocity (param.py converts)
    FunctionDenoiser  any plain callable fn(x_t, t[, cond]) -> x0_hat (`as_denoiser` wraps it)
    GMMDenoiser       the exact denoiser of a Gaussian mixture (exact/gmm.py)
    guided denoisers  CFG and classifier guidance (guidance.py), DPS (inverse/posterior/dps.py)

Continuous noise levels. A denoiser trained on a discrete schedule is also a function of a
continuous level: `at_level(x, alpha_bar)` reaches the schedule by ONE rule,
`NoiseSchedule.locate` (linear interpolation in log-SNR between the two neighbouring entries,
whose predictions are mixed with the same weights; `interpolate=False` takes the nearest).
An exact denoiser (the GMM) overrides `at_level` with the exact answer. Every continuous view
is built on `at_level`:
    sigma_denoiser(D)             the Gaussian denoiser v = x_0 + sigma n -> E[x_0 | v] of
                                  plug-and-play (alpha_bar = 1 / (1 + sigma^2), x_t = sqrt(ab) v)
    sde.denoiser_score_fn(D, sde) score(x, t in [0, 1]) of a VP / sub-VP / VE SDE
    flow.denoiser_velocity_fn(D)  the flow-matching velocity u(x, tau) of a path
"""
from __future__ import annotations

import numbers

import torch

from ._validate import (check_callable, check_choice, check_index, check_output, check_real, check_schedule,
                        check_tensor)
from .param import PREDICTIONS, _level, _to_x0_eps
from .schedules import NoiseSchedule

__all__ = ["Denoiser", "NetworkDenoiser", "FunctionDenoiser", "to_denoiser", "as_denoiser",
           "sigma_denoiser", "level_denoiser", "t_batch"]


def t_batch(t, x: torch.Tensor) -> torch.Tensor:
    """t (an int or (B,)) as a (B,) long tensor on x's device; float timesteps are refused (they
    would be truncated), and so is a t whose length is not x's batch size."""
    if (type(t) is torch.Tensor and t.dtype == torch.long and isinstance(x, torch.Tensor) and x.ndim
            and t.shape == (len(x),) and t.device == x.device):
        return t                                    # the samplers' case: already (B,) long on x's device
    check_tensor("x", x, min_ndim=1)
    if isinstance(t, torch.Tensor) and t.device != x.device:
        t = t.to(x.device)
    return check_index("t", t, len(x), device=x.device, of="x")


def _t_str(t: torch.Tensor) -> str:
    """A short description of the timesteps t (B,) for error messages (only built on failure)."""
    return str(int(t[0])) if len(t) and bool((t == t[0]).all()) else str(t.tolist()[:8])


def _eps_from_x0(x: torch.Tensor, x0: torch.Tensor, ab) -> torch.Tensor:
    return (x - ab ** 0.5 * x0) / (1 - ab) ** 0.5


class Denoiser:
    """Base class of the contract (module doc). Subclasses set `schedule` and implement
    `x0_eps`; everything else (eps, score, the continuous view) follows from it."""

    schedule: NoiseSchedule | None = None

    def x0_eps(self, x: torch.Tensor, t, cond=None, alpha_bar=None):
        raise NotImplementedError

    def __call__(self, x: torch.Tensor, t, cond=None) -> torch.Tensor:
        return self.x0_eps(x, t, cond)[0]

    def eps(self, x: torch.Tensor, t, cond=None) -> torch.Tensor:
        return self.x0_eps(x, t, cond)[1]

    def score(self, x: torch.Tensor, t, cond=None) -> torch.Tensor:
        """grad log p_t(x_t) = -eps_hat / sqrt(1 - alpha_bar_t) (Tweedie, rearranged)."""
        return -self.eps(x, t, cond) / (1 - self._alpha_bar(t, x)).sqrt()

    def _alpha_bar(self, t, x: torch.Tensor) -> torch.Tensor:
        if self.schedule is None:
            raise ValueError(f"{type(self).__name__} has no schedule: pass alpha_bar=... or build "
                             f"it with the schedule its timesteps belong to")
        return self.schedule.alpha_bar_of(t_batch(t, x), x)

    def at_level(self, x: torch.Tensor, alpha_bar: float, cond=None, interpolate: bool = True):
        """(x0_hat, eps_hat) for a VP sample x: (B, ...) at any noise level alpha_bar (a float),
        by the one rule `schedule.locate` (module doc)."""
        sched = self.schedule
        if sched is None:
            raise ValueError(f"{type(self).__name__} has no schedule, so it has no continuous view; "
                             f"build it with the schedule its timesteps belong to")
        alpha_bar = check_real("alpha_bar", alpha_bar, lo=0, hi=1)     # outside the schedule: its ends
        lo, w = sched.locate(alpha_bar)
        if not interpolate:
            lo, w = sched.nearest(alpha_bar), 0.0
        x0, eps = self.x0_eps(x, int(sched.timesteps[lo]), cond, float(sched.alpha_bar[lo]))
        if w > 1e-12:
            x0b, epsb = self.x0_eps(x, int(sched.timesteps[lo + 1]), cond, float(sched.alpha_bar[lo + 1]))
            x0, eps = (1 - w) * x0 + w * x0b, (1 - w) * eps + w * epsb
        return x0, eps


class NetworkDenoiser(Denoiser):
    """D(x_t, t, cond=None) from a network `model(x_t, t[, cond])` that predicts `prediction`
    (default: model.prediction, else "eps"), trained on `schedule`. `cond` binds a default
    condition; `clip` clamps x0_hat to [-clip, clip] (images live in [-1, 1])."""

    def __init__(self, model, schedule: NoiseSchedule, prediction: str | None = None, cond=None, clip=None):
        check_callable("model", model, "model(x_t, t[, cond])")
        check_schedule(schedule)
        if clip is not None:        # clip <= 0 would clamp every x0_hat to 0 (or flip the range)
            clip = check_real("clip", clip, lo=0, lo_open=True)
        self.model, self.schedule, self.cond, self.clip = model, schedule, cond, clip
        self.prediction = prediction or getattr(model, "prediction", "eps")
        check_choice("prediction", self.prediction, PREDICTIONS)

    def x0_eps(self, x: torch.Tensor, t, cond=None, alpha_bar=None):
        t = t_batch(t, x)
        cond = self.cond if cond is None else cond
        out = self.model(x, t) if cond is None else self.model(x, t, cond)
        if type(out) is not torch.Tensor or out.shape != x.shape or out.dtype != x.dtype:
            check_output("the model", out, x, f"at t={_t_str(t)}")
        if alpha_bar is None:
            ab = self._alpha_bar(t, x)
        else:       # a float keeps the step's arithmetic on plain numbers
            ab = _level(alpha_bar)
        x0, eps = _to_x0_eps(out, x, ab, self.prediction)      # out was checked against x above
        if self.clip is not None:
            x0 = x0.clamp(-self.clip, self.clip)
            eps = _eps_from_x0(x, x0, ab)
        return x0, eps


class FunctionDenoiser(Denoiser):
    """The adapter for a plain callable fn(x_t, t[, cond]) -> x0_hat; eps_hat from x0_hat."""

    def __init__(self, fn, schedule: NoiseSchedule | None = None):
        check_callable("denoiser", fn, "D(x_t, t[, cond]) -> x0_hat")
        if schedule is not None:
            check_schedule(schedule)
        self.fn, self.schedule = fn, schedule

    def x0_eps(self, x: torch.Tensor, t, cond=None, alpha_bar=None):
        t = t_batch(t, x)
        x0 = self.fn(x, t) if cond is None else self.fn(x, t, cond)
        if type(x0) is not torch.Tensor or x0.shape != x.shape or x0.dtype != x.dtype:
            check_output("the denoiser", x0, x, f"at t={_t_str(t)}")
        ab = self._alpha_bar(t, x) if alpha_bar is None else alpha_bar
        return x0, _eps_from_x0(x, x0, ab)


def to_denoiser(model, schedule: NoiseSchedule, prediction: str | None = None, cond=None,
                clip=None) -> NetworkDenoiser:
    """Wrap a network (eps / x0 / v / score / velocity) as the denoiser every sampler calls."""
    check_callable("model", model, "model(x_t, t[, cond])")
    check_schedule(schedule)
    return NetworkDenoiser(model, schedule, prediction, cond, clip)


def as_denoiser(denoiser, schedule: NoiseSchedule | None = None) -> Denoiser:
    """The contract from anything a user may pass: a Denoiser is returned as it is; a plain
    callable D(x_t, t[, cond]) -> x0_hat is wrapped (its schedule: `schedule`, else its own
    `.schedule` attribute if it has one)."""
    if isinstance(denoiser, Denoiser):
        return denoiser
    check_callable("denoiser", denoiser, "D(x_t, t) -> x0_hat (e.g. dd.to_denoiser(model, schedule))")
    if schedule is None:
        schedule = getattr(denoiser, "schedule", None)
    if schedule is not None:
        check_schedule(schedule)
    return FunctionDenoiser(denoiser, schedule)


def sigma_denoiser(denoiser, schedule: NoiseSchedule | None = None, interpolate: bool = False):
    """The Gaussian denoiser D_sigma(v, sigma) = E[x_0 | v = x_0 + sigma n] of plug-and-play
    methods, from a diffusion denoiser. v: (B, ...); sigma: a number >= 0 or a (B,) tensor.
        1. alpha_bar = 1 / (1 + sigma^2)       (so sigma^2 = (1 - ab) / ab, schedule.sigmas)
        2. x_t = sqrt(alpha_bar) v              (= sqrt(ab) x_0 + sqrt(1 - ab) n)
        3. return E[x_0 | x_t] = at_level(x_t, alpha_bar)   (Tweedie)
    By default the level goes to the nearest entry (interpolate=False: one network call); it is
    exact when the schedule holds that level (the tests check this on Gaussian mixtures). sigma
    = 0 returns v unchanged. `.entry(sigma)` tells the entry (B,) it would use."""
    D = as_denoiser(denoiser, schedule)
    if D.schedule is None:
        raise TypeError("sigma_denoiser needs the denoiser's NoiseSchedule: pass schedule=...")

    def levels(sigma, n):
        if isinstance(sigma, bool) or not isinstance(sigma, (numbers.Real, torch.Tensor)):
            raise TypeError(f"sigma must be a number >= 0 or a ({n},) tensor, got {type(sigma).__name__}")
        s = torch.as_tensor(sigma, dtype=torch.float64).detach().cpu()
        if s.numel() != 1 and s.shape != (n,):
            raise ValueError(f"sigma must be a number or a ({n},) tensor, got shape {tuple(s.shape)}")
        if bool(torch.isnan(s).any()) or bool(torch.isinf(s).any()) or bool((s < 0).any()):
            raise ValueError(f"sigma must be finite and >= 0, got {s.reshape(-1).tolist()}")
        return s.reshape(-1).expand(n)

    def D_sigma(v: torch.Tensor, sigma) -> torch.Tensor:
        check_tensor("x", v, min_ndim=2)
        s = levels(sigma, len(v))
        out = v.clone()
        # no graph through the network's weights unless a gradient w.r.t. v is wanted
        with torch.set_grad_enabled(torch.is_grad_enabled() and v.requires_grad):
            for sv in torch.unique(s):                        # one call per distinct level
                if sv == 0:
                    continue
                rows = (s == sv).nonzero()[:, 0].to(v.device)
                ab = 1.0 / (1.0 + float(sv) ** 2)                             # 1.
                out[rows] = D.at_level(v[rows] * ab ** 0.5, ab, interpolate=interpolate)[0]  # 2., 3.
        return out

    D_sigma.entry = lambda sigma: torch.tensor([D.schedule.nearest(1 / (1 + float(sv) ** 2))
                                                for sv in torch.as_tensor(sigma, dtype=torch.float64).reshape(-1)])
    D_sigma.denoiser = D
    return D_sigma


def level_denoiser(denoiser, schedule: NoiseSchedule | None = None):
    """The denoiser (diffedu.denoiser contract) whose `at_level(x, alpha_bar)` the continuous
    views call; schedule: the denoiser's (default: its own .schedule)."""
    D = as_denoiser(denoiser, schedule)
    if D.schedule is None:
        raise TypeError("a discrete denoiser needs its NoiseSchedule: pass schedule=...")
    return D
