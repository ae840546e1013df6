"""The exercises of chapters 04-05: references agree with the package and with the laws they
describe, wrong answers fail."""
import math

import torch

import diffedu as dd
from diffedu import exercises as ex
from diffedu import sde
from diffedu.exercises import sde_guidance

NAMES = [e.name for e in sde_guidance.EXERCISES]


def test_references_pass_their_own_checks():
    for name in NAMES:
        assert ex.check(name, ex.EXERCISES[name].reference, verbose=False), name


def test_sde_family_keeps_the_marginals():
    """Simulate the reverse-time SDE with diffusion lam * g and the reference drift, on 1D Gaussian
    data N(0, v) whose VP score is exact: every lam ends at variance v (a wrong lam-dependence does not)."""
    vp, v, n, steps = sde.VPSDE(), 0.3, 20000, 400
    ts = torch.linspace(1.0, 1e-3, steps + 1, dtype=torch.float64).tolist()
    for lam in (0.0, 1.0, 2.0):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(n, 1, generator=g, dtype=torch.float64) * math.sqrt(1 - math.exp(-float(vp.int_beta(1.0))) * (1 - v))
        for t, t_next in zip(ts[:-1], ts[1:]):
            ab, beta, dt = math.exp(-float(vp.int_beta(t))), float(vp.beta(t)), t_next - t
            score = -x / (ab * v + 1 - ab)
            x = x + sde_guidance.sde_family_drift(x, score, beta, lam) * dt \
                + lam * math.sqrt(beta * -dt) * torch.randn(x.shape, generator=g, dtype=x.dtype)
        assert abs(x.var().item() / v - 1) < 0.06, (lam, x.var().item())


def test_cfg_variance_is_what_the_sampler_gives():
    """The predicted variance against the CFG probability-flow ODE (Heun, exact Gaussian denoisers)."""
    from diffedu import guidance
    from diffedu.exact import gaussian_cfg
    sched = dd.linear_schedule(1000)
    D = gaussian_cfg.pair_denoiser(0.5, 0.3, -0.2, 1.2, sched)
    xT = torch.tensor([[0.0], [1.0]], dtype=torch.float64)        # the sampler is affine in x_T
    for w in (0.0, 1.0, 2.5):
        out = dd.pf_ode_euler_sigma(guidance.classifier_free_guidance(D, w, null_label=1, cond=0), xT, sched, 100, heun=True)
        var = (out[1] - out[0]).item() ** 2
        want = sde_guidance.cfg_gaussian_variance(torch.tensor(0.3), torch.tensor(1.2), w).item()
        assert abs(var / want - 1) < 0.01, (w, var, want)


def test_typical_mistakes_fail():
    # lam instead of lam^2 (right at lam = 0 and 1, wrong elsewhere)
    assert not ex.check("sde_family_drift", lambda x, score, beta, lam:
                        -0.5 * beta * x - 0.5 * (1 + lam) * beta * score, verbose=False)
    # the posterior weights without the (1 - tau) shrinkage of the data
    assert not ex.check("points_flow_velocity", lambda x, tau, points:
                        (x - torch.softmax(-((x[:, None] - points[None]) ** 2).sum(-1) / (2 * tau ** 2), 1) @ points) / tau,
                        verbose=False)
    # variances mixed arithmetically instead of precisions
    assert not ex.check("tilted_gaussian", lambda mu_c, v_c, mu_u, v_u, w:
                        (w * mu_c + (1 - w) * mu_u, w * v_c + (1 - w) * v_u), verbose=False)
    # the tilted density's (harmonic) variance: what CFG is often said to sample
    assert not ex.check("cfg_gaussian_variance", lambda v_c, v_u, w: 1 / (w / v_c + (1 - w) / v_u), verbose=False)


def test_solutions_and_hints_print():
    assert "def cfg_gaussian_variance" in ex.solution("cfg_gaussian_variance")
    assert "Fokker-Planck" in ex.hint("sde_family_drift")
