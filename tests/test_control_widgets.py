"""Chapter 12's dashboards (viz/widgets/control.py): they build, re-draw when a control moves,
cache what they sampled, and check their inputs."""
import matplotlib
import pytest
import torch

matplotlib.use("Agg")

from diffedu.viz.widgets import control as wc  # noqa: E402
from _util import png  # noqa: E402


def test_caption_explorer_builds_captions_and_caches_samples():
    calls = []

    def sample_fn(caption, w):
        calls.append((caption, w))
        g = torch.Generator().manual_seed(len(caption) + int(10 * w))
        return torch.rand(3, 3, 8, 8, generator=g) * 2 - 1

    box = wc.caption_explorer(sample_fn, [0.0, 1.0, 3.0], n=3)
    assert box.caption() == "a red circle above a blue square" and calls == [(box.caption(), 1.0)]
    a = png(box.draw())
    box.controls["relation"].value = "(alone)"
    assert box.caption() == "a red circle" and a != png(box.draw())
    box.controls["relation"].value = "above"                  # back: from the cache, no new sample
    assert len(calls) == 2 and set(box.cache) == {("a red circle above a blue square", 1.0), ("a red circle", 1.0)}
    with pytest.raises(ValueError, match="images"):
        wc.caption_explorer(lambda c, w: torch.zeros(3, 8, 8), [1.0])


def test_strength_explorer_flips_between_precomputed_samples():
    samples = {s: torch.full((2, 1, 8, 8), s - 1.0) for s in (0.0, 1.0, 2.0)}
    box = wc.strength_explorer(samples, torch.zeros(1, 8, 8))
    a = png(box.draw())
    box.slider.value = 0.0
    assert a != png(box.draw())
    with pytest.raises(ValueError, match="non-empty dict"):
        wc.strength_explorer({}, torch.zeros(1, 8, 8))
    with pytest.raises(ValueError, match="hint_image"):
        wc.strength_explorer(samples, torch.zeros(8, 8))
