"""Proposed tests for diffedu/widgets_inverse.py (chapters 07-08 dashboards)."""

import matplotlib
import pytest
import torch

matplotlib.use("Agg")

import diffedu as dd  # noqa: E402
from diffedu import inverse as inv  # noqa: E402
from diffedu.viz.widgets import inverse as widgets_inverse  # noqa: E402
from _util import png  # noqa: E402




def test_operator_explorer_caches_per_operator_and_redraws():
    x = torch.rand(1, 1, 16, 16) * 2 - 1
    ops = {"blur": inv.Blur(inv.gaussian_kernel(5, 1.0), 16, channels=1),
           "sr": inv.SuperResolution(2, 16, channels=1),
           "inpaint": inv.Inpainting(inv.random_mask(16, 0.5), channels=1)}
    box = widgets_inverse.operator_explorer(x, ops, sigmas=[0.0, 0.05, 0.1], operator="blur")
    assert set(box.cache) == {"blur"} and set(box.cache["blur"]) == {0.0, 0.05, 0.1}
    a = png(box.draw())
    box.slider.value = 0.1
    b = png(box.draw())
    box.dropdown.value = "sr"
    assert "sr" in box.cache and png(box.draw()) not in (a, b)
    y, xp, xt, p_pinv, p_tik = box.cache["blur"][0.0]
    assert p_pinv > 40                                     # no noise: A^+ inverts the blur
    with pytest.raises(ValueError, match="unknown operator"):
        widgets_inverse.operator_explorer(x, ops, operator="nope")


def test_pnp_player_replays_a_recorded_run():
    x = dd.data.images.digits(16, split="test")[0][:2].double()
    op = inv.Inpainting(inv.random_mask(16, 0.5), channels=1)
    y = op.measure(x, 0.02)
    traces = {}
    for name, iters in (("a", 4), ("b", 6)):
        tr = []
        inv.pnp_hqs(y, op, inv.tv_denoiser(iters=10), sigma_y=0.02, iters=iters, callback=tr.append)
        traces[name] = tr
    box = widgets_inverse.pnp_player(x, y, traces, index=1)
    assert box.step.max == 5
    a = png(box.draw())
    box.step.value = 3
    b = png(box.draw())
    box.run.value = "b"
    box.step.value = 5
    assert len({a, b, png(box.draw())}) == 3
    with pytest.raises(ValueError, match="non-empty"):
        widgets_inverse.pnp_player(x, y, {"empty": []})
