"""Parameterizations: what a network predicts, and the denoiser they all reduce to.

Notation (x_t = a x_0 + s eps with a = sqrt(alpha_bar), s = sqrt(1 - alpha_bar)):
    eps       the noise                           x0 = (x_t - s eps) / a
    x0        the clean sample (the denoiser)     eps = (x_t - a x0) / s
    v         a eps - s x0  (Salimans & Ho 2022)  x0 = a x_t - s v,  eps = s x_t + a v
    score     grad log p_t(x_t) = -eps / s        x0 = (x_t + s^2 score) / a   (Tweedie)
    velocity  eps - x0: the flow-matching velocity of the linear path z_tau = (1-tau) x0 + tau eps
              at tau = s / (a + s), z = x_t / (a + s):  x0 = (x_t - s u)/(a + s), eps = (x_t + a u)/(a + s)
These are pure conversions; denoiser.py turns a model into the denoiser D(x_t, t) = E[x_0 | x_t]
with them.
"""
from __future__ import annotations

import torch

from ._validate import check_choice, check_real, check_tensor

PREDICTIONS = ("eps", "x0", "v", "score", "velocity")


def _pair(a_name: str, a, b_name: str, b) -> None:
    """Two tensors of one shape: a (B, 1) or (1, D) model output must not broadcast silently."""
    check_tensor(a_name, a)
    check_tensor(b_name, b)
    if a.shape != b.shape:
        raise ValueError(f"{a_name} has shape {tuple(a.shape)} but {b_name} has {tuple(b.shape)}; "
                         f"they must match (one value per entry)")


def _level(alpha_bar):
    """alpha_bar: a float in (0, 1] (checked, NaN refused) or a tensor broadcasting against x."""
    if isinstance(alpha_bar, torch.Tensor):
        return alpha_bar
    if type(alpha_bar) is float and 0 < alpha_bar <= 1:        # the per-step case
        return alpha_bar
    return check_real("alpha_bar", alpha_bar, lo=0, lo_open=True, hi=1)


def to_x0_eps(out: torch.Tensor, xt: torch.Tensor, alpha_bar, prediction: str):
    """(x0, eps) from a model output `out` of kind `prediction`; alpha_bar broadcasts against xt."""
    check_choice("prediction", prediction, PREDICTIONS)
    _pair("out", out, "xt", xt)
    return _to_x0_eps(out, xt, _level(alpha_bar), prediction)


def _to_x0_eps(out: torch.Tensor, xt: torch.Tensor, alpha_bar, prediction: str):
    """to_x0_eps without the checks, for callers that made them (NetworkDenoiser, per step)."""
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
    _pair("eps", eps, "x0", x0)
    ab = torch.as_tensor(_level(alpha_bar), dtype=x0.dtype, device=x0.device)
    a, s = ab.sqrt(), (1 - ab).sqrt()
    return {"eps": lambda: eps, "x0": lambda: x0, "v": lambda: a * eps - s * x0,
            "score": lambda: -eps / s, "velocity": lambda: eps - x0}[prediction]()


def convert(out: torch.Tensor, xt: torch.Tensor, alpha_bar, src: str, dst: str) -> torch.Tensor:
    """Turn a prediction of kind `src` into the equivalent prediction of kind `dst`."""
    x0, eps = to_x0_eps(out, xt, alpha_bar, src)
    return from_x0_eps(x0, eps, alpha_bar, dst)


def tweedie(xt: torch.Tensor, score: torch.Tensor, alpha_bar) -> torch.Tensor:
    """Tweedie's formula E[x_0 | x_t] = (x_t + (1 - alpha_bar) grad log p_t(x_t)) / sqrt(alpha_bar)."""
    _pair("score", score, "xt", xt)
    ab = torch.as_tensor(_level(alpha_bar), dtype=xt.dtype, device=xt.device)
    return (xt + (1 - ab) * score) / ab.sqrt()
