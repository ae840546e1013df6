"""Parameterizations: what a network predicts, and the denoiser they all reduce to.

Notation (x_t = a x_0 + s eps with a = sqrt(alpha_bar), s = sqrt(1 - alpha_bar)):
    eps       the noise                           x0 = (x_t - s eps) / a
    x0        the clean sample (the denoiser)     eps = (x_t - a x0) / s
    v         a eps - s x0  (Salimans & Ho 2022)  x0 = a x_t - s v,  eps = s x_t + a v
    score     grad log p_t(x_t) = -eps / s        x0 = (x_t + s^2 score) / a   (Tweedie)
    velocity  eps - x0: the flow-matching velocity of the linear path z_tau = (1-tau) x0 + tau eps
              at tau = s / (a + s), z = x_t / (a + s):  x0 = (x_t - s u)/(a + s), eps = (x_t + a u)/(a + s)
Every sampler turns a model into a denoiser D(x_t, t) = E[x_0 | x_t] here, and nowhere else.
"""
from __future__ import annotations

import torch

from ._validate import check_choice
from .schedules import NoiseSchedule

PREDICTIONS = ("eps", "x0", "v", "score", "velocity")


def to_x0_eps(out: torch.Tensor, xt: torch.Tensor, alpha_bar, prediction: str):
    """(x0, eps) from a model output `out` of kind `prediction`; alpha_bar broadcasts against xt."""
    check_choice("prediction", prediction, PREDICTIONS)
    if isinstance(alpha_bar, float):           # one noise level for the batch: plain numbers, no tensors
        a, s = alpha_bar ** 0.5, (1 - alpha_bar) ** 0.5
    else:
        ab = torch.as_tensor(alpha_bar, dtype=xt.dtype, device=xt.device)
        a, s = ab.sqrt(), (1 - ab).sqrt()
    if prediction == "eps":
        return (xt - s * out) / a, out
    if prediction == "x0":
        return out, (xt - a * out) / s
    if prediction == "v":
        return a * xt - s * out, s * xt + a * out
    if prediction == "score":
        eps = -s * out
        return (xt - s * eps) / a, eps
    return (xt - s * out) / (a + s), (xt + a * out) / (a + s)      # velocity


def from_x0_eps(x0: torch.Tensor, eps: torch.Tensor, alpha_bar, prediction: str) -> torch.Tensor:
    """The target of kind `prediction` for a training pair (x0, eps) at alpha_bar."""
    check_choice("prediction", prediction, PREDICTIONS)
    ab = torch.as_tensor(alpha_bar, dtype=x0.dtype, device=x0.device)
    a, s = ab.sqrt(), (1 - ab).sqrt()
    return {"eps": lambda: eps, "x0": lambda: x0, "v": lambda: a * eps - s * x0,
            "score": lambda: -eps / s, "velocity": lambda: eps - x0}[prediction]()


def convert(out: torch.Tensor, xt: torch.Tensor, alpha_bar, src: str, dst: str) -> torch.Tensor:
    """Turn a prediction of kind `src` into the equivalent prediction of kind `dst`."""
    x0, eps = to_x0_eps(out, xt, alpha_bar, src)
    return from_x0_eps(x0, eps, alpha_bar, dst)


def tweedie(xt: torch.Tensor, score: torch.Tensor, alpha_bar) -> torch.Tensor:
    """Tweedie's formula E[x_0 | x_t] = (x_t + (1 - alpha_bar) grad log p_t(x_t)) / sqrt(alpha_bar)."""
    ab = torch.as_tensor(alpha_bar, dtype=xt.dtype, device=xt.device)
    return (xt + (1 - ab) * score) / ab.sqrt()


def _t_batch(t, x: torch.Tensor) -> torch.Tensor:
    t = torch.as_tensor(t, device=x.device)
    return t.expand(len(x)) if t.ndim == 0 else t


class Denoiser:
    """D(x_t, t, cond=None) = E[x_0 | x_t] from a model `model(x_t, t, cond)` that predicts
    `prediction`. t: int or (B,) original timesteps of `schedule` (the one it was trained on).
    `clip` clamps x0 to [-clip, clip] (images live in [-1, 1]). `.eps(x, t)` gives the matching
    noise prediction, which DDIM needs."""

    def __init__(self, model, schedule: NoiseSchedule, prediction: str | None = None, cond=None, clip=None):
        self.model, self.schedule, self.cond, self.clip = model, schedule, cond, clip
        self.prediction = prediction or getattr(model, "prediction", "eps")
        check_choice("prediction", self.prediction, PREDICTIONS)

    def alpha_bar(self, t, x: torch.Tensor) -> torch.Tensor:
        t = _t_batch(t, x)
        ab = self.schedule.alpha_bar[self.schedule.index_of(t.cpu())]
        return ab.to(device=x.device, dtype=x.dtype).reshape((-1,) + (1,) * (x.ndim - 1))

    def x0_eps(self, x: torch.Tensor, t, cond=None, alpha_bar: float | None = None):
        """(x0_hat, eps_hat); samplers may pass alpha_bar (a float, or a tensor broadcasting
        against x) to skip the lookup."""
        t = _t_batch(t, x)
        cond = self.cond if cond is None else cond
        out = self.model(x, t) if cond is None else self.model(x, t, cond)
        if alpha_bar is None:
            ab = self.alpha_bar(t, x)
        else:
            ab = alpha_bar if isinstance(alpha_bar, torch.Tensor) else float(alpha_bar)
        x0, eps = to_x0_eps(out, x, ab, self.prediction)
        if self.clip is not None:
            x0 = x0.clamp(-self.clip, self.clip)
            eps = (x - ab ** 0.5 * x0) / (1 - ab) ** 0.5
        return x0, eps

    def __call__(self, x: torch.Tensor, t, cond=None) -> torch.Tensor:
        return self.x0_eps(x, t, cond)[0]

    def eps(self, x: torch.Tensor, t, cond=None) -> torch.Tensor:
        return self.x0_eps(x, t, cond)[1]

    def score(self, x: torch.Tensor, t, cond=None) -> torch.Tensor:
        ab = self.alpha_bar(_t_batch(t, x), x)
        return -self.eps(x, t, cond) / (1 - ab).sqrt()


def to_denoiser(model, schedule: NoiseSchedule, prediction: str | None = None, cond=None, clip=None) -> Denoiser:
    """Wrap any model (eps / x0 / v / score / velocity) as the denoiser every sampler calls."""
    if not callable(model):
        raise TypeError(f"model must be callable as model(x_t, t[, cond]), got {type(model).__name__}")
    return Denoiser(model, schedule, prediction, cond, clip)
