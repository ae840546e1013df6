"""Exercises of chapter 13 (distillation), each graded on fixed random inputs.

    pd_target              progressive distillation's x-target: one student DDIM step = two teacher steps
    consistency_boundary   c_skip and c_out of a consistency model, so that f(x, eps) = x
    guided_x0              the guidance-distillation target x0 from two eps predictions (Ho & Salimans' w)
    pd_two_step_target     (chapter 13b) the PD target on a discrete schedule, from the teacher's two x0 guesses
"""
from __future__ import annotations

import math

import torch

from . import Exercise


def _rand(*shape, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(*shape, generator=g, dtype=torch.float64)


# -- reference solutions (kept short: they are what `solution` prints) --------------------
def pd_target(z_t, z_tpp, alpha_t, sigma_t, alpha_tpp, sigma_tpp):
    """x~ such that one DDIM step t -> t'' from x_hat = x~ lands on z_t'':
    z_t'' = alpha_t'' x~ + (sigma_t''/sigma_t)(z_t - alpha_t x~); solve for x~."""
    r = sigma_tpp / sigma_t
    return (z_tpp - r * z_t) / (alpha_tpp - r * alpha_t)


def consistency_boundary(sigma, sigma_d, eps):
    """(c_skip, c_out) of Song et al. 2023: c_skip(eps) = 1 and c_out(eps) = 0, so f(x, eps) = x."""
    c_skip = sigma_d ** 2 / ((sigma - eps) ** 2 + sigma_d ** 2)
    c_out = sigma_d * (sigma - eps) / (sigma_d ** 2 + sigma ** 2) ** 0.5
    return c_skip, c_out


def guided_x0(x_t, eps_c, eps_u, alpha_bar, w):
    """Meng et al.'s stage-one target in Ho & Salimans' convention: eps_w = (1 + w) eps_c - w eps_u,
    then x0 = (x_t - sqrt(1 - alpha_bar) eps_w) / sqrt(alpha_bar) (diffedu's scale is 1 + w)."""
    eps_w = (1 + w) * eps_c - w * eps_u
    return (x_t - (1 - alpha_bar) ** 0.5 * eps_w) / alpha_bar ** 0.5


def pd_two_step_target(z_t, x0_t, x0_tp, ab_t, ab_tp, ab_tpp):
    """Two teacher DDIM steps t -> t' -> t'' (x0 guesses x0_t at t, x0_tp at t'), then the x~ whose ONE
    DDIM step t -> t'' lands where they did (alpha = sqrt(alpha_bar), sigma = sqrt(1 - alpha_bar))."""
    a, s = (ab_t ** 0.5, ab_tp ** 0.5, ab_tpp ** 0.5), ((1 - ab_t) ** 0.5, (1 - ab_tp) ** 0.5, (1 - ab_tpp) ** 0.5)
    z_tp = a[1] * x0_t + s[1] / s[0] * (z_t - a[0] * x0_t)
    z_tpp = a[2] * x0_tp + s[2] / s[1] * (z_tp - a[1] * x0_tp)
    r = s[2] / s[0]
    return (z_tpp - r * z_t) / (a[2] - r * a[0])


def _pd2_case(k, ab):
    return {"z_t": _rand(3, 1, 4, 4, seed=60 + k), "x0_t": _rand(3, 1, 4, 4, seed=70 + k, scale=0.5),
            "x0_tp": _rand(3, 1, 4, 4, seed=80 + k, scale=0.5), "ab_t": ab[0], "ab_tp": ab[1], "ab_tpp": ab[2]}


def _pd_case(k, t, N):
    a_t, s_t = math.cos(math.pi * t / 2), math.sin(math.pi * t / 2)
    tpp = t - 1 / N
    return {"z_t": _rand(6, 2, seed=k), "z_tpp": _rand(6, 2, seed=10 + k), "alpha_t": a_t, "sigma_t": s_t,
            "alpha_tpp": math.cos(math.pi * tpp / 2), "sigma_tpp": math.sin(math.pi * tpp / 2)}


EXERCISES = [
    Exercise("pd_target", "13",
             "write progressive distillation's x-target from z_t, the teacher's z_t'' and the cosine alpha / sigma",
             pd_target,
             lambda: [_pd_case(k, t, N) for k, (t, N) in enumerate([(1.0, 4), (0.5, 8), (0.25, 16), (0.75, 2)])],
             "Write one DDIM step t -> t'' with x_hat: z_t'' = alpha_t'' x_hat + (sigma_t''/sigma_t)(z_t - alpha_t x_hat). "
             "It is linear in x_hat: collect the x_hat terms and divide (Salimans & Ho 2022, Algorithm 2)."),
    Exercise("consistency_boundary", "13",
             "write c_skip(sigma) and c_out(sigma) of a consistency model (sigma_data sigma_d, smallest level eps)",
             consistency_boundary,
             lambda: [{"sigma": _rand(7, seed=k).abs() * s + 0.002, "sigma_d": sd, "eps": 0.002}
                      for k, (s, sd) in enumerate([(1.0, 0.5), (20.0, 1.2), (0.01, 0.7)])],
             "EDM's c_skip = sigma_d^2 / (sigma^2 + sigma_d^2) and c_out = sigma sigma_d / sqrt(sigma^2 + sigma_d^2), "
             "with sigma shifted to sigma - eps where it makes f(x, eps) = x (Song et al. 2023, Appendix C)."),
    Exercise("guided_x0", "13",
             "write the guided x0 that a guidance-distilled student regresses, from eps_c, eps_u and Meng's w",
             guided_x0,
             lambda: [{"x_t": _rand(5, 2, seed=k), "eps_c": _rand(5, 2, seed=20 + k), "eps_u": _rand(5, 2, seed=40 + k),
                       "alpha_bar": ab, "w": w} for k, (ab, w) in enumerate([(0.3, 0.0), (0.9, 2.0), (0.05, 4.0)])],
             "Mix the noise predictions first, (1 + w) eps_c - w eps_u (w = 0 is conditional), then invert "
             "x_t = sqrt(ab) x0 + sqrt(1 - ab) eps for x0."),
    Exercise("pd_two_step_target", "13b",
             "on a discrete schedule: run the teacher's two DDIM steps from its x0 guesses, then write the student's x-target",
             pd_two_step_target,
             lambda: [_pd2_case(k, ab) for k, ab in enumerate([(4e-5, 0.0035, 0.03), (0.2, 0.5, 0.9), (0.6, 0.8, 1.0)])],
             "A DDIM step with x0 guess x_hat is z_s = a_s x_hat + (s_s / s_t)(z_t - a_t x_hat), a = sqrt(ab), "
             "s = sqrt(1 - ab). Take two of them (the second with x0_tp), then solve one step t -> t'' for x_hat. "
             "At ab_tpp = 1 (clean) the target is the teacher's last x0 guess itself."),
]


def _self_check():
    """The references agree with the package (the exercises cannot drift from diffedu.distill)."""
    from ..distill import consistency, guidance, progressive
    c = _pd_case(0, 0.5, 8)
    t, tpp = torch.full((6,), 0.5, dtype=torch.float64), torch.full((6,), 0.5 - 1 / 8, dtype=torch.float64)
    torch.testing.assert_close(pd_target(**c), progressive.pd_target(c["z_t"], c["z_tpp"], t, tpp))
    sig = torch.tensor([0.002, 0.5, 80.0], dtype=torch.float64)
    torch.testing.assert_close(torch.stack(consistency_boundary(sig, 0.7, 0.002)),
                               torch.stack(consistency.boundary(sig, 0.7)[:2]))
    x_t, e_c, e_u, ab, w = _rand(4, 2), _rand(4, 2, seed=1), _rand(4, 2, seed=2), 0.4, 1.5
    x0 = lambda e: (x_t - (1 - ab) ** 0.5 * e) / ab ** 0.5
    torch.testing.assert_close(guided_x0(x_t, e_c, e_u, ab, w),
                               x0(e_u) + (1 + w) * (x0(e_c) - x0(e_u)))       # diffedu's scale = 1 + w
    assert guidance.meng_w(1 + w) == w
    c = _pd2_case(0, (0.2, 0.5, 0.9))
    a = [torch.tensor(v, dtype=torch.float64).sqrt() for v in (0.2, 0.5, 0.9)]
    sg = [torch.tensor(1 - v, dtype=torch.float64).sqrt() for v in (0.2, 0.5, 0.9)]
    z_tp = progressive.ddim_move_as(c["z_t"], c["x0_t"], a[0], sg[0], a[1], sg[1])
    z_tpp = progressive.ddim_move_as(z_tp, c["x0_tp"], a[1], sg[1], a[2], sg[2])
    torch.testing.assert_close(pd_two_step_target(**c), progressive.pd_target_as(c["z_t"], z_tpp, a[0], sg[0], a[2], sg[2]))
