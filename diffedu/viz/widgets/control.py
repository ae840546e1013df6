"""Widgets of chapter 12 (control): caption editing with a CFG slider, and a control-strength
slider for ControlNet. Both use `core.dashboard` and update one figure's images in place.

    caption_explorer(sample_fn, w_values, n=8)      dropdowns build a caption; sample_fn(caption,
                                                    w) -> (n, 3, H, W) is cached per (caption, w)
    strength_explorer(samples, hint_image, strengths)   precomputed samples per strength, one
                                                    slider over them, the control beside them
"""
from __future__ import annotations

import torch

from ..._validate import check_callable
from .core import check_image, check_options, dashboard, dropdown, selection


def _to_rgb(x: torch.Tensor):
    """(C, H, W) in [-1, 1] -> (H, W, 3) numpy in [0, 1] (grey for C = 1)."""
    x = ((x.detach().float().cpu().clamp(-1, 1) + 1) / 2)
    return (x.expand(3, -1, -1) if x.shape[0] == 1 else x).permute(1, 2, 0).numpy()


def _grid_figure(n: int, extra: int = 0, size: float = 1.3):
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, n + extra, figsize=(size * (n + extra), size * 1.25))
    for ax in axes:
        ax.axis("off")
    return fig, list(axes)


def caption_explorer(sample_fn, w_values, n: int = 8, colours=("red", "green", "blue"),
                     shapes=("circle", "square", "triangle"), relations=("above", "below", "left of", "right of")):
    """Caption dropdowns (colour and shape of A, the relation or "(alone)", colour and shape of B)
    and a CFG-weight slider over `w_values`; shows sample_fn(caption, w): (n, 3, H, W) in [-1, 1].
    Samples are cached per (caption, w), so going back is instant. Returns the dashboard box
    (`.cache` holds the samples)."""
    check_callable("sample_fn", sample_fn, "sample_fn(caption, w) -> (n, 3, H, W)")
    w_values = check_options("w_values", w_values)
    controls = {"A": dropdown(colours), "shape A": dropdown(shapes),
                "relation": dropdown(("(alone)",) + tuple(relations), "above"),
                "B": dropdown(colours, colours[-1]), "shape B": dropdown(shapes, shapes[1]),
                "CFG w": selection(w_values, w_values[len(w_values) // 2])}
    cache = {}
    fig, axes = _grid_figure(n)
    ims = [ax.imshow(torch.zeros(4, 4, 3).numpy()) for ax in axes]

    def caption():
        c = controls
        a = f"a {c['A'].value} {c['shape A'].value}"
        if c["relation"].value == "(alone)":
            return a
        return f"{a} {c['relation'].value} a {c['B'].value} {c['shape B'].value}"

    def draw():
        key = (caption(), controls["CFG w"].value)
        if key not in cache:
            x = sample_fn(*key)
            check_image("sample_fn's output", x, batched=True)
            cache[key] = x
        for im, x in zip(ims, cache[key]):
            im.set_data(_to_rgb(x))
        fig.suptitle(f'"{key[0]}", w = {key[1]}', fontsize=9)
        return fig

    return dashboard(controls, draw, rows=[["A", "shape A", "relation"], ["B", "shape B", "CFG w"]],
                     cache=cache, caption=caption)


def strength_explorer(samples: dict, hint_image: torch.Tensor, titles=("control",)):
    """A slider over control strengths; samples: {strength: (n, C, H, W)} precomputed with the
    same noise, hint_image: (k, H, W) the control images shown first (one panel per channel
    named in `titles`). Returns the dashboard box."""
    if not isinstance(samples, dict) or not samples:
        raise ValueError("samples must be a non-empty dict {strength: (n, C, H, W) tensor}")
    for s, x in samples.items():
        check_image(f"samples[{s}]", x, batched=True)
    strengths = check_options("strengths", sorted(samples))
    hint_image = torch.as_tensor(hint_image)
    if hint_image.ndim != 3 or len(hint_image) != len(titles):
        raise ValueError(f"hint_image must be (k, H, W) with k = len(titles) = {len(titles)}, got {tuple(hint_image.shape)}")
    n = len(samples[strengths[0]])
    fig, axes = _grid_figure(n, extra=len(titles))
    for ax, h, title in zip(axes, hint_image, titles):
        ax.imshow(h.float().cpu().numpy(), cmap="gray", vmin=0 if h.min() >= 0 else -1, vmax=1)
        ax.set_title(title, fontsize=8)
    ims = [ax.imshow(torch.zeros(4, 4, 3).numpy()) for ax in axes[len(titles):]]
    slider = selection(strengths, 1.0 if 1.0 in strengths else strengths[-1])

    def draw():
        for im, x in zip(ims, samples[slider.value]):
            im.set_data(_to_rgb(x))
        fig.suptitle(f"strength {slider.value}", fontsize=9)
        return fig

    return dashboard({"strength": slider}, draw, slider=slider)
