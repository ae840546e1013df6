"""Dashboards for chapter 09 (diffusion posterior sampling).

Built with `core.dashboard`: the samplers run once per setting, before the widget is shown
(or on the first visit of a setting), and are cached, so moving a slider only re-draws.

    dps_zeta_explorer    DPS's step size zeta against the exact posterior of a 2D mixture
    repaint_explorer     RePaint's jump length / count: the time-travel schedule and the result
"""
from __future__ import annotations

import torch

from .. import plots
from ..._validate import check_callable, check_positive_int, check_real, check_tensor
from ...inverse.posterior import repaint_schedule
from ...metrics import psnr
from .core import check_dict, check_image, check_options, check_points, dashboard, moving, selection

_LOG_PROB = "log_prob(x: (M, 2) float64) -> (M,)"


def mode_fractions(x: torch.Tensor, modes: torch.Tensor) -> torch.Tensor:
    """Fraction of the points x: (N, D) nearest to each of the modes: (K, D) -> (K,)."""
    check_tensor("x", x, ndim=2)
    check_tensor("modes", modes, ndim=2)
    if len(x) == 0 or len(modes) == 0 or x.shape[1] != modes.shape[1]:
        raise ValueError(f"x: (N, D) and modes: (K, D) must be non-empty with the same D, "
                         f"got x {tuple(x.shape)} and modes {tuple(modes.shape)}")
    k = torch.cdist(x.double(), modes.double()).argmin(1)
    return torch.bincount(k, minlength=len(modes)).double() / len(x)


def sweep(sample_fn, values) -> dict:
    """{v: sample_fn(v)} for each v in values: the precomputation behind a slider."""
    check_callable("sample_fn", sample_fn, "sample_fn(v) -> result")
    try:
        values = list(values)
    except TypeError:
        raise TypeError(f"values must be a sequence of slider values, got {type(values).__name__}") from None
    if not values:
        raise ValueError("values must be a non-empty sequence of slider values, got an empty one")
    return {v: sample_fn(v) for v in values}


def dps_zeta_explorer(samples: dict, log_prob, modes: torch.Tensor | None = None,
                      mode_weights: torch.Tensor | None = None, reference: torch.Tensor | None = None,
                      center=(0.0, 0.0), lim: float = 20.0, n_modes: int = 4, zeta: float | None = None):
    """A zeta slider over precomputed DPS samples of a 2D posterior.

    samples: {zeta: (N, 2) samples} (e.g. from `sweep`); log_prob: (M, 2) float64 -> (M,), the
    exact posterior's log-density, drawn as contours around `center` +- lim; modes: (K, 2)
    the mixture's component means and mode_weights: (K,) the exact posterior weights: a bar
    chart then compares each sampler's fraction of samples nearest each of the `n_modes`
    heaviest modes with the exact weights; reference: (M, 2) exact posterior samples, for the
    sliced Wasserstein distance in the title. Everything is computed here, once.
    """
    import matplotlib.pyplot as plt
    from ...metrics import sliced_wasserstein

    samples = check_dict("samples", samples, "{zeta: (N, 2) samples}")
    for z, x in samples.items():
        check_points(f"samples[{z}]", x)
    check_options("samples' keys (zeta)", list(samples))
    check_callable("log_prob", log_prob, _LOG_PROB)
    if (modes is None) != (mode_weights is None):
        raise ValueError("pass modes and mode_weights together (or neither), got "
                         f"modes={'None' if modes is None else 'a tensor'}, "
                         f"mode_weights={'None' if mode_weights is None else 'a tensor'}")
    if modes is not None:
        check_points("modes", modes)
        check_tensor("mode_weights", mode_weights, ndim=1)
        if len(mode_weights) != len(modes):
            raise ValueError(f"mode_weights must hold one weight per mode ({len(modes)}), got {len(mode_weights)}")
    check_points("reference", reference, optional=True)
    check_real("lim", lim, lo=0, lo_open=True)
    check_positive_int("n_modes", n_modes)
    if zeta is not None:
        check_real("zeta", zeta)
    zetas = sorted(samples)
    cx, cy = float(center[0]), float(center[1])
    n = 120
    gx = torch.linspace(cx - lim, cx + lim, n, dtype=torch.float64)
    gy = torch.linspace(cy - lim, cy + lim, n, dtype=torch.float64)
    X, Y = torch.meshgrid(gx, gy, indexing="xy")
    dens = log_prob(torch.stack([X.reshape(-1), Y.reshape(-1)], 1)).exp().reshape(n, n)
    sw = {z: (sliced_wasserstein(samples[z].float(), reference.float(), 256, torch.Generator().manual_seed(0))
              if reference is not None else None) for z in zetas}
    top = torch.argsort(mode_weights, descending=True)[:n_modes] if modes is not None else None
    frac = {z: mode_fractions(samples[z], modes)[top] for z in zetas} if modes is not None else {}

    slider = selection(zetas, zeta, continuous=True)

    # One figure, built once (contours, axes, exact weights); a move updates the samples, the DPS
    # bars and the title, blitted (core.moving).
    ncol = 2 if modes is not None else 1
    fig, ax = plt.subplots(1, ncol, figsize=(4.3 * ncol + 0.5, 4), squeeze=False)
    ax = ax[0]
    ax[0].contour(X.numpy(), Y.numpy(), dens.numpy(), levels=8, cmap="Greys", linewidths=0.7)
    dots = ax[0].scatter([], [], s=3, alpha=0.4, color="C3")
    ax[0].set(xlim=(cx - lim, cx + lim), ylim=(cy - lim, cy + lim), aspect="equal", xticks=[], yticks=[])
    ax[0].set_title(" ", fontsize=10)
    bars = []
    if modes is not None:
        k = torch.arange(len(top)).numpy()
        ax[1].bar(k - 0.2, mode_weights[top].numpy(), width=0.4, color="0.5", label="exact posterior")
        bars = list(ax[1].bar(k + 0.2, frac[zetas[0]].numpy(), width=0.4, color="C3", label="DPS"))
        ax[1].set_xticks(k, [f"mode {int(j)}" for j in top])
        ax[1].set(ylim=(0, 1), title="weight of the heaviest modes")
        ax[1].legend(fontsize=8)
    fig.tight_layout()
    moving(fig, [dots, ax[0].title] + bars + ([ax[1].get_legend()] if bars else []))

    def draw():
        z = slider.value
        dots.set_offsets(samples[z].detach().cpu().numpy())
        ax[0].set_title(f"DPS, zeta = {z:g}" + (f": SW = {sw[z]:.2f}" if sw[z] is not None else ""), fontsize=10)
        for bar, f in zip(bars, frac.get(z, [])):
            bar.set_height(float(f))
        return fig

    return dashboard({"zeta": slider}, draw, slider=slider, sw=sw, fractions=frac)


def plot_repaint_schedule(ax, n_steps: int, jump_length: int, jump_n_sample: int, color="C0"):
    """Draw RePaint's visited levels against the step count (the paper's Fig. 3, turned)."""
    levels = repaint_schedule(n_steps, jump_length, jump_n_sample)
    ax.plot(range(len(levels)), levels, color=color, lw=1)
    ax.set(xlabel="step of the sampler", ylabel="level i (noise)", ylim=(-1.5, n_steps - 0.5))
    return levels


def repaint_explorer(run_fn, n_steps: int, jump_lengths, jump_n_samples, x_true: torch.Tensor,
                     y_show: torch.Tensor, jump_length: int | None = None, jump_n_sample: int | None = None,
                     precompute: bool = True):
    """Sliders over RePaint's jump length and jump count: the time-travel schedule, the number
    of denoiser calls, and the samples with their PSNR.

    run_fn(jump_length, jump_n_sample) -> samples (S, C, H, W) of one measured image; n_steps:
    the respaced schedule length run_fn uses; x_true: (1, C, H, W) truth; y_show: (1, C, H, W)
    the measurement drawn at image size. precompute=True runs every pair before the widget is
    shown (each move then only re-draws); False runs each pair on its first visit.
    """
    import matplotlib.pyplot as plt

    check_callable("run_fn", run_fn, "run_fn(jump_length, jump_n_sample) -> samples (S, C, H, W)")
    check_positive_int("n_steps", n_steps)
    jls, jns = check_options("jump_lengths", jump_lengths), check_options("jump_n_samples", jump_n_samples)
    for name, vals in (("jump_lengths", jls), ("jump_n_samples", jns)):
        for i, v in enumerate(vals):
            check_positive_int(f"{name}[{i}]", v)
    check_image("x_true", x_true, one=True)
    check_image("y_show", y_show, one=True)
    cache = {}

    def result(jl, jn):
        if (jl, jn) not in cache:
            x = run_fn(jl, jn)
            if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1:] != x_true.shape[1:]:
                raise ValueError(f"run_fn({jl}, {jn}) must return samples (S, C, H, W) like x_true "
                                 f"{tuple(x_true.shape[1:])}, got "
                                 f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
            x = x.detach().clamp(-1, 1)
            cache[jl, jn] = (x, psnr(x.double(), x_true.double().expand_as(x)))
        return cache[jl, jn]

    if precompute:
        for jl in jls:
            for jn in jns:
                result(jl, jn)
    s_len = selection(jls, jump_length if jump_length in jls else jls[0])
    s_n = selection(jns, jump_n_sample if jump_n_sample in jns else jns[0])

    panel = {}                                            # one figure, built at the first draw (S is known then)

    def build(S):
        fig = plt.figure(figsize=(2.2 + 1.3 * (S + 2), 3.2))
        gs = fig.add_gridspec(1, S + 4, width_ratios=[2.4, 0.2] + [1] * (S + 2))
        ax0 = fig.add_subplot(gs[0])
        plot_repaint_schedule(ax0, n_steps, s_len.value, s_n.value)
        ax0.set_title(" ", fontsize=10)
        plots.show_image(fig.add_subplot(gs[2]), y_show[0].clamp(-1, 1), "measured")
        arts = [plots.show_image(fig.add_subplot(gs[3 + k]), x_true[0], " ").images[0] for k in range(S)]
        plots.show_image(fig.add_subplot(gs[3 + S]), x_true[0], "truth")
        sup = fig.suptitle(" ", fontsize=10)
        fig.tight_layout()
        moving(fig, [ax0] + arts + [a.axes.title for a in arts] + [sup])     # the schedule panel is re-drawn whole
        panel.update(fig=fig, ax0=ax0, arts=arts, sup=sup, S=S)

    def draw():
        jl, jn = s_len.value, s_n.value
        x, p = result(jl, jn)
        if panel.get("S") != len(x):
            build(len(x))
        ax0 = panel["ax0"]
        ax0.cla()
        levels = plot_repaint_schedule(ax0, n_steps, jl, jn)
        calls = sum(b < a for a, b in zip(levels[:-1], levels[1:]))
        ax0.set_title(f"schedule: {calls} denoiser calls", fontsize=10)
        for k, art in enumerate(panel["arts"]):
            art.set_data(plots.to_image(x[k]))
            art.axes.set_title(f"{p[k].item():.1f} dB", fontsize=10)
        panel["sup"].set_text(f"RePaint, jump length {jl}, jump count {jn}")
        return panel["fig"]

    return dashboard({"jump length": s_len, "jump count": s_n}, draw, jump_length=s_len, jump_n_sample=s_n,
                     cache=cache)
