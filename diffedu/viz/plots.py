"""Plotting helpers shared by the chapters and widgets (matplotlib, imported lazily)."""
from __future__ import annotations

import torch


def _plt():
    import matplotlib.pyplot as plt
    return plt


def plot_points(ax, x: torch.Tensor, title: str | None = None, lim: float = 3.0, color="C0", s=2, alpha=0.5, **kw):
    """Scatter points x: (N, 2) on a square [-lim, lim]^2 axis."""
    x = x.detach().cpu()
    ax.scatter(x[:, 0], x[:, 1], s=s, alpha=alpha, color=color, **kw)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def to_image(x: torch.Tensor):
    """(C, H, W) in [-1, 1] -> numpy (H, W) or (H, W, 3) in [0, 1] for imshow."""
    x = ((x.detach().cpu().float() + 1) / 2).clamp(0, 1)
    return x[0].numpy() if x.shape[0] == 1 else x.permute(1, 2, 0).numpy()


def show_image(ax, x: torch.Tensor, title: str | None = None):
    ax.imshow(to_image(x), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def image_grid(x: torch.Tensor, nrow: int = 8, pad: int = 1) -> torch.Tensor:
    """Tile images (B, C, H, W) into one (C, H', W') image, `nrow` per row, padded with -1."""
    B, C, H, W = x.shape
    ncol = -(-B // nrow)
    grid = torch.full((C, ncol * (H + pad) + pad, nrow * (W + pad) + pad), -1.0)
    for k in range(B):
        r, c = divmod(k, nrow)
        grid[:, pad + r * (H + pad): pad + r * (H + pad) + H, pad + c * (W + pad): pad + c * (W + pad) + W] = x[k].cpu()
    return grid


def plot_schedules(schedules: dict, axes=None):
    """alpha_bar and log-SNR against t/T for a dict {name: NoiseSchedule}."""
    plt = _plt()
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for name, s in schedules.items():
        u = s.t_continuous.numpy()
        axes[0].plot(u, s.alpha_bar.numpy(), label=name)
        axes[1].plot(u, s.log_snr.numpy(), label=name)
    axes[0].set(xlabel="t / T", ylabel=r"$\bar\alpha_t$", title="signal kept")
    lam = [float(v) for s in schedules.values() for v in (s.log_snr.min(), s.log_snr.max())]
    lo, hi = (min(lam), max(lam)) if lam else (-15.0, 12.0)
    axes[1].set(xlabel="t / T", ylabel=r"$\log \mathrm{SNR}_t$", title="log signal-to-noise ratio",
                ylim=(lo - 1, hi + 1))        # every curve whole (cosine reaches about -20)
    axes[0].legend(fontsize=8)
    return axes


def plot_trajectories(ax, xs: torch.Tensor, n: int = 30, color="k", lw=0.6, alpha=0.5):
    """Draw the paths of the first n points of a trajectory xs: (S+1, B, 2)."""
    xs = xs.detach().cpu()
    for j in range(min(n, xs.shape[1])):
        ax.plot(xs[:, j, 0], xs[:, j, 1], color=color, lw=lw, alpha=alpha)
    return ax


def density_contour(ax, log_prob, lim: float = 3.0, n: int = 120, levels: int = 8, cmap="Greys"):
    """Contours of exp(log_prob) on a grid; log_prob maps (M, 2) float64 -> (M,)."""
    g = torch.linspace(-lim, lim, n, dtype=torch.float64)
    X, Y = torch.meshgrid(g, g, indexing="xy")
    P = log_prob(torch.stack([X.reshape(-1), Y.reshape(-1)], 1)).exp().reshape(n, n)
    ax.contour(X.numpy(), Y.numpy(), P.numpy(), levels=levels, cmap=cmap, linewidths=0.7)
    return ax
