"""Widgets of chapter 10 (blind and real-world restoration), on precomputed results:

    kernel_trajectory_explorer   a step slider over a Blind-DPS run: the kernel estimate K(k0_hat)
                                 and the image estimate x0_hat at that step, next to the true kernel
    w_explorer                   a w slider over StableSR-style restorations: the images, and the
                                 distortion / perceptual-distance curve with the current w marked

Both update the artists of one persistent figure (no re-plotting), so a move costs one canvas
draw.
"""
from __future__ import annotations

import torch

from ..._validate import check_int, check_tensor
from .core import check_dict, dashboard, int_slider, selection


def kernel_trajectory_explorer(kernels: torch.Tensor, x0s: torch.Tensor, true_kernel: torch.Tensor | None = None,
                               truth: torch.Tensor | None = None, step: int | None = None):
    """kernels: (S, k, k) kernel estimates of one image at each of S steps; x0s: (S, C, H, W)
    its x0_hat at each step; true_kernel: (k, k); truth: (C, H, W). The slider picks the step
    (0 = the first, noisiest)."""
    import matplotlib.pyplot as plt
    check_tensor("kernels", kernels, ndim=3)
    check_tensor("x0s", x0s, ndim=4)
    S = len(kernels)
    if len(x0s) != S or S == 0:
        raise ValueError(f"kernels and x0s must hold the same number (> 0) of steps, got {S} and {len(x0s)}")
    step = S - 1 if step is None else check_int("step", step, lo=0, hi=S - 1)
    panels = 2 + (true_kernel is not None) + (truth is not None)
    fig, ax = plt.subplots(1, panels, figsize=(2.2 * panels, 2.4))
    plt.close(fig)
    vmax = float(kernels.max())
    im_k = ax[0].imshow(kernels[step].cpu().numpy(), cmap="magma", vmin=0, vmax=vmax)
    im_x = ax[1].imshow(x0s[step, 0].cpu().clamp(-1, 1).numpy(), cmap="gray", vmin=-1, vmax=1)
    j = 2
    if true_kernel is not None:
        ax[j].imshow(true_kernel.cpu().numpy(), cmap="magma", vmin=0, vmax=vmax)
        ax[j].set_title("true kernel", fontsize=9)
        j += 1
    if truth is not None:
        ax[j].imshow(truth[0].cpu().clamp(-1, 1).numpy(), cmap="gray", vmin=-1, vmax=1)
        ax[j].set_title("truth", fontsize=9)
    for a in ax:
        a.set_xticks([])
        a.set_yticks([])
    err = None
    if true_kernel is not None:
        err = ((kernels - true_kernel).flatten(1).norm(dim=1) / true_kernel.norm()).tolist()
    slider = int_slider(step, 0, S - 1, continuous=True)

    def draw():
        s = slider.value
        im_k.set_data(kernels[s].cpu().numpy())
        im_x.set_data(x0s[s, 0].cpu().clamp(-1, 1).numpy())
        ax[0].set_title(f"kernel, step {s + 1}/{S}" + (f"\nerror {err[s]:.2f}" if err else ""), fontsize=9)
        ax[1].set_title("x0_hat", fontsize=9)
        return fig

    return dashboard({"step": slider}, draw, slider=slider, errors=err)


def w_explorer(samples: dict, truth: torch.Tensor, distortion: dict, perceptual: dict, w: float | None = None,
               n_show: int = 6):
    """samples: {w: (B, C, H, W) restorations}; truth: (B, C, H, W); distortion, perceptual:
    {w: number} (e.g. 1 - SSIM and the classifier feature distance). The slider picks w; the
    right panel draws the curve with the current w marked."""
    import matplotlib.pyplot as plt
    samples = check_dict("samples", samples, "{w: (B, C, H, W) images}")
    ws = sorted(samples)
    for name, d in (("distortion", distortion), ("perceptual", perceptual)):
        if set(check_dict(name, d, "{w: number}")) != set(ws):
            raise ValueError(f"{name} must have one value per w of samples {ws}, got keys {sorted(d)}")
    check_tensor("truth", truth, ndim=4)
    n = min(int(n_show), len(truth))
    fig = plt.figure(figsize=(2.0 * n / 2 + 4.2, 3.0))
    plt.close(fig)
    grid = fig.add_gridspec(2, n + 3)
    img_ax = [fig.add_subplot(grid[r, c]) for r in range(2) for c in range(n)]
    curve = fig.add_subplot(grid[:, n:])
    ims = []
    for c in range(n):
        img_ax[c].imshow(truth[c, 0].cpu().numpy(), cmap="gray", vmin=-1, vmax=1)
        ims.append(img_ax[n + c].imshow(samples[ws[0]][c, 0].cpu().clamp(-1, 1).numpy(), cmap="gray", vmin=-1, vmax=1))
    for a in img_ax:
        a.set_xticks([])
        a.set_yticks([])
    img_ax[0].set_ylabel("truth", fontsize=8)
    xs, ys = [distortion[v] for v in ws], [perceptual[v] for v in ws]
    curve.plot(xs, ys, "o-", color="0.5")
    for v, a, b in zip(ws, xs, ys):
        curve.annotate(f"{v:g}", (a, b), fontsize=7, xytext=(3, 3), textcoords="offset points")
    (mark,) = curve.plot([xs[0]], [ys[0]], "o", color="C3", ms=10)
    curve.set(xlabel="distortion", ylabel="perceptual distance")
    slider = selection(ws, w, continuous=True)

    def draw():
        v = slider.value
        for c in range(n):
            ims[c].set_data(samples[v][c, 0].cpu().clamp(-1, 1).numpy())
        img_ax[n].set_ylabel(f"w = {v:g}", fontsize=8)
        mark.set_data([distortion[v]], [perceptual[v]])
        curve.set_title(f"w = {v:g}", fontsize=9)
        return fig

    return dashboard({"w": slider}, draw, slider=slider)
