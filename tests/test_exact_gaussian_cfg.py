"""exact.gaussian_cfg: the closed-form law of CFG with Gaussian ingredients, against the sampler."""
import math

import pytest
import torch

import diffedu as dd
from diffedu import guidance
from diffedu.exact import gaussian_cfg as GC


@pytest.mark.parametrize("w", [0.0, 1.0, 2.0, 4.0, -0.5])
def test_law_matches_the_probability_flow_sampler(w):
    sched = dd.linear_schedule(1000)
    D = GC.pair_denoiser(1.0, 0.25, 0.0, 1.0, sched)
    xT = torch.tensor([[0.0], [1.0]], dtype=torch.float64)      # the sampler is affine in x_T: two points give its law
    out = dd.pf_ode_euler_sigma(guidance.classifier_free_guidance(D, w, null_label=1, cond=0), xT, sched, 200, heun=True)
    mean, var = GC.cfg_gaussian_law(1.0, 0.25, 0.0, 1.0, w, sigma_max=float(sched.sigmas[-1]))
    assert out[0].item() == pytest.approx(mean, abs=2e-3)
    assert (out[1] - out[0]).item() ** 2 == pytest.approx(var, rel=1e-2)


def test_limits_and_agreements():
    for w in (0.0, 1.0):      # w = 0, 1: the unconditional / conditional law, as the tilted density
        m, v = GC.cfg_gaussian_law(1.0, 0.25, -0.5, 2.0, w)
        assert (m, v) == pytest.approx(GC.tilted_gaussian(1.0, 0.25, -0.5, 2.0, w), abs=1e-6)
    # equal variances: CFG samples the tilted density for every w
    assert GC.cfg_gaussian_law(1.0, 0.5, -1.0, 0.5, 3.0) == pytest.approx(GC.tilted_gaussian(1.0, 0.5, -1.0, 0.5, 3.0), abs=1e-6)
    # unequal: CFG's variance is the geometric interpolation, smaller than the tilted (harmonic) one for w > 1
    m, v = GC.cfg_gaussian_law(1.0, 0.25, 0.0, 1.0, 2.0)
    assert v == pytest.approx(0.25 ** 2) and v < GC.tilted_gaussian(1.0, 0.25, 0.0, 1.0, 2.0)[1] / 2
    # a large sigma_max approaches the limit
    assert GC.cfg_gaussian_law(1.0, 0.25, 0.0, 1.0, 2.0, sigma_max=1e4) == pytest.approx((m, v), rel=1e-3)


def test_tilted_gaussian_is_the_normalised_product():
    x = torch.linspace(-8, 8, 40001, dtype=torch.float64)
    logq = 3.0 * (-(x - 1) ** 2 / (2 * 0.25)) - 2.0 * (-(x + 0.5) ** 2 / (2 * 2.0))
    q = torch.softmax(logq, 0)
    m, v = GC.tilted_gaussian(1.0, 0.25, -0.5, 2.0, 3.0)
    assert (q * x).sum().item() == pytest.approx(m, abs=1e-6)
    assert (q * (x - m) ** 2).sum().item() == pytest.approx(v, rel=1e-5)


def test_input_validation():
    with pytest.raises(ValueError, match="not normalisable"):
        GC.tilted_gaussian(0.0, 2.0, 0.0, 1.0, 3.0)         # 3/2 - 2/1 < 0
    with pytest.raises(ValueError, match="v_c"):
        GC.cfg_gaussian_law(0.0, -1.0, 0.0, 1.0, 2.0)
    with pytest.raises(ValueError, match="sigma_max"):
        GC.cfg_gaussian_law(0.0, 1.0, 0.0, 1.0, 2.0, sigma_max=0.0)
    with pytest.raises(TypeError, match="schedule"):
        GC.pair_denoiser(0.0, 1.0, 0.0, 1.0, schedule="linear")
    assert math.isfinite(GC.cfg_gaussian_law(0.0, 1.0, 0.0, 1.0, 2.0)[1])
