"""Exercises of chapters 01-02 (the forward process and schedules; DDPM and DDIM).

They ask for a derivation, not a retyped line: each task names a quantity the chapter uses but
does not write down in that form (alpha_bar and sigma from the log-SNR, the betas of a respaced
schedule, where the sigmoid schedule loses half its signal, the ELBO weight from alpha_bar alone,
DDIM at eta = 1 against DDPM's posterior, the variance the DDIM family passes on). `check` grades
a student's function on fixed inputs against the reference below; `_self_check` ties every
reference to the package, so an exercise cannot drift from diffedu.
"""
from __future__ import annotations

import math

import torch

from ..forward import q_posterior
from ..samplers import ddim_sigma
from ..schedules import NoiseSchedule, cosine_schedule, linear_schedule, sigmoid_schedule
from . import Exercise


def _f64(values):
    return torch.tensor(values, dtype=torch.float64)


# -- chapter 01 ------------------------------------------------------------------------------
def alpha_bar_sigma_from_log_snr(lam):
    """Invert lambda = log(alpha_bar / (1 - alpha_bar)): alpha_bar = sigmoid(lambda), and EDM's
    sigma = sqrt((1 - alpha_bar) / alpha_bar) = exp(-lambda / 2)."""
    return torch.sigmoid(lam), torch.exp(-lam / 2)


def respaced_betas(alpha_bar, keep):
    """One step of the respaced schedule jumps from entry keep[j-1] to keep[j]: its beta is
    1 - alpha_bar[keep[j]] / alpha_bar[keep[j-1]] (the first step starts from alpha_bar = 1)."""
    ab = alpha_bar[keep]
    prev = torch.cat([ab.new_ones(1), ab[:-1]])
    return 1 - ab / prev


def sigmoid_half_signal(start, end, tau):
    """u = t/T at which the sigmoid schedule's alpha_bar = 1/2: solve
    sig(z/tau) = (sig(start/tau) + sig(end/tau)) / 2 for z = start + u (end - start)."""
    s, e = torch.sigmoid(torch.tensor(start / tau, dtype=torch.float64)), torch.sigmoid(torch.tensor(end / tau, dtype=torch.float64))
    z = tau * torch.logit((s + e) / 2)
    return (z - start) / (end - start)


# -- chapter 02 ------------------------------------------------------------------------------
def elbo_weight(ab_t, ab_prev):
    """lambda_t = beta_t^2 / (2 sigma_t^2 alpha_t (1 - ab_t)) with sigma_t^2 = beta~_t
    simplifies to beta_t / (2 alpha_t (1 - ab_prev)) = (ab_prev - ab_t) / (2 ab_t (1 - ab_prev))
    = (SNR_prev / SNR_t - 1) / 2."""
    return (ab_prev - ab_t) / (2 * ab_t * (1 - ab_prev))


def ddim_eta1_is_ddpm(ab_t, ab_prev):
    """DDIM's q_sigma(x_prev | x_t, x0) at eta = 1, as (std, coefficient of x_t, coefficient of x0).
    The reference is DDPM's posterior q(x_prev | x_t, x0) (Ho et al. eq. 7): the two agree."""
    beta = 1 - ab_t / ab_prev
    std = ((1 - ab_prev) / (1 - ab_t) * beta) ** 0.5
    c_xt = (1 - beta) ** 0.5 * (1 - ab_prev) / (1 - ab_t)
    c_x0 = ab_prev ** 0.5 * beta / (1 - ab_t)
    return std, c_xt, c_x0


def ddim_family_variance(v, ab_t, ab_prev, eta):
    """Variance per coordinate of x_prev after one step of the DDIM family with the true x0, when
    x_t ~ N(sqrt(ab_t) x0, v): the noise direction (x_t - sqrt(ab_t) x0) / sqrt(1 - ab_t) has
    variance v / (1 - ab_t), it is scaled by sqrt(1 - ab_prev - sigma^2), and sigma^2 is added."""
    sigma2 = eta ** 2 * (1 - ab_prev) / (1 - ab_t) * (1 - ab_t / ab_prev)
    return (1 - ab_prev - sigma2) * v / (1 - ab_t) + sigma2


def _pairs():
    """(ab_t, ab_prev) pairs: neighbouring entries of a 1000-step schedule and long jumps of a
    respaced one (the formulas hold for both)."""
    return [(_f64([0.9, 0.5, 0.02]), _f64([0.95, 0.7, 0.3])), (_f64([0.9989]), _f64([0.9990]))]


EXERCISES = [
    Exercise("alpha_bar_sigma_from_log_snr", "01",
             "derive alpha_bar and EDM's sigma from the log-SNR lambda (return both)",
             alpha_bar_sigma_from_log_snr, lambda: [{"lam": _f64([-10.0, -1.0, 0.0, 2.5, 9.2])}],
             "Solve lambda = log(ab / (1 - ab)) for ab (a logistic function); sigma^2 = (1 - ab) / ab = 1 / SNR."),
    Exercise("respaced_betas", "01",
             "the betas of a schedule respaced to the entries `keep` (why an 18-step beta is large)",
             respaced_betas, lambda: [{"alpha_bar": linear_schedule(1000).alpha_bar, "keep": torch.linspace(0, 999, n).round().long()}
                                      for n in (18, 50)]
             + [{"alpha_bar": cosine_schedule(100).alpha_bar, "keep": torch.tensor([0, 9, 50, 99])}],
             "One step of the respaced schedule goes from alpha_bar[keep[j-1]] to alpha_bar[keep[j]]: "
             "beta = 1 - alpha = 1 - (ratio of the two alpha_bars); the first step starts from alpha_bar = 1."),
    Exercise("sigmoid_half_signal", "01",
             "the fraction u = t/T at which the sigmoid schedule (start, end, tau) keeps half its signal",
             sigmoid_half_signal, lambda: [{"start": s, "end": e, "tau": tau}
                                           for s, e, tau in [(-3.0, 3.0, 1.0), (0.0, 3.0, 1.0), (-3.0, 0.0, 0.7), (-1.0, 4.0, 2.0)]],
             "Set alpha_bar(u) = 1/2 in the formula of dd.sigmoid_schedule: sig(z / tau) is then the mean of "
             "sig(start / tau) and sig(end / tau); invert the sigmoid with torch.logit."),
    Exercise("elbo_weight", "02",
             "derive the ELBO weight lambda_t of the eps error from alpha_bar_t and alpha_bar_prev alone",
             elbo_weight, lambda: [{"ab_t": a, "ab_prev": b} for a, b in _pairs()],
             "Start from beta_t^2 / (2 sigma_t^2 alpha_t (1 - ab_t)) with sigma_t^2 = beta~_t = (1 - ab_prev) beta_t / (1 - ab_t); "
             "then write beta_t / alpha_t = ab_prev / ab_t - 1."),
    Exercise("ddim_eta1_is_ddpm", "02",
             "show eta = 1 is DDPM: DDIM's std and mean coefficients (x_t, x0) at eta = 1",
             ddim_eta1_is_ddpm, lambda: [{"ab_t": a, "ab_prev": b} for a, b in _pairs()],
             "DDIM: x_prev = sqrt(ab_prev) x0 + sqrt(1 - ab_prev - sigma^2) (x_t - sqrt(ab_t) x0) / sqrt(1 - ab_t) + sigma z, "
             "with sigma from dd.ddim_sigma(ab_t, ab_prev, 1.0). Collect the coefficients of x_t and of x0."),
    Exercise("ddim_family_variance", "02",
             "predict the variance of x_prev after one DDIM-family step when x_t has variance v (any eta)",
             ddim_family_variance, lambda: [{"v": v, "ab_t": a, "ab_prev": b, "eta": eta}
                                            for v in (_f64([0.98]), _f64([0.5, 1.5])) for a, b in [(_f64([0.02]), _f64([0.3]))]
                                            for eta in (0.0, 0.5, 1.0)],
             "Write x_t = sqrt(ab_t) x0 + sqrt(v) n with n ~ N(0, I): the step's eps is sqrt(v / (1 - ab_t)) n; "
             "the DDIM step scales it by sqrt(1 - ab_prev - sigma^2) and adds independent noise of variance sigma^2."),
]


def _self_check():
    """Every reference agrees with the package (or with a direct computation on it)."""
    sched = linear_schedule(1000)
    lam = sched.log_snr
    ab, sigma = alpha_bar_sigma_from_log_snr(lam)
    torch.testing.assert_close(ab, sched.alpha_bar)
    torch.testing.assert_close(sigma, sched.sigmas)
    for n in (18, 50, 999):
        r = sched.respace(n)
        torch.testing.assert_close(respaced_betas(sched.alpha_bar, r.timesteps), r.betas)
    for start, end, tau in [(-3.0, 3.0, 1.0), (0.0, 3.0, 1.0), (-3.0, 0.0, 0.7)]:
        s = sigmoid_schedule(1000, start, end, tau)
        first = int((s.alpha_bar < 0.5).nonzero()[0])          # entry i has u = (i + 1) / T
        assert first / 1000 <= float(sigmoid_half_signal(start, end, tau)) <= (first + 1) / 1000
    for a, b in _pairs():
        beta, alpha = 1 - a / b, a / b
        post_var = (1 - b) / (1 - a) * beta
        torch.testing.assert_close(elbo_weight(a, b), beta ** 2 / (2 * post_var * alpha * (1 - a)))
        std, c_xt, c_x0 = ddim_eta1_is_ddpm(a, b)
        for k in range(len(a)):           # DDPM's posterior from dd.q_posterior on a 2-entry schedule
            two = NoiseSchedule(torch.stack([b[k], a[k]]), torch.arange(2))
            x0, xt = _f64([[1.0, 0.0]]), _f64([[0.0, 1.0]])
            mean, var = q_posterior(x0, xt, 1, two)
            torch.testing.assert_close(mean[0], torch.stack([c_x0[k], c_xt[k]]))
            assert math.isclose(var.item(), std[k].item() ** 2, rel_tol=1e-12)
            assert math.isclose(ddim_sigma(a[k].item(), b[k].item(), 1.0), std[k].item(), rel_tol=1e-12)
        # the family passes the right marginal on for every eta, and fresh noise pulls a wrong one back
        for eta in (0.0, 0.5, 1.0):
            torch.testing.assert_close(ddim_family_variance(1 - a, a, b, eta), 1 - b)
