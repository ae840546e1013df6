"""The one dashboard pattern every widget uses, and the input checks the widgets share.

A widget does its expensive work once (sampling, solving, patchifying), builds its controls
with the factories below, writes a `draw()` that returns a matplotlib Figure from the
controls' current values, and hands both to `dashboard`, which lays the controls out above
one ipywidgets Output, draws once, and re-draws on every move:

    t = int_slider(100, 0, T - 1)
    box = dashboard({"t": t}, lambda: plot_at(t.value), slider=t)

`draw()` may build a new figure per call (it is closed once shown) or update the artists of
one persistent figure and return it (a closed figure still displays and saves), which keeps
image-grid moves fast.
"""
from __future__ import annotations

import io
import numbers
import time
from collections import deque
from collections.abc import Mapping

import torch

from ..._validate import check_callable, check_choice, check_tensor


# ---- controls: descriptions come from the dashboard's keys ------------------------------------

def int_slider(value: int, lo: int, hi: int, continuous: bool = False):
    """An IntSlider over [lo, hi] starting at value."""
    import ipywidgets as W
    return W.IntSlider(value=value, min=lo, max=hi, step=1, continuous_update=continuous)


def float_slider(value: float, lo: float, hi: float, step: float, continuous: bool = False):
    """A FloatSlider over [lo, hi] in steps of `step`."""
    import ipywidgets as W
    return W.FloatSlider(value=value, min=lo, max=hi, step=step, continuous_update=continuous)


def selection(options, value=None, continuous: bool = True):
    """A SelectionSlider over `options` (numbers or names) starting at the option nearest to
    `value` for numbers, at `value` itself for names (default: the first option)."""
    import ipywidgets as W
    options = list(options)
    if value is None:
        value = options[0]
    elif value not in options and isinstance(value, numbers.Real):
        value = min(options, key=lambda v: abs(v - value))
    return W.SelectionSlider(options=options, value=value, continuous_update=continuous)


def dropdown(options, value=None):
    """A Dropdown over `options`, starting at `value` (default: the first option)."""
    import ipywidgets as W
    options = list(options)
    return W.Dropdown(options=options, value=options[0] if value is None else value)


# ---- the dashboard -----------------------------------------------------------------------------

# Seconds each redraw took in this kernel (draw, render to PNG, send), newest last: the server-side
# half of benchmarks/bench_widgets_browser.py, which reads it through a second kernel client.
REDRAW_LOG: deque = deque(maxlen=10_000)


def figure_png(fig, tight: bool = False) -> bytes:
    """fig as PNG bytes. By default one Agg draw at the figure's dpi, encoded with fast zlib
    (level 1): about half the cost of the inline backend's path, which lays the figure out twice
    (once to find the tight crop) and compresses harder. tight=True takes that path instead.

    A figure marked with `moving(fig, artists)` is blitted: everything else (axes, ticks, labels,
    static curves) is rendered once and kept as a background; each call restores it and draws
    only the moving artists, which skips most of the text rendering that dominates a redraw."""
    _check_figure(fig)
    if tight:
        from IPython.core.pylabtools import print_figure
        return print_figure(fig, "png", bbox_inches="tight")
    import numpy as np
    from PIL import Image
    canvas = _agg_canvas(fig)
    moving_ = getattr(fig, "_diffedu_moving", None)
    if moving_ is None:
        canvas.draw()
    else:
        key = (canvas.get_width_height(), fig.dpi)
        background = getattr(fig, "_diffedu_background", None)
        if background is None or background[0] != key:
            shown = [a.get_visible() for a in moving_]
            for a in moving_:
                a.set_visible(False)
            canvas.draw()
            fig._diffedu_background = (key, canvas.copy_from_bbox(fig.bbox))
            for a, v in zip(moving_, shown):
                a.set_visible(v)
        else:
            canvas.restore_region(background[1])
        for a in moving_:
            fig.draw_artist(a)
    buf = io.BytesIO()
    Image.fromarray(np.asarray(canvas.buffer_rgba())[..., :3]).save(buf, format="png", compress_level=1)
    return buf.getvalue()


def moving(fig, artists):
    """Mark the artists of fig that a widget's moves change (collections, lines, images, titles):
    figure_png then blits, re-drawing only these over a background rendered once. Everything
    else must stay as it is (axis limits too); after changing something else, call moving again:
    it drops the kept background. Saving the figure any other way is unaffected. Returns fig."""
    _check_figure(fig)
    artists = list(artists)
    from matplotlib.artist import Artist
    bad = [type(a).__name__ for a in artists if not isinstance(a, Artist) or a.figure is not fig]
    if bad or not artists:
        raise ValueError(f"artists must be a non-empty list of artists of fig, got {bad or 'an empty list'}")
    fig._diffedu_moving = artists
    fig._diffedu_background = None
    return fig


def _check_figure(fig):
    from matplotlib.figure import Figure
    if not isinstance(fig, Figure):
        raise TypeError(f"fig must be a matplotlib Figure (what draw() returns), got {type(fig).__name__}")


def _agg_canvas(fig):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    return fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)


def spills(fig, slack: float = 0.02) -> bool:
    """Whether some artist of fig reaches outside its canvas (only a tight crop shows it whole)."""
    _check_figure(fig)
    box = fig.get_tightbbox(_agg_canvas(fig).get_renderer())
    w, h = fig.get_size_inches()
    return box.x0 < -slack or box.y0 < -slack or box.x1 > w + slack or box.y1 > h + slack


# Rendered figures a dashboard keeps, keyed by its controls' values: moving back to a value it has
# shown costs no drawing (about 60 KB each; a bounded number per dashboard).
MEMO_SIZE = 48


def redraw(out, draw, state: dict | None = None, key=None):
    """Re-draw the figure that `draw()` returns into the ipywidgets Output `out`.

    state: a dict kept between calls of one dashboard; the first call records in it whether the
    figure spills outside its canvas (only such figures pay for the tight crop afterwards), and
    with a key (the controls' values, hashable) it keeps the last MEMO_SIZE PNGs: a key seen
    before shows its PNG again without calling draw (counted in state["hits"]). state["blit"]
    says whether moves are blitted (a `moving` figure that does not spill)."""
    t0 = time.perf_counter()
    state = {} if state is None else state
    from IPython.display import Image, display
    with out:                                              # an error in draw() shows in the Output
        out.clear_output(wait=True)
        display(Image(data=_render(draw, state, key), format="png"))
    REDRAW_LOG.append(time.perf_counter() - t0)


def _render(draw, state: dict, key) -> bytes:
    """The PNG for the controls' values `key`: from the memo, or drawn (see redraw)."""
    import matplotlib.pyplot as plt
    memo = state.setdefault("memo", {})
    png = memo.pop(key, None) if key is not None else None
    if png is None:
        fig = draw()
        if "tight" not in state:
            state["tight"] = spills(fig)
            state["blit"] = not state["tight"] and getattr(fig, "_diffedu_moving", None) is not None
        png = figure_png(fig, state["tight"])
        plt.close(fig)
    else:
        state["hits"] = state.get("hits", 0) + 1
    if key is not None:
        memo[key] = png                                   # newest last
        while len(memo) > MEMO_SIZE:
            memo.pop(next(iter(memo)))
    return png


def _values_key(controls: dict):
    """The controls' values as a hashable key, or None when some value is not hashable."""
    key = tuple((name, w.value) for name, w in controls.items())
    try:
        hash(key)
    except TypeError:
        return None
    return key


def dashboard(controls: dict, draw, *, rows=None, before: dict | None = None, memo: bool = True, **handles):
    """Controls above one Output holding `draw()`'s figure, re-drawn whenever a control moves.

    controls: {description: ipywidget}, in display order; each key becomes the control's label.
    draw: () -> matplotlib Figure, reading the controls' values.
    rows: lists of keys, one row of controls each (default: all in one row).
    before: {key: fn()} run when that control moves, before the re-draw (e.g. re-sample when a
    sampler setting changes); controls that fn moves do not re-draw on their own meanwhile.
    memo: keep the figures already shown, keyed by the controls' values (redraw's MEMO_SIZE), so
    moving back costs nothing; turn off when draw() depends on anything but the controls.
    handles: extra attributes for the returned box (e.g. `slider=..., cache=...`), for tests.

    Returns an ipywidgets VBox with `.controls`, `.out`, `.draw` and `.render_state` (redraw's
    state: the memo and its hits) and the handles.
    """
    import ipywidgets as W
    controls = check_dict("controls", controls, "{description: ipywidget}")
    check_callable("draw", draw, "draw() -> matplotlib Figure")
    before, busy = dict(before or {}), []
    rows = [list(controls)] if rows is None else [list(r) for r in rows]
    placed = [k for r in rows for k in r]
    if sorted(map(str, placed)) != sorted(map(str, controls)) or any(not r for r in rows):
        raise ValueError(f"rows must place each control once in non-empty rows, got {rows} for {list(controls)}")
    for key, fn in before.items():
        check_choice("before key", key, list(controls))
        check_callable(f"before[{key!r}]", fn, "fn()")
    taken = sorted({"controls", "out", "draw", "render_state"} & set(handles))
    if taken:
        raise ValueError(f"handles {taken} would hide the box's own .controls/.out/.draw")
    out, state = W.Output(), {}

    def on_move(name):
        def react(_):
            if busy:                                  # moved by a `before` hook: one re-draw later
                return
            if name in before:
                busy.append(name)
                try:
                    before[name]()
                finally:
                    busy.pop()
            redraw(out, draw, state, _values_key(controls) if memo else None)
        return react

    for name, w in controls.items():
        w.description = w.description or name
        w.observe(on_move(name), names="value")
    lines = [controls[r[0]] if len(r) == 1 else W.HBox([controls[k] for k in r]) for r in rows]
    box = W.VBox(lines + [out])
    redraw(out, draw, state, _values_key(controls) if memo else None)
    box.controls, box.out, box.draw, box.render_state = dict(controls), out, draw, state
    for k, v in handles.items():
        setattr(box, k, v)
    return box


# ---- input checks at the widgets' boundary -----------------------------------------------------

def _shape(x) -> str:
    return str(tuple(x.shape)) if isinstance(x, torch.Tensor) else type(x).__name__


def check_points(name: str, x, optional: bool = False):
    """2D points x: (N, 2) as a float tensor (None allowed when optional)."""
    if x is None and optional:
        return None
    check_tensor(name, x)
    if x.ndim != 2 or x.shape[1] != 2 or len(x) == 0:
        raise ValueError(f"{name} must be 2D points of shape (N, 2) with N >= 1, got shape {_shape(x)}")
    return x


def check_image(name: str, x, batched: bool = False, one: bool = False):
    """An image (C, H, W), or with batched a batch (B, C, H, W) (one: B == 1)."""
    want = "(1, C, H, W)" if one else "(B, C, H, W)" if batched else "(C, H, W)"
    check_tensor(name, x)
    ndim = 4 if batched or one else 3
    if x.ndim != ndim or (one and len(x) != 1) or 0 in x.shape:
        hint = ""
        if x.ndim == ndim - 1:
            hint = f"; without a channel dimension, use {name}[..., None, :, :]"
            hint += f" (a single image: {name}[None])" if ndim == 4 else ""
        raise ValueError(f"{name} must be {'one image' if one else 'images' if batched else 'an image'} "
                         f"of shape {want}, got shape {_shape(x)}{hint}")
    return x


def check_dict(name: str, d, what: str, values_callable: str | None = None) -> dict:
    """A non-empty dict {key: value}; with values_callable, every value is a callable of that
    signature. what: the expected form, for the message (e.g. '{name: fn(steps) -> xs}')."""
    if not isinstance(d, Mapping):
        raise TypeError(f"{name} must be a dict {what}, got {type(d).__name__}")
    if not d:
        raise ValueError(f"{name} must be a non-empty dict {what}, got an empty one")
    if values_callable is not None:
        for k, v in d.items():
            check_callable(f"{name}[{k!r}]", v, values_callable)
    return dict(d)


def check_int(name: str, value, lo: int, hi: int) -> int:
    """An int in [lo, hi]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int in [{lo}, {hi}], got {type(value).__name__} {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be an int in [{lo}, {hi}], got {value}")
    return int(value)


def check_options(name: str, values) -> list:
    """A non-empty sequence of numbers (the options of a slider); one-element tensors become numbers."""
    try:
        values = [v.item() if isinstance(v, torch.Tensor) and v.numel() == 1 else v for v in values]
    except TypeError:
        raise TypeError(f"{name} must be a sequence of numbers, got {type(values).__name__}") from None
    if not values:
        raise ValueError(f"{name} must be a non-empty sequence of numbers, got an empty one")
    bad = [v for v in values if isinstance(v, bool) or not isinstance(v, numbers.Real)]
    if bad:
        raise TypeError(f"{name} must hold numbers, got {bad[:3]}")
    return values
