"""Dashboards for chapter 11b (latent diffusion, ReSample, cross-modality translation).

Built with `core.dashboard`; everything is computed before the widget is shown, and a move
only updates the image artists of one persistent figure (fast re-draws).

    resample_explorer   ReSample's hard-data-consistency period (a slider over precomputed runs)
                        beside the truth, FBP and pixel-space DPS
    xmod_viewer         cross-modality samples: CT, true MR, regression, one sample, the samples'
                        mean and per-pixel std, for each test image and sample
"""
from __future__ import annotations

import torch

from ...metrics import psnr
from .core import check_dict, check_image, check_int, dashboard, int_slider, selection


def _np(img: torch.Tensor):
    """A (H, W) tensor as a numpy array for matplotlib."""
    return img.detach().cpu().float().numpy()


def _panel_figure(n: int, titles, size: float = 1.9):
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, n, figsize=(size * n, size + 0.5))
    ims = []
    for ax, title in zip(axes, titles):
        ims.append(ax.imshow(_np(torch.zeros(2, 2)), cmap="gray", vmin=-1, vmax=1))
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    return fig, axes, ims


def resample_explorer(runs: dict, truth: torch.Tensor, baselines: dict, every=None):
    """A slider over ReSample's consistency period.

    runs: {every: (1, H, W) image} (every = 0 means "never": latent DPS alone), e.g. from
    diffedu.viz.widgets.posterior.sweep; truth: (1, H, W); baselines: {name: (1, H, W) image}
    (FBP, DPS, ...), drawn beside. The titles give each image's PSNR against the truth.
    """
    runs = check_dict("runs", runs, "{every: (1, H, W) image}")
    check_image("truth", truth)
    baselines = check_dict("baselines", baselines, "{name: (1, H, W) image}")
    for k, v in {**{f"runs[{e}]": r for e, r in runs.items()}, **{f"baselines[{n}]": b for n, b in baselines.items()}}.items():
        check_image(k, v)
        if v.shape != truth.shape:
            raise ValueError(f"{k} must have truth's shape {tuple(truth.shape)}, got {tuple(v.shape)}")
    p = lambda img: float(psnr(img[None].clamp(-1, 1), truth[None]))          # noqa: E731
    names = ["truth", *baselines, "ReSample"]
    fig, axes, ims = _panel_figure(len(names), names)
    ims[0].set_data(_np(truth[0]))
    for k, (name, img) in enumerate(baselines.items(), start=1):
        ims[k].set_data(_np(img[0].clamp(-1, 1)))
        axes[k].set_title(f"{name}\n{p(img):.1f} dB", fontsize=8)
    keys = sorted(runs)
    slider = selection(keys, keys[len(keys) // 2] if every is None else every)

    def draw():
        e = slider.value
        ims[-1].set_data(_np(runs[e][0].clamp(-1, 1)))
        axes[-1].set_title(f"ReSample, {'no consistency' if e == 0 else f'every {e}'}\n{p(runs[e]):.1f} dB",
                           fontsize=8)
        return fig
    return dashboard({"consistency every": slider}, draw, slider=slider, figure=fig)


def xmod_viewer(ct: torch.Tensor, mr: torch.Tensor, regression: torch.Tensor, samples: torch.Tensor,
                image: int = 0):
    """Cross-modality samples. ct, mr, regression: (B, 1, H, W); samples: (S, B, 1, H, W) from
    diffedu.medical.cross_modality.translate. Sliders pick the test image and the sample; the
    panels show CT, true MR, the regression, that sample, the mean and the std of all samples
    (std on its own colour scale, the brighter the more the samples disagree)."""
    for name, v in (("ct", ct), ("mr", mr), ("regression", regression)):
        check_image(name, v, batched=True)
        if v.shape != ct.shape:
            raise ValueError(f"{name} must have ct's shape {tuple(ct.shape)}, got {tuple(v.shape)}")
    if samples.ndim != 5 or tuple(samples.shape[1:]) != tuple(ct.shape):
        raise ValueError(f"samples must have shape (S, *ct.shape) = (S, {', '.join(map(str, ct.shape))}), "
                         f"got {tuple(samples.shape)}")
    B, S = len(ct), len(samples)
    check_int("image", image, 0, B - 1)
    mean, std = samples.mean(0), samples.std(0)
    names = ["CT (input)", "MR (truth)", "regression", "sample", "mean of samples", "std of samples"]
    fig, axes, ims = _panel_figure(len(names), names)
    ims[-1].set_cmap("magma")
    ims[-1].set_clim(0, max(float(std.max()), 1e-6))
    img_slider, smp_slider = int_slider(image, 0, B - 1), int_slider(0, 0, S - 1)

    def draw():
        b, s = img_slider.value, smp_slider.value
        for im, v in zip(ims, (ct[b], mr[b], regression[b], samples[s, b], mean[b], std[b])):
            im.set_data(_np(v[0]))
        axes[3].set_title(f"sample {s}", fontsize=8)
        return fig
    return dashboard({"test image": img_slider, "sample": smp_slider}, draw, image_slider=img_slider,
                     sample_slider=smp_slider, figure=fig)
