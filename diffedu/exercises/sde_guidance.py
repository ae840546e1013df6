"""Exercises of chapters 04-05: score SDEs, flow matching and guidance.

VP SDE notation (chapter 04): dx = -beta(t)/2 x dt + sqrt(beta(t)) dw, reverse time from t to
t + dt with dt < 0; guidance (chapter 05): eps-space, x_t = sqrt(ab) x0 + sqrt(1 - ab) eps.
"""
from __future__ import annotations

import torch

from . import Exercise


def _rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# -- reference solutions (kept short: they are what `solution` prints) --------------------
def reverse_sde_step(x, score, beta, dt, noise):
    """One Euler-Maruyama step of the reverse VP SDE; dt < 0 (time runs from 1 to 0)."""
    drift = -0.5 * beta * x - beta * score            # f(x, t) - g(t)^2 score
    return x + drift * dt + (beta * -dt) ** 0.5 * noise


def pf_ode_drift(x, score, beta):
    """dx/dt of the probability-flow ODE of the VP SDE."""
    return -0.5 * beta * x - 0.5 * beta * score


def flow_matching_target(x0, x1, tau):
    """(x_tau, u): the point on the linear path from data x0 (tau = 0) to noise x1 (tau = 1),
    and the velocity the network regresses."""
    return (1 - tau) * x0 + tau * x1, x1 - x0


def cfg_eps(eps_cond, eps_uncond, w):
    """Classifier-free guidance with scale w (w = 1: conditional, w = 0: unconditional)."""
    return eps_uncond + w * (eps_cond - eps_uncond)


def classifier_guided_eps(eps, grad_log_p, alpha_bar, scale):
    """Classifier guidance: eps tilted by scale * grad_x log p(y | x_t)."""
    return eps - scale * (1 - alpha_bar) ** 0.5 * grad_log_p


EXERCISES = [
    Exercise("reverse_sde_step", "04", "one Euler-Maruyama step of the reverse VP SDE (dt < 0)",
             reverse_sde_step,
             lambda: [{"x": _rand(6, 2, seed=k), "score": _rand(6, 2, seed=10 + k), "beta": b, "dt": dt,
                       "noise": _rand(6, 2, seed=20 + k)}
                      for k, (b, dt) in enumerate([(0.1, -0.01), (10.0, -0.002), (19.9, -0.05)])],
             "Reverse drift = f(x, t) - g^2 score with f = -beta x / 2 and g^2 = beta; move by drift * dt, "
             "then add g sqrt(|dt|) noise."),
    Exercise("pf_ode_drift", "04", "the probability-flow ODE drift dx/dt of the VP SDE",
             pf_ode_drift,
             lambda: [{"x": _rand(5, 2, seed=k), "score": _rand(5, 2, seed=30 + k), "beta": b}
                      for k, b in enumerate([0.1, 5.0, 20.0])],
             "The same marginals as the SDE, without noise: f(x, t) - g^2 score / 2 (half the score term)."),
    Exercise("flow_matching_target", "04", "return (x_tau, u) for the linear flow-matching path",
             flow_matching_target,
             lambda: [{"x0": _rand(4, 2, seed=k), "x1": _rand(4, 2, seed=40 + k), "tau": tau}
                      for k, tau in enumerate([0.0, 0.3, 0.95])],
             "x_tau = (1 - tau) x0 + tau x1 is a straight line; its velocity d x_tau / d tau does not depend on tau."),
    Exercise("cfg_eps", "05", "combine conditional and unconditional noise predictions with scale w",
             cfg_eps,
             lambda: [{"eps_cond": _rand(5, 2, seed=k), "eps_uncond": _rand(5, 2, seed=50 + k), "w": w}
                      for k, w in enumerate([0.0, 1.0, 3.5])],
             "Start from the unconditional prediction and move w times along (conditional - unconditional)."),
    Exercise("classifier_guided_eps", "05", "tilt eps with a classifier's gradient (classifier guidance)",
             classifier_guided_eps,
             lambda: [{"eps": _rand(5, 2, seed=k), "grad_log_p": _rand(5, 2, seed=60 + k), "alpha_bar": ab,
                       "scale": s} for k, (ab, s) in enumerate([(0.9, 1.0), (0.3, 2.0), (0.01, 5.0)])],
             "score = -eps / sqrt(1 - ab); adding scale * grad log p(y | x_t) to the score subtracts "
             "scale * sqrt(1 - ab) * grad from eps."),
]


def _self_check():
    """The references agree with the package (the exercises cannot drift from diffedu)."""
    from .. import flow, guidance, sde
    from ..schedules import linear_schedule
    vp, t, t_next = sde.VPSDE(), 0.6, 0.58
    x, score, z = _rand(4, 2), _rand(4, 2, seed=1), _rand(4, 2, seed=2)
    beta = float(vp.beta(t))
    torch.testing.assert_close(reverse_sde_step(x, score, beta, t_next - t, z),
                               sde.reverse_sde_step(x, score, t, t_next, vp, z)[0])
    torch.testing.assert_close(pf_ode_drift(x, score, beta), sde.pf_ode_drift(lambda *_: score, x, t, vp)[0])
    tau = torch.full((4,), 0.3, dtype=torch.float64)
    want = flow.get_path("linear").sample(x, z, tau)
    for got, ref in zip(flow_matching_target(x, z, 0.3), want):
        torch.testing.assert_close(got, ref)
    # CFG and classifier guidance against the package's guides, on a tiny conditional "network"
    sched = linear_schedule(1000)
    model = lambda xt, tt, c: torch.tanh(xt) * (1.0 + c[:, None].double()) * tt[:, None] / 1000.0
    from ..denoiser import NetworkDenoiser as Denoiser
    D = Denoiser(model, sched, prediction="eps")
    tt = torch.full((4,), 400)
    ab = float(sched.alpha_bar[400])
    e_c, e_u = D.eps(x, tt, torch.zeros(4, dtype=torch.long)), D.eps(x, tt, torch.full((4,), 3))
    guided = guidance.classifier_free_guidance(D, 2.5, null_label=3, cond=0)
    torch.testing.assert_close(cfg_eps(e_c, e_u, 2.5), guided.eps(x, tt))
    clf = lambda xt, tt: torch.stack([xt.sum(1), -xt[:, 0] ** 2, xt[:, 1]], 1)
    grad = guidance.classifier_log_prob_grad(clf, x, tt, 1)
    Du = Denoiser(lambda xt, tt_: model(xt, tt_, torch.full((len(xt),), 3)), sched, prediction="eps")
    cg = guidance.classifier_guidance(Du, clf, 2.0, sched, cond=1)
    torch.testing.assert_close(classifier_guided_eps(Du.eps(x, tt), grad, ab, 2.0), cg.eps(x, tt))
