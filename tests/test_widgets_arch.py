
import matplotlib
import pytest
import torch

matplotlib.use("Agg")

from diffedu.viz.widgets import arch as widgets_arch  # noqa: E402
from _util import png  # noqa: E402




def test_patch_viewer_redraws_with_the_patch_size():
    img = torch.rand(1, 16, 16) * 2 - 1
    box = widgets_arch.patch_viewer(img, (2, 4, 8), p=4)
    a = png(box.draw())
    box.slider.value = 2
    assert a != png(box.draw())
    with pytest.raises(ValueError, match="do not divide"):
        widgets_arch.patch_viewer(img, (3, 4))


def test_attention_viewer_moves_over_block_head_query():
    L, G = 4, 4
    maps = [torch.softmax(torch.randn(2, L + G * G, L + G * G), -1) for _ in range(3)]
    box = widgets_arch.attention_viewer(maps, torch.rand(1, 16, 16), L, G, 4, query=0)
    a = png(box.draw())
    box.sliders[2].value = L + 3
    b = png(box.draw())
    box.sliders[0].value = 2
    assert len({a, b, png(box.draw())}) == 3
    with pytest.raises(ValueError, match="maps"):
        widgets_arch.attention_viewer([torch.rand(2, 5, 5)], torch.rand(1, 16, 16), L, G, 4)
