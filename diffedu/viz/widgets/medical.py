"""Dashboards for chapter 11 (sparse-view CT and accelerated MRI).

Built with `core.dashboard`; every reconstruction is computed (or loaded) before the widget
is shown, and a move only updates the image artists of one persistent figure.

    ct_views_explorer    a slider over the number of CT views: truth, FBP and a diffusion
                         reconstruction, with each one's PSNR
    mri_explorer         a slider over the MRI acceleration: the k-space mask, zero-filled
                         and a diffusion reconstruction
    lambda_explorer      a slider over the blend weight lambda of Song et al.'s sampler
"""
from __future__ import annotations

import torch

from ...metrics import psnr
from .core import check_dict, check_image, dashboard, selection


def _figure(titles, size: float = 2.0):
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(titles), figsize=(size * len(titles), size + 0.5))
    ims = []
    for ax, title in zip(axes, titles):
        ims.append(ax.imshow(torch.zeros(2, 2), cmap="gray", vmin=-1, vmax=1))
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    return fig, axes, ims


def _check_runs(name: str, runs, truth: torch.Tensor) -> dict:
    """{setting: (1, H, W) image} with truth's shape; returns it as a dict with float values."""
    runs = check_dict(name, runs, "{setting: (1, H, W) image}")
    for k, v in runs.items():
        check_image(f"{name}[{k!r}]", v)
        if v.shape != truth.shape:
            raise ValueError(f"{name}[{k!r}] must have truth's shape {tuple(truth.shape)}, got {tuple(v.shape)}")
    return {k: v.float() for k, v in runs.items()}


def _psnr(img: torch.Tensor, truth: torch.Tensor) -> float:
    return float(psnr(img[None].clamp(-1, 1), truth[None]))


def _same_keys(a_name, a, b_name, b):
    if set(a) != set(b):
        raise ValueError(f"{a_name} and {b_name} must have the same settings, got {sorted(a)} and {sorted(b)}")


def ct_views_explorer(truth: torch.Tensor, baseline: dict, diffusion: dict, *, method: str = "DDS",
                      views=None):
    """A slider over the number of CT views. truth: (1, H, W); baseline, diffusion:
    {n_views: (1, H, W) image} (FBP and the diffusion solver named `method`, same keys).
    Titles give each reconstruction's PSNR against the truth."""
    check_image("truth", truth)
    truth = truth.float()
    baseline, diffusion = _check_runs("baseline", baseline, truth), _check_runs("diffusion", diffusion, truth)
    _same_keys("baseline", baseline, "diffusion", diffusion)
    fig, axes, ims = _figure(["truth", "FBP", method])
    ims[0].set_data(truth[0])
    keys = sorted(baseline)
    slider = selection(keys, keys[len(keys) // 2] if views is None else views)

    def draw():
        v = slider.value
        for k, (name, runs) in enumerate((("FBP", baseline), (method, diffusion)), start=1):
            ims[k].set_data(runs[v][0].clamp(-1, 1))
            axes[k].set_title(f"{name}, {v} views\n{_psnr(runs[v], truth):.1f} dB", fontsize=8)
        return fig
    return dashboard({"views": slider}, draw, slider=slider, figure=fig)


def mri_explorer(truth: torch.Tensor, masks: dict, baseline: dict, diffusion: dict, *, method: str = "DDS",
                 acceleration=None):
    """A slider over the MRI acceleration R. truth: (1, H, W); masks: {R: (H, W) 0/1 mask,
    centred k-space layout}; baseline (zero-filled), diffusion: {R: (1, H, W) image}."""
    check_image("truth", truth)
    truth = truth.float()
    masks = check_dict("masks", masks, "{R: (H, W) mask}")
    for k, m in masks.items():
        if not isinstance(m, torch.Tensor) or tuple(m.shape) != tuple(truth.shape[1:]):
            raise ValueError(f"masks[{k!r}] must be an (H, W) = {tuple(truth.shape[1:])} tensor, got "
                             f"{tuple(m.shape) if isinstance(m, torch.Tensor) else type(m).__name__}")
    baseline, diffusion = _check_runs("baseline", baseline, truth), _check_runs("diffusion", diffusion, truth)
    _same_keys("masks", masks, "baseline", baseline)
    _same_keys("baseline", baseline, "diffusion", diffusion)
    fig, axes, ims = _figure(["k-space mask", "truth", "zero-filled", method])
    ims[0].set_clim(0, 1)
    ims[1].set_data(truth[0])
    keys = sorted(masks)
    slider = selection(keys, keys[len(keys) // 2] if acceleration is None else acceleration)

    def draw():
        r = slider.value
        m = masks[r].float()
        ims[0].set_data(m)
        axes[0].set_title(f"mask, {r}x\n{int(m[0].sum())} of {m.shape[1]} lines", fontsize=8)
        for k, (name, runs) in enumerate((("zero-filled", baseline), (method, diffusion)), start=2):
            ims[k].set_data(runs[r][0].clamp(-1, 1))
            axes[k].set_title(f"{name}\n{_psnr(runs[r], truth):.1f} dB", fontsize=8)
        return fig
    return dashboard({"acceleration": slider}, draw, slider=slider, figure=fig)


def lambda_explorer(truth: torch.Tensor, runs: dict, *, lam=None):
    """A slider over Song et al.'s blend weight lambda. truth: (1, H, W); runs: {lambda:
    (1, H, W) reconstruction}. Beside it: the error |x - truth| (brighter = larger)."""
    check_image("truth", truth)
    truth = truth.float()
    runs = _check_runs("runs", runs, truth)
    fig, axes, ims = _figure(["truth", "Song et al.", "|error|"])
    ims[0].set_data(truth[0])
    ims[2].set_clim(0, 1)
    keys = sorted(runs)
    slider = selection(keys, keys[-1] if lam is None else lam)

    def draw():
        v = slider.value
        img = runs[v][0].clamp(-1, 1)
        ims[1].set_data(img)
        ims[2].set_data((img - truth[0]).abs())
        axes[1].set_title(f"lambda = {v:g}\n{_psnr(runs[v], truth):.1f} dB", fontsize=8)
        return fig
    return dashboard({"lambda": slider}, draw, slider=slider, figure=fig)
