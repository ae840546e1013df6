"""Chapter 11b, second pass: the collapse test of the conditional model (denoiser gain), the retrained
v-prediction model, and the equal-budget setup of the whole-image and patch priors."""
from __future__ import annotations

import pytest
import torch

import diffedu as dd
from diffedu.medical import cross_modality as xm


def test_gaussian_gain_is_the_regression_slope_of_x0_on_xt():
    # for jointly Gaussian (x0, x_t) the posterior mean is linear with slope Cov(x0, x_t) / Var(x_t):
    # estimate it by least squares on samples (an independent route to the closed form)
    g = torch.Generator().manual_seed(0)
    for s, ab in ((0.06, 0.999), (0.06, 0.99), (0.5, 0.7)):
        x0 = 0.3 + s * torch.randn(400_000, generator=g, dtype=torch.float64)
        xt = ab ** 0.5 * x0 + (1 - ab) ** 0.5 * torch.randn(400_000, generator=g, dtype=torch.float64)
        slope = float(((x0 - x0.mean()) * (xt - xt.mean())).mean() / xt.var())
        assert slope == pytest.approx(xm.gaussian_gain(s, ab), rel=0.02)
    assert xm.gaussian_gain(0.0, 0.5) == 0 and xm.gaussian_gain(1.0, 0.5) == pytest.approx(0.5 ** 0.5)


def test_denoiser_gain_of_linear_and_constant_denoisers():
    S = dd.linear_schedule(1000)
    g = torch.Generator().manual_seed(1)
    x0 = torch.rand(2, 1, 8, 8, generator=g) * 2 - 1
    region = torch.ones_like(x0, dtype=torch.bool)
    for c in (0.0, 0.37, 1.0):
        D = dd.as_denoiser(lambda x, t, c=c: c * x + 0.2, S)
        assert xm.denoiser_gain(D, x0, 10, region, g) == pytest.approx(c, abs=1e-6)
    ignores_xt = dd.as_denoiser(lambda x, t: torch.zeros_like(x) + x0, S)       # the collapsed model's behaviour
    assert xm.denoiser_gain(ignores_xt, x0, 10, region, g) == 0
    with pytest.raises(ValueError, match="region must be a bool tensor"):
        xm.denoiser_gain(ignores_xt, x0, 10, region.float(), g)
    with pytest.raises(ValueError, match="t"):
        xm.denoiser_gain(ignores_xt, x0, -1, region, g)
    with pytest.raises(ValueError, match="alpha_bar"):
        xm.gaussian_gain(0.1, 1.5)


def test_shipped_x0_model_ignores_xt_and_the_v_model_reads_it():
    from diffedu.train.checkpoints import checkpoint_path, read_manifest
    pairs = xm.paired_modalities(4, 32, seed=1)
    region = pairs.brain & ~pairs.lesion
    S = dd.linear_schedule(1000)
    ideal = xm.gaussian_gain(2 * xm.MR_NOISE, float(S.alpha_bar[10]))                 # ~0.62
    gains = {}
    for name in ("xmod_diffusion", "xmod_diffusion_v"):
        model = dd.load_model(checkpoint_path(f"medical/{name}"))
        D = dd.to_denoiser(model, S, cond=pairs.ct, clip=1.0)
        gains[read_manifest(f"medical/{name}")["prediction"]] = xm.denoiser_gain(D, pairs.mr, 10, region,
                                                                                torch.Generator().manual_seed(2))
    assert set(gains) == {"x0", "v"}
    assert gains["x0"] < 0.05 * ideal                                  # collapsed: x0_hat does not depend on x_t
    assert 0.5 * ideal < gains["v"] < 1.5 * ideal                        # passes the MR noise on as the Gaussian would


def test_equal_budget_priors():
    from diffedu.medical import train
    from diffedu.train.checkpoints import read_manifest
    assert train.BATCH["prior64"] * 64 ** 2 == train.BATCH["patch_prior64"] * train.PATCH64 ** 2     # pixels per step
    whole, patch = read_manifest("medical/prior64"), read_manifest("medical/patch_prior64")
    assert whole["model"] == patch["model"] and whole["steps"] == patch["steps"] and whole["lr"] == patch["lr"]
    assert patch["data"]["patch"] == train.PATCH64 and whole["data"]["kw"]["size"] == 64
