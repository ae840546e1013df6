
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
    assert box.render_state["blit"]                     # one figure, nothing outside its canvas: moves are blitted


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


def test_figure_png_is_the_figure_at_its_dpi_and_spills_finds_outside_text():
    import io

    import matplotlib.pyplot as plt
    from PIL import Image

    from diffedu.viz.widgets.core import figure_png, spills
    fig, ax = plt.subplots(figsize=(3, 2), dpi=50)
    ax.plot([0, 1], [1, 0])
    fig.tight_layout()
    img = Image.open(io.BytesIO(figure_png(fig)))
    assert img.format == "PNG" and img.size == (150, 100)            # the whole canvas, no crop
    assert not spills(fig)
    fig.text(1.3, 0.5, "outside the canvas")
    assert spills(fig)
    wide = Image.open(io.BytesIO(figure_png(fig, tight=True)))       # the tight crop reaches it
    assert wide.size[0] > 150
    plt.close(fig)


def test_dashboard_memo_shows_a_seen_value_again_without_drawing():
    import matplotlib.pyplot as plt

    from diffedu.viz.widgets import core

    def build(memo):
        calls = []
        t = core.int_slider(0, 0, 5)

        def draw():
            calls.append(t.value)
            fig, ax = plt.subplots(figsize=(1, 1), dpi=20)
            ax.set_title(str(t.value))
            return fig
        return core.dashboard({"t": t}, draw, memo=memo), t, calls

    box, t, calls = build(memo=True)
    for v in (1, 2, 1, 0, 2):
        t.value = v
    assert calls == [0, 1, 2] and box.render_state["hits"] == 3
    box, t, calls = build(memo=False)
    for v in (1, 0):
        t.value = v
    assert calls == [0, 1, 0] and "hits" not in box.render_state


def test_a_blitted_move_gives_the_same_pixels_as_a_full_redraw():
    import io

    import matplotlib.pyplot as plt
    import numpy as np
    from PIL import Image

    from diffedu.viz.widgets.core import figure_png, moving

    def pixels(png):
        return np.asarray(Image.open(io.BytesIO(png)))

    fig, ax = plt.subplots(figsize=(3, 2), dpi=50)
    line, = ax.plot([0, 1], [0, 1])
    dots = ax.scatter([0.2, 0.8], [0.5, 0.5])
    ax.set_title("start")
    moving(fig, [line, dots, ax.title])
    first = pixels(figure_png(fig))                                   # renders the background once
    line.set_ydata([1, 0])
    dots.set_offsets([[0.5, 0.2]])
    ax.set_title("moved")
    blitted = pixels(figure_png(fig))
    del fig._diffedu_moving                                           # the same figure, drawn whole
    full = pixels(figure_png(fig))
    assert not np.array_equal(first, blitted)
    assert np.abs(blitted.astype(int) - full.astype(int)).max() <= 2  # same picture (antialiasing aside)
    plt.close(fig)
