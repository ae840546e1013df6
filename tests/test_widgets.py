
import matplotlib
import torch

matplotlib.use("Agg")

import diffedu as dd  # noqa: E402
from diffedu.viz import widgets  # noqa: E402
from _util import png  # noqa: E402




def test_forward_explorer_redraws_with_t_and_schedule():
    box = widgets.forward_explorer(T=100, t=10)
    a = png(box.draw())
    box.slider.value = 80
    b = png(box.draw())
    box.dropdown.value = "cosine"
    c = png(box.draw())
    assert a != b and b != c


def test_trajectory_player_caches_and_replays():
    s = dd.linear_schedule(100)
    gmm = dd.GaussianMixture([0.5, 0.5], [[-1.0, 0.0], [1.0, 0.0]], 0.05)
    box = widgets.trajectory_player(gmm.as_denoiser(s), s, torch.randn(50, 2), steps=10)
    c = box.controls
    assert box.cache["xs"].shape == (11, 50, 2)
    c["steps"].value = 5
    assert box.cache["xs"].shape == (6, 50, 2) and c["step"].max == 5
    xs = box.cache["xs"]
    c["step"].value = 2                       # scrubbing re-uses the cache
    assert box.cache["xs"] is xs
    c["sampler"].value = "ddpm"
    assert c["eta"].disabled


def test_denoiser_comparison_precomputes():
    s = dd.linear_schedule(100)
    gmm = dd.GaussianMixture([1.0], [[0.0, 0.0]], 0.5)
    D = gmm.as_denoiser(s)
    box = widgets.denoiser_comparison(D, D, gmm.sample(30), s, t=50)
    assert 50 in box.cache
    box.slider.value = 20
