"""Exercises of chapter 13b's CoDi section (conditional diffusion distillation), graded on fixed random inputs.

    codi_ode_step       the PF-ODE (DDIM) step t -> s that makes CoDi's target, from an eps prediction
    codi_noise_target   the noise-space consistency target eps^- that makes x_theta(z_t) equal the target x^-
"""
from __future__ import annotations

import torch

from . import Exercise


def _rand(*shape, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(*shape, generator=g, dtype=torch.float64)


# -- reference solutions (kept short: they are what `solution` prints) --------------------
def codi_ode_step(z_t, eps_hat, ab_t, ab_s):
    """Tweedie's x_hat = (z_t - sqrt(1 - ab_t) eps_hat) / sqrt(ab_t), then DDIM (eta = 0) to level s:
    z_s = sqrt(ab_s) x_hat + sqrt(1 - ab_s) eps_hat."""
    x_hat = (z_t - (1 - ab_t) ** 0.5 * eps_hat) / ab_t ** 0.5
    return ab_s ** 0.5 * x_hat + (1 - ab_s) ** 0.5 * eps_hat


def codi_noise_target(z_t, x_target, ab_t):
    """The eps whose Tweedie estimate at z_t is x_target: solve z_t = sqrt(ab_t) x^- + sqrt(1 - ab_t) eps^-."""
    return (z_t - ab_t ** 0.5 * x_target) / (1 - ab_t) ** 0.5


EXERCISES = [
    Exercise("codi_ode_step", "13b",
             "write the PF-ODE (DDIM, eta = 0) step from level t to level s of an eps-predicting model",
             codi_ode_step,
             lambda: [{"z_t": _rand(3, 1, 4, 4, seed=k), "eps_hat": _rand(3, 1, 4, 4, seed=10 + k), "ab_t": a, "ab_s": b}
                      for k, (a, b) in enumerate([(4e-5, 1e-4), (0.08, 0.2), (0.5, 0.9999)])],
             "First the clean estimate x_hat from z_t = sqrt(ab_t) x_hat + sqrt(1 - ab_t) eps_hat; then put it back at "
             "level s with the SAME noise eps_hat (that is what makes the step deterministic: the PF-ODE, DDIM eq. 12)."),
    Exercise("codi_noise_target", "13b",
             "write CoDi's noise-space consistency target eps^- from z_t, the target image x^- and ab_t",
             codi_noise_target,
             lambda: [{"z_t": _rand(3, 1, 4, 4, seed=20 + k), "x_target": _rand(3, 1, 4, 4, seed=30 + k), "ab_t": a}
                      for k, a in enumerate([4e-5, 0.3, 0.98])],
             "Ask which eps_theta would make the student's Tweedie estimate (z_t - sqrt(1 - ab_t) eps) / sqrt(ab_t) "
             "equal x^-, and solve for eps. Then ||eps_theta - eps^-||^2 = SNR_t ||x_theta - x^-||^2."),
]


def _self_check():
    """The references agree with diffedu.distill.codi (its x0_eps and the targets of codi_loss)."""
    from ..distill import codi
    z, e = _rand(2, 1, 4, 4), _rand(2, 1, 4, 4, seed=1)
    ab_t, ab_s = torch.tensor([0.3, 0.3], dtype=torch.float64), torch.tensor([0.6, 0.6], dtype=torch.float64)
    x_hat, eps_hat = codi.x0_eps(lambda z_, t, y, h: e, z, torch.zeros(2, dtype=torch.long), 0, ab_t)
    torch.testing.assert_close(eps_hat, e)
    torch.testing.assert_close(codi_ode_step(z, e, 0.3, 0.6), 0.6 ** 0.5 * x_hat + 0.4 ** 0.5 * e)
    # the ODE step keeps the clean estimate (its own Tweedie estimate at s is x_hat again)
    z_s = codi_ode_step(z, e, 0.3, 0.6)
    torch.testing.assert_close(codi.x0_eps(lambda z_, t, y, h: e, z_s, torch.zeros(2, dtype=torch.long), 0, ab_s)[0], x_hat)
    x_t = _rand(2, 1, 4, 4, seed=2)
    eps_t = codi_noise_target(z, x_t, 0.3)
    x_back = codi.x0_eps(lambda z_, t, y, h: eps_t, z, torch.zeros(2, dtype=torch.long), 0, ab_t)[0]
    torch.testing.assert_close(x_back, x_t)
