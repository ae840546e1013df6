"""The denoiser contract (diffedu/denoiser.py), one parametrized test for every kind of
denoiser in the package: networks (each parameterization), plain callables, the exact
Gaussian mixture, CFG, classifier guidance and DPS-as-a-denoiser."""
import math

import pytest
import torch

import diffedu as dd
from diffedu import flow as F
from diffedu import guidance as G
from diffedu import sde as S
from diffedu.exact import guidance as EG
from diffedu.exact.memorisation import EmpiricalDenoiser
from diffedu.nets.mlp import MLPDenoiser

SCHED = dd.linear_schedule(200)
GMM = dd.GaussianMixture([0.3, 0.7], [[-1.0, 0.5], [1.0, -0.5]], [[0.2, 0.3], [0.3, 0.1]], labels=[0, 1])


def _net(prediction, num_classes=None):
    torch.manual_seed(0)
    return MLPDenoiser(dim=2, hidden=16, depth=1, t_dim=8, prediction=prediction, num_classes=num_classes).double()


def _dps():
    y = torch.tensor([[0.4]], dtype=torch.float64).expand(6, 1)
    op = dd.inverse.Dense(torch.tensor([[1.0, 0.5]], dtype=torch.float64))
    return dd.inverse.dps_denoiser(y, op, GMM.as_denoiser(SCHED), SCHED, zeta=0.3)


KINDS = {
    **{f"network-{p}": (lambda p=p: dd.to_denoiser(_net(p), SCHED)) for p in dd.PREDICTIONS},
    "network-clip": lambda: dd.to_denoiser(_net("eps"), SCHED, clip=1.0),
    "callable": lambda: dd.as_denoiser(lambda x, t: torch.tanh(x) * (1 - t[:, None] / 400), SCHED),
    "gmm": lambda: GMM.as_denoiser(SCHED),
    "empirical": lambda: EmpiricalDenoiser(GMM.sample(50, torch.Generator().manual_seed(1)), SCHED),
    "cfg-network": lambda: G.classifier_free_guidance(dd.to_denoiser(_net("eps", 2), SCHED), 3.0, cond=1),
    "cfg-exact": lambda: EG.exact_cfg_denoiser(GMM, SCHED, 0, 2.0),
    "classifier-guided": lambda: G.classifier_guidance(GMM.as_denoiser(SCHED), EG.gmm_classifier(GMM, SCHED),
                                                       2.0, cond=1),
    "dps": _dps,
}


@pytest.fixture(params=list(KINDS), ids=list(KINDS))
def D(request):
    return KINDS[request.param]()


def _x(n=6, seed=0):
    return torch.randn(n, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def test_is_a_denoiser_with_shapes_dtype_and_schedule(D):
    assert isinstance(D, dd.Denoiser) and D.schedule is not None
    x = _x()
    x0, eps = D.x0_eps(x, 120)
    assert x0.shape == eps.shape == x.shape and x0.dtype == eps.dtype == x.dtype
    assert torch.isfinite(x0).all() and torch.isfinite(eps).all()
    torch.testing.assert_close(D(x, 120), x0)


def test_x0_and_eps_explain_x_t(D):
    """x_t = sqrt(alpha_bar) x0_hat + sqrt(1 - alpha_bar) eps_hat, at the timestep's level."""
    x = _x()
    x0, eps = D.x0_eps(x, 150)
    ab = float(SCHED.alpha_bar_of(150))
    torch.testing.assert_close(math.sqrt(ab) * x0 + math.sqrt(1 - ab) * eps, x)
    torch.testing.assert_close(D.score(x, 150), -eps / math.sqrt(1 - ab))


def test_scalar_batched_and_mixed_t(D):
    x = _x()
    torch.testing.assert_close(D(x, 80), D(x, torch.full((6,), 80)))
    t = torch.tensor([10, 50, 50, 120, 199, 0])
    if type(D).__name__ != "DPSDenoiser":     # DPS binds one measurement batch: rows can't be split
        rows = torch.cat([D.x0_eps(x[j:j + 1], int(t[j]))[0] for j in range(6)])
        torch.testing.assert_close(D(x, t), rows)


def test_known_level_is_the_looked_up_level(D):
    x = _x()
    ab = float(SCHED.alpha_bar_of(70))
    for got, want in zip(D.x0_eps(x, 70, alpha_bar=ab), D.x0_eps(x, 70)):
        torch.testing.assert_close(got, want)


def test_runs_on_a_respaced_schedule(D):
    out = dd.ddim(D, _x(), SCHED, steps=7)
    assert out.shape == (6, 2) and torch.isfinite(out).all()


def test_continuous_views_agree_with_the_discrete_denoiser(D):
    """at_level, the plug-and-play view, the SDE score and the flow velocity all reduce to
    D(x_t, t_i) when the level is the schedule's entry i."""
    i = 90
    t_i, ab = int(SCHED.timesteps[i]), float(SCHED.alpha_bar[i])
    x = _x()
    x0, eps = D.x0_eps(x, t_i)
    for got, want in zip(D.at_level(x, ab), (x0, eps)):
        torch.testing.assert_close(got, want)
    sigma = math.sqrt((1 - ab) / ab)                                  # PnP: v = x_t / sqrt(ab)
    torch.testing.assert_close(dd.sigma_denoiser(D)(x / math.sqrt(ab), sigma), x0)
    vp = S.VPSDE()                                                   # the time whose alpha_bar is ab
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if float(vp.alpha_bar(mid)) > ab else (lo, mid)
    torch.testing.assert_close(S.denoiser_score_fn(D, vp)(x, lo), -eps / math.sqrt(1 - ab), rtol=1e-6, atol=1e-6)
    r = math.sqrt(ab / (1 - ab))                                     # linear path: alpha/sigma = sqrt(SNR)
    tau = 1 / (1 + r)
    c = math.hypot(1 - tau, tau)
    torch.testing.assert_close(F.denoiser_velocity_fn(D, "linear")(x * c, tau), eps - x0)


def test_at_level_interpolates_in_log_snr_between_entries():
    """Between two entries, a discrete-only denoiser mixes its two neighbours' predictions with
    the log-SNR weights of schedule.locate; the exact GMM is exact there instead."""
    exact = GMM.as_denoiser(SCHED)
    discrete = dd.as_denoiser(exact.__call__, SCHED)
    lam = 0.25 * SCHED.log_snr[40] + 0.75 * SCHED.log_snr[41]
    ab = float(torch.sigmoid(lam))
    x = _x()
    x0, _ = discrete.at_level(x, ab)
    x_a, x_b = exact(x, int(SCHED.timesteps[40])), exact(x, int(SCHED.timesteps[41]))
    torch.testing.assert_close(x0, 0.25 * x_a + 0.75 * x_b)
    torch.testing.assert_close(exact.at_level(x, ab)[0], GMM.denoiser(x, ab))
    assert not torch.allclose(x0, GMM.denoiser(x, ab), atol=1e-8)


def test_as_denoiser_and_bad_inputs():
    D = GMM.as_denoiser(SCHED)
    assert dd.as_denoiser(D) is D
    with pytest.raises(TypeError, match="denoiser must be callable"):
        dd.as_denoiser(3)
    with pytest.raises(TypeError, match="schedule must be a NoiseSchedule"):
        dd.to_denoiser(_net("eps"), "linear")
    with pytest.raises(TypeError, match="t must hold"):
        D(_x(), 1.5)
    with pytest.raises(ValueError, match="t must be an int or shape"):
        D(_x(), torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="not in this schedule"):
        D(_x(), 5000)
    with pytest.raises(ValueError, match="sigma must be finite"):
        dd.sigma_denoiser(D)(_x(), float("nan"))
    with pytest.raises(ValueError, match="has no schedule"):
        dd.as_denoiser(lambda x, t: x).x0_eps(_x(), 3)
