"""Widget of chapter 15 (semantic correspondence): pick a source keypoint, a step t and a
layer; see the cosine-similarity map of its DIFT feature over the target image, the match
(its argmax) and the true point. Every feature map is computed before the widget is shown
(`correspondence.dift.dift_features`); a move only re-draws."""
from __future__ import annotations

import torch

from ..._validate import check_tensor
from .core import dashboard, dropdown, selection

__all__ = ["correspondence_explorer"]


def _image(x: torch.Tensor):
    return ((x.permute(1, 2, 0).clamp(-1, 1) + 1) / 2).numpy()          # (C, H, W) in [-1, 1] -> (H, W, C) in [0, 1]


def correspondence_explorer(src: torch.Tensor, tgt: torch.Tensor, points: torch.Tensor, true: torch.Tensor,
                            features: dict, names=None, alpha: float = 0.1, box_size: float | None = None,
                            t=None, layer=None):
    """Explore DIFT matching on one image pair.

    src, tgt: (3, H, W) images in [-1, 1]; points, true: (K, 2) source keypoints and their
    true positions in the target (pixel (x, y)); features: {(t, layer): (2, C, H, W)} the
    feature maps of [src, tgt] (every pair of a t and a layer that the sliders can reach);
    names: K keypoint names for the dropdown; alpha, box_size: draw the PCK@alpha circle of
    radius alpha * box_size around the true point; t, layer: where the sliders start (default: the
    middle t, the first layer). Returns the dashboard (a VBox).
    """
    from ...correspondence.dift import cosine_map, sample_at
    check_tensor("src", src, ndim=3)
    check_tensor("tgt", tgt, ndim=3)
    check_tensor("points", points, ndim=2)
    if true.shape != points.shape:
        raise ValueError(f"true must have the shape of points {tuple(points.shape)}, got {tuple(true.shape)}")
    if not isinstance(features, dict) or not features:
        raise ValueError("features must be a non-empty dict {(t, layer): (2, C, H, W) feature maps}")
    ts = sorted({t for t, _ in features})
    layers = list(dict.fromkeys(layer for _, layer in features))
    missing = [(t, layer) for t in ts for layer in layers if (t, layer) not in features]
    if missing:
        raise ValueError(f"features must hold every (t, layer) pair of its t's and layers; missing {missing[:4]}")
    names = list(names) if names is not None else [f"point {k}" for k in range(len(points))]
    if len(names) != len(points) or len(set(names)) != len(names):
        raise ValueError(f"names must be {len(points)} distinct keypoint names, got {names!r}")
    point = dropdown(names)
    if layer is not None and layer not in layers:
        raise ValueError(f"layer {layer!r} has no features; the features hold layers {layers}")
    t_slider = selection(ts, ts[len(ts) // 2] if t is None else t, continuous=False)
    layer = dropdown(layers, layer)

    def draw():
        import matplotlib.pyplot as plt
        k, feats = names.index(point.value), features[t_slider.value, layer.value]
        sim = cosine_map(sample_at(feats[0], points[k:k + 1]), feats[1])[0]         # (H, W)
        best = int(sim.argmax())
        match = (best % sim.shape[1] + 0.5, best // sim.shape[1] + 0.5)
        H, W = src.shape[-2:]
        fig, ax = plt.subplots(1, 3, figsize=(9, 3.2))
        ax[0].imshow(_image(src), extent=(0, W, H, 0))
        ax[0].plot(*points[k].tolist(), "o", mfc="none", mec="yellow", ms=10)
        ax[1].imshow(_image(tgt), extent=(0, W, H, 0))
        ax[1].plot(*match, "x", c="red", ms=10, mew=2)
        ax[1].plot(*true[k].tolist(), "o", mfc="none", mec="lime", ms=10)
        ax[2].imshow(sim.numpy(), extent=(0, W, H, 0), cmap="magma", vmin=-1, vmax=1)
        ax[2].plot(*match, "x", c="cyan", ms=10)
        if box_size is not None:
            ax[1].add_patch(plt.Circle(true[k].tolist(), alpha * box_size, fill=False, ec="lime", ls="--"))
        err = ((torch.tensor(match) - true[k]) ** 2).sum().sqrt().item()
        ax[0].set_title(f"source: {names[k]}", fontsize=9)
        ax[1].set_title(f"target: match x, truth o ({err:.1f} px)", fontsize=9)
        ax[2].set_title(f"cosine similarity, t = {t_slider.value}, {layer.value}", fontsize=9)
        for a in ax:
            a.axis("off")
        plt.close(fig)
        return fig

    return dashboard({"keypoint": point, "t": t_slider, "layer": layer}, draw, features=features)
