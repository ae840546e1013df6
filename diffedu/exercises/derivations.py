"""Exercises of appendix A2 (derivations), each graded on fixed random inputs.

    tweedie_key_step     the gradient of the Gaussian transition kernel, the step Tweedie's proof rests on
    tv_prox_two_pixels   the proximal operator of lambda |x2 - x1| on two pixels (ROF in its smallest case)
"""
from __future__ import annotations

import torch

from . import Exercise


def _rand(*shape, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(*shape, generator=g, dtype=torch.float64)


# -- reference solutions (kept short: they are what `solution` prints) --------------------
def tweedie_key_step(x, x0, alpha_bar):
    """grad_x log N(x; sqrt(alpha_bar) x0, (1 - alpha_bar) I) = (sqrt(alpha_bar) x0 - x) / (1 - alpha_bar)."""
    return (alpha_bar ** 0.5 * x0 - x) / (1 - alpha_bar)


def tv_prox_two_pixels(y1, y2, lam):
    """argmin 1/2 (x1 - y1)^2 + 1/2 (x2 - y2)^2 + lam |x2 - x1|: the mean stays, the jump d = y2 - y1
    shrinks by 2 lam (each pixel moves lam towards the other) and stops at 0."""
    mean, d = (y1 + y2) / 2, y2 - y1
    d_new = torch.sign(d) * torch.clamp(d.abs() - 2 * lam, min=0.0)
    return mean - d_new / 2, mean + d_new / 2


EXERCISES = [
    Exercise("tweedie_key_step", "A2",
             "write grad_x log N(x; sqrt(alpha_bar) x0, (1 - alpha_bar) I), the step Tweedie's formula rests on",
             tweedie_key_step,
             lambda: [{"x": _rand(6, 2, seed=k), "x0": _rand(6, 2, seed=10 + k), "alpha_bar": ab}
                      for k, ab in enumerate([0.9, 0.5, 0.05])],
             "log N(x; mu, v I) = -|x - mu|^2 / (2 v) + const; differentiate in x (not in x0) with mu = sqrt(alpha_bar) x0 "
             "and v = 1 - alpha_bar."),
    Exercise("tv_prox_two_pixels", "A2",
             "return (x1, x2) = argmin 1/2 (x1 - y1)^2 + 1/2 (x2 - y2)^2 + lam |x2 - x1|",
             tv_prox_two_pixels,
             lambda: [{"y1": _rand(8, seed=k), "y2": _rand(8, seed=20 + k), "lam": lam}
                      for k, lam in enumerate([0.05, 0.4, 2.0])],
             "Change variables to the mean (y1 + y2) / 2, which the penalty ignores, and the jump y2 - y1: the jump "
             "sees 1/4 (d' - d)^2 + lam |d'|, a soft threshold at 2 lam."),
]


def _self_check():
    """The references agree with the package (the exercises cannot drift from diffedu)."""
    from ..inverse.classical import tv_denoise
    from ..param import tweedie
    x, x0, ab = _rand(5, 2), _rand(5, 2, seed=1), 0.3
    # a point prior at x0: p_t = N(sqrt(ab) x0, 1 - ab), whose score is the key step; Tweedie returns x0
    torch.testing.assert_close(tweedie(x, tweedie_key_step(x, x0, ab), ab), x0)
    y1, y2 = _rand(6, seed=2), _rand(6, seed=3)
    for lam in (0.1, 1.0):
        img = torch.stack([y1, y2], -1)[:, None, None]                     # (6, 1, 1, 2): two-pixel images
        ref = tv_denoise(img, lam, iters=3000)[:, 0, 0]
        torch.testing.assert_close(torch.stack(tv_prox_two_pixels(y1, y2, lam), -1), ref, atol=1e-4, rtol=0)
