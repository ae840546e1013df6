"""Chapter 09's dashboards: they build, re-draw when a control moves, and check their inputs."""

import matplotlib
import pytest
import torch

matplotlib.use("Agg")

from diffedu.viz.widgets import posterior as wp  # noqa: E402
from diffedu.exact import posterior_benchmark as gb  # noqa: E402
from _util import png  # noqa: E402




def test_mode_fractions_and_sweep():
    modes = torch.tensor([[0.0, 0.0], [10.0, 0.0]])
    x = torch.tensor([[0.1, 0.0], [9.0, 1.0], [11.0, 0.0], [-1.0, 0.0]])
    torch.testing.assert_close(wp.mode_fractions(x, modes), torch.tensor([0.5, 0.5], dtype=torch.float64))
    assert wp.sweep(lambda v: v * 2, [1, 2]) == {1: 2, 2: 4}
    with pytest.raises(ValueError, match="non-empty"):
        wp.sweep(lambda v: v, [])


def test_dps_zeta_explorer_redraws_per_zeta():
    prob = gb.make_problem(2, 1, 7)
    runs = wp.sweep(lambda z: gb.run_sampler("DPS", prob, 200, torch.Generator().manual_seed(1), zeta=z, steps=50),
                    [0.05, 1.0])
    ref = gb.sample_mixture(prob.posterior, 200, torch.Generator().manual_seed(0))
    box = wp.dps_zeta_explorer(runs, prob.posterior.log_prob, prob.prior.means, prob.posterior.weights, ref,
                               lim=19.0, zeta=0.05)
    a = png(box.draw())
    box.slider.value = 1.0
    assert a != png(box.draw())
    assert set(box.sw) == {0.05, 1.0} and all(v > 0 for v in box.sw.values())
    assert all(abs(f.sum().item()) <= 1 + 1e-9 for f in box.fractions.values())
    with pytest.raises(ValueError, match="together"):
        wp.dps_zeta_explorer(runs, prob.posterior.log_prob, modes=prob.prior.means)
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        wp.dps_zeta_explorer({0.1: torch.zeros(5, 3)}, prob.posterior.log_prob)


def test_repaint_explorer_caches_every_setting():
    calls = []

    def run(jl, jn):
        calls.append((jl, jn))
        return torch.rand(2, 1, 8, 8) * 2 - 1

    x = torch.rand(1, 1, 8, 8) * 2 - 1
    box = wp.repaint_explorer(run, 10, [2, 5], [1, 3], x, x)
    assert sorted(calls) == [(2, 1), (2, 3), (5, 1), (5, 3)]
    a = png(box.draw())
    box.jump_n_sample.value = 3
    assert a != png(box.draw())
    assert len(calls) == 4                                   # moving a slider only re-draws
    lazy = wp.repaint_explorer(run, 10, [2, 5], [1, 3], x, x, precompute=False)
    assert len(calls) == 5 and len(lazy.cache) == 1
    with pytest.raises(ValueError, match="one image"):
        wp.repaint_explorer(run, 10, [2], [1], torch.rand(2, 1, 8, 8), x)
