"""Dashboards for chapter 14b (manifold and invariant data).

Same pattern as the other widget modules: the expensive work (an ODE or a reverse diffusion with its
trajectory) happens once, before the widget is shown; a slider move only swaps image data or point offsets
of one persistent figure.

    chart_density      the density of points on S^2 or T^2 as an image in an equal-area chart
    plot_chart         that image on a matplotlib axis, labelled
    density_player     slider over t: the densities of several flows' trajectories, side by side
    polygon_player     slider over the reverse steps: point clouds being denoised, one row per model
"""
from __future__ import annotations

import math

import torch

from ..._validate import check_choice, check_int, check_tensor
from .core import check_dict, dashboard, int_slider, moving

CHARTS = {"sphere": ((-math.pi, math.pi), (-1.0, 1.0), "longitude", "z = sin(latitude)"),
          "torus": ((0.0, 2 * math.pi), (0.0, 2 * math.pi), "theta_1", "theta_2")}


def chart_density(x: torch.Tensor, manifold: str, bins: int = 48) -> torch.Tensor:
    """A normalised histogram (bins, bins) of points x: (B, 3) on S^2 or (B, 2) on T^2 in an equal-area chart:
    (longitude, z) on the sphere (Archimedes: the uniform law is flat there), the angle square on the torus.
    Rows index the second coordinate (for imshow with origin="lower")."""
    check_choice("manifold", manifold, CHARTS)
    check_tensor("x", x, ndim=2, finite=True, nonempty=True)
    bins = check_int("bins", bins, lo=2, hi=512)
    x = x.double()
    if manifold == "sphere":
        u, v = torch.atan2(x[:, 1], x[:, 0]), x[:, 2].clamp(-1, 1)
    else:
        u, v = torch.remainder(x[:, 0], 2 * math.pi), torch.remainder(x[:, 1], 2 * math.pi)
    (u0, u1), (v0, v1) = CHARTS[manifold][:2]
    iu = ((u - u0) / (u1 - u0) * bins).long().clamp(0, bins - 1)
    iv = ((v - v0) / (v1 - v0) * bins).long().clamp(0, bins - 1)
    h = torch.bincount(iv * bins + iu, minlength=bins * bins).reshape(bins, bins).double()
    return h / h.sum() * bins * bins                      # mean 1: a uniform law is 1 everywhere


def plot_chart(ax, x: torch.Tensor, manifold: str, title: str = "", bins: int = 48, vmax: float = 6.0):
    """Draw `chart_density(x, manifold, bins)` on the axis `ax` (density relative to uniform, clipped at vmax)."""
    (u0, u1), (v0, v1), ulab, vlab = CHARTS[manifold] if manifold in CHARTS else check_choice("manifold", manifold, CHARTS)
    im = ax.imshow(chart_density(x, manifold, bins).numpy(), origin="lower", extent=(u0, u1, v0, v1), aspect="auto",
                   vmin=0, vmax=vmax, cmap="magma")
    ax.set(title=title, xlabel=ulab, ylabel=vlab)
    return im


def density_player(trajectories: dict, manifold: str, frames: int = 21, bins: int = 40, vmax: float = 6.0):
    """Slider over t in [0, 1]: for each {title: trajectory (S + 1, B, d)} (points on `manifold` from t = 0 to 1,
    e.g. `sample_rfm(..., return_trajectory=True)[1]`), the chart density at that time, side by side.
    All frames are computed here; a move only swaps each image's data. Returns the dashboard VBox."""
    import matplotlib.pyplot as plt
    trajectories = check_dict("trajectories", trajectories, "{title: (S + 1, B, d) tensor}")
    check_choice("manifold", manifold, CHARTS)
    frames = check_int("frames", frames, lo=2, hi=201)
    cache = {}
    for title, xs in trajectories.items():
        check_tensor(f"trajectories[{title!r}]", xs, ndim=3, nonempty=True)
        idx = torch.linspace(0, len(xs) - 1, frames).round().long()
        cache[title] = [chart_density(xs[i], manifold, bins).numpy() for i in idx]
    (u0, u1), (v0, v1), ulab, vlab = CHARTS[manifold]
    fig, axes = plt.subplots(1, len(cache), figsize=(3.6 * len(cache), 3.2), squeeze=False)
    plt.close(fig)
    ims = []
    for ax, (title, fr) in zip(axes[0], cache.items()):
        ims.append(ax.imshow(fr[0], origin="lower", extent=(u0, u1, v0, v1), aspect="auto", vmin=0, vmax=vmax,
                             cmap="magma"))
        ax.set(title=title, xlabel=ulab, ylabel=vlab)
    step = int_slider(frames - 1, 0, frames - 1)
    sup = fig.suptitle(" ")
    fig.tight_layout()                                            # nothing outside the canvas: no crop, blitting works
    moving(fig, ims + [sup])

    def draw():
        for im, fr in zip(ims, cache.values()):
            im.set_data(fr[step.value])
        sup.set_text(f"t = {step.value / (frames - 1):.2f} (0: uniform noise, 1: data)")
        return fig
    return dashboard({"frame": step}, draw, slider=step, cache=cache, figure=fig)


def polygon_player(trajectories: dict, clouds: int = 4, lim: float = 2.0):
    """Slider over the reverse steps: `clouds` point clouds of each {title: trajectory (S + 1, B, N, 2)} (e.g.
    `sample_edm(..., return_trajectory=True)[1]`, noise first), one row per title. A move only moves points."""
    import matplotlib.pyplot as plt
    trajectories = check_dict("trajectories", trajectories, "{title: (S + 1, B, N, 2) tensor}")
    clouds = check_int("clouds", clouds, lo=1, hi=12)
    lengths = set()
    for title, xs in trajectories.items():
        check_tensor(f"trajectories[{title!r}]", xs, ndim=4, nonempty=True)
        if xs.shape[-1] != 2 or xs.shape[1] < clouds:
            raise ValueError(f"trajectories[{title!r}] must be (S + 1, B, N, 2) with B >= clouds={clouds}, "
                             f"got {tuple(xs.shape)}")
        lengths.add(len(xs))
    if len(lengths) != 1:
        raise ValueError(f"all trajectories must have the same number of steps, got lengths {sorted(lengths)}")
    S = lengths.pop() - 1
    fig, axes = plt.subplots(len(trajectories), clouds, figsize=(2.2 * clouds, 2.3 * len(trajectories)), squeeze=False)
    plt.close(fig)
    dots = []
    for r, (title, xs) in enumerate(trajectories.items()):
        for c in range(clouds):
            ax = axes[r][c]
            dots.append((ax.scatter(*xs[0, c].T.numpy(), s=18), xs[:, c].numpy()))
            ax.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal", xticks=[], yticks=[])
        axes[r][0].set_ylabel(title)
    step = int_slider(S, 0, S)
    sup = fig.suptitle(" ")
    fig.tight_layout()
    moving(fig, [dot for dot, _ in dots] + [sup])

    def draw():
        for dot, xs in dots:
            dot.set_offsets(xs[step.value])
        sup.set_text(f"reverse step {step.value} of {S} ({'noise' if step.value == 0 else 'sample' if step.value == S else '...'})")
        return fig
    return dashboard({"step": step}, draw, slider=step, figure=fig)
