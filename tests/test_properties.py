"""Property tests (hypothesis): identities that must hold for every valid input, and clear
errors for invalid ones."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import diffedu as dd
from diffedu.param import PREDICTIONS, convert

betas_st = st.lists(st.floats(1e-5, 0.5), min_size=1, max_size=60)


@settings(max_examples=50, deadline=None)
@given(betas_st, st.data())
def test_any_valid_betas_give_a_consistent_schedule(betas, data):
    s = dd.from_betas(betas)
    torch.testing.assert_close(s.betas, torch.tensor(betas, dtype=torch.float64))
    torch.testing.assert_close(torch.sigmoid(s.log_snr), s.alpha_bar)
    steps = data.draw(st.integers(1, len(betas)))
    r = s.respace(steps)
    assert len(r) == steps and r.timesteps[-1] == len(betas) - 1
    torch.testing.assert_close(r.alpha_bar, s.alpha_bar[r.timesteps])


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=5))
def test_betas_outside_the_open_unit_interval_are_rejected(betas):
    if all(0 < b < 1 for b in betas):
        dd.from_betas(betas)
    else:
        with pytest.raises(ValueError, match="betas must lie in"):
            dd.from_betas(betas)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(PREDICTIONS), st.sampled_from(PREDICTIONS), st.floats(1e-3, 0.999), st.integers(0, 2**31 - 1))
def test_conversions_round_trip(src, dst, ab, seed):
    g = torch.Generator().manual_seed(seed)
    xt, out = torch.randn(4, 3, generator=g, dtype=torch.float64), torch.randn(4, 3, generator=g, dtype=torch.float64)
    back = convert(convert(out, xt, ab, src, dst), xt, ab, dst, src)
    torch.testing.assert_close(back, out, rtol=1e-6, atol=1e-6)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 4), st.integers(1, 5))
def test_gmm_rejects_wrong_point_dimension(D, wrong):
    gmm = dd.GaussianMixture([1.0], torch.zeros(1, D), 1.0)
    if wrong == D:
        assert gmm.log_prob(torch.zeros(2, wrong)).shape == (2,)
    else:
        with pytest.raises(ValueError, match=rf"x must have shape \(N, {D}\)"):
            gmm.log_prob(torch.zeros(2, wrong))
