"""Smoke tests of the chapter 04-05 dashboards: they build, cache, and re-draw on a control move."""

import matplotlib
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

import diffedu as dd  # noqa: E402
from diffedu import flow as F  # noqa: E402
from diffedu import sde as S  # noqa: E402
from diffedu.viz.widgets import flow as WF  # noqa: E402


def gmm():
    return dd.GaussianMixture([0.5, 0.5], [[-1.5, 0.0], [1.5, 0.5]], 0.1, labels=[0, 1])


def test_solver_explorer_caches_per_solver_and_steps():
    g, vp = gmm(), S.VPSDE()
    x_T = vp.prior_sample((50, 2), torch.Generator().manual_seed(0), torch.float64)
    score = S.gmm_score_fn(g, vp)
    calls = []

    def heun(n):
        calls.append(n)
        return S.pf_ode_heun(score, x_T, vp, n, return_trajectory=True)[1]

    box = WF.solver_explorer({"heun": heun}, g.log_prob, g.sample(200), steps=4, step_options=(2, 4))
    assert list(box.cache) == [("heun", 4)] and box.cache["heun", 4][0].shape == (5, 50, 2)
    box.controls["steps"].value = 2
    box.controls["steps"].value = 4                     # cached: no new run
    assert calls == [4, 2]
    plt.close(box.draw())
    with pytest.raises(ValueError, match="samplers"):
        WF.solver_explorer({})


def test_reflow_explorer_precomputes_everything():
    g = gmm()
    x1 = torch.randn(40, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    u = F.gmm_velocity(g)
    box = WF.reflow_explorer({"exact": u, "straight": lambda x, tau: torch.zeros_like(x)}, x1,
                             lambda u_, x, n: F.sample_flow(u_, x, n, return_trajectory=True)[1],
                             lambda u_, x: F.straightness(u_, x, 10), g.log_prob, g.sample(100), step_options=(1, 4))
    assert set(box.cache) == {("exact", 1), ("exact", 4), ("straight", 1), ("straight", 4)}
    assert box.cache["straight", 4][2] == 0.0 and box.cache["exact", 4][2] > 0
    box.controls["flow"].value = "straight"
    plt.close(box.draw())


def test_guidance_sweep_and_explorer_redraw_fast():
    labels, calls = torch.tensor([0, 0, 1, 1, 1]), []
    sample = lambda w: calls.append(w) or torch.stack([labels.double() * w, torch.arange(5.0)], 1)   # noqa: E731
    sweep = WF.guidance_sweep(sample, [0.0, 1.0, 2.0], labels, {"mean x": lambda x, y: x[:, 0].mean()})
    assert [r["mean x"] for r in sweep["rows"]] == pytest.approx([0.0, 0.6, 1.2])
    assert sweep["rows"][0]["spread"] == pytest.approx((0.5 ** 0.5 + 1.0) / 2)
    box = WF.guidance_explorer(sweep, gmm().log_prob, images={w: torch.zeros(4, 1, 8, 8) for w in sweep["ws"]})
    assert box.controls["w"].value == 1.0
    box.controls["w"].value = 2.0
    assert calls == [0.0, 1.0, 2.0]                     # sampled once per scale by the sweep; a move only re-draws
    with pytest.raises(ValueError, match="swept scales"):
        WF.guidance_explorer(sweep, w=3.0)
    with pytest.raises(ValueError, match="sample_fn"):
        WF.guidance_sweep(lambda w: torch.zeros(3, 2), [1.0], labels)
