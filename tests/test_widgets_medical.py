"""Chapter 11's dashboards: each redraws on a slider move, shows the chosen setting (title
and pixels change), and refuses mismatched inputs."""
import matplotlib
import pytest
import torch

matplotlib.use("Agg")

from diffedu.inverse.operators.mri import cartesian_mask  # noqa: E402
from diffedu.viz.widgets import medical as W  # noqa: E402
from _util import png  # noqa: E402


def _img(seed):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 8, 8, generator=g) * 2 - 1


def _titles(fig):
    return [ax.get_title() for ax in fig.axes]


def test_ct_views_explorer_moves_and_scores():
    truth = _img(0)
    fbp = {v: _img(v) for v in (2, 4, 8)}
    dds = {2: _img(20), 4: _img(21), 8: truth.clone()}
    box = W.ct_views_explorer(truth, fbp, dds, views=4)
    a = png(box.draw())
    assert "4 views" in _titles(box.figure)[1]
    box.slider.value = 8
    fig = box.draw()
    assert "inf dB" in _titles(fig)[2]                          # identical to the truth
    assert png(fig) != a
    with pytest.raises(ValueError, match="same settings"):
        W.ct_views_explorer(truth, fbp, {2: truth})
    with pytest.raises(ValueError, match="truth's shape"):
        W.ct_views_explorer(truth, {2: torch.zeros(1, 4, 4)}, {2: truth})


def test_mri_explorer_shows_the_mask_line_count():
    truth = _img(1)
    masks = {r: cartesian_mask(8, r, 0.25).float() for r in (2, 4)}
    box = W.mri_explorer(truth, masks, {r: _img(r) for r in masks}, {r: _img(10 + r) for r in masks}, acceleration=2)
    box.draw()
    assert "4 of 8 lines" in _titles(box.figure)[0]
    box.slider.value = 4
    assert "2 of 8 lines" in _titles(box.draw())[0]
    with pytest.raises(ValueError, match="masks"):
        W.mri_explorer(truth, {2: torch.ones(4, 4)}, {2: truth}, {2: truth})


def test_lambda_explorer_error_panel():
    truth = _img(2)
    runs = {0.0: _img(5), 1.0: truth.clone()}
    box = W.lambda_explorer(truth, runs)
    box.draw()
    assert float(box.figure.axes[2].images[0].get_array().max()) == 0.0     # lambda = 1: no error
    box.slider.value = 0.0
    box.draw()
    assert float(box.figure.axes[2].images[0].get_array().max()) > 0.1
    assert "lambda = 0" in _titles(box.figure)[1]
    with pytest.raises(TypeError, match="runs must be a dict"):
        W.lambda_explorer(truth, [truth])
