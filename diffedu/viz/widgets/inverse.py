"""Dashboards for the inverse-problem chapters (07 classical, 08 plug-and-play).

Built with `core.dashboard`: everything expensive is computed once (or once per operator,
the first time it is chosen) and cached, so moving a slider only re-draws. Both widgets build
one persistent figure and `draw()` updates its artists in place (no new axes or layout per
move, which is what keeps an image move fast).
"""
from __future__ import annotations

import torch

from .. import plots
from ..._validate import check_callable, check_choice, check_real
from ...metrics import psnr
from .core import check_dict, check_image, check_int, check_options, dashboard, dropdown, int_slider, moving, selection


def _upsample(y, like):
    """A measurement y: (C, h, w) at the size of `like` (nearest upsampling for SR)."""
    if y.shape[-2:] != like.shape[-2:]:
        y = torch.nn.functional.interpolate(y[None].float(), size=like.shape[-2:], mode="nearest")[0]
    return y.clamp(-1, 1)


def _panel(ax, img, title):
    """imshow an image (C, H, W) in [-1, 1] on ax; returns the artist to update later."""
    ax.set_axis_off()
    ax.set_title(title, fontsize=9)
    return ax.imshow(plots.to_image(img), cmap="gray", vmin=0, vmax=1, interpolation="nearest")


def operator_explorer(x: torch.Tensor, operators: dict, sigmas=None, tikhonov_lam=None, seed: int = 0,
                      operator: str | None = None, sigma: float = 0.02):
    """Operator dropdown and noise-level slider: the measurement y = A x + sigma n, its
    pseudo-inverse A^+ y and the Tikhonov solution (A^T A + lam I)^{-1} A^T y, with PSNRs.

    x: (1, C, H, W) image; operators: {name: LinearOperator}; sigmas: the slider's values
    (default 0, 0.01, ..., 0.2); tikhonov_lam(sigma) -> lam (default max(sigma^2, 1e-4) * 25,
    about the noise-to-signal ratio of a natural image). The noise n is drawn once, so only
    sigma moves. Results are computed for every slider value when an operator is first
    chosen and cached; a move only updates the images and titles of one persistent figure.
    """
    import matplotlib.pyplot as plt
    from ...inverse.classical import tikhonov
    from ...inverse.operators import LinearOperator

    check_image("x", x, one=True)
    operators = check_dict("operators", operators, "{name: LinearOperator}")
    for k, op in operators.items():
        if not isinstance(op, LinearOperator):
            raise TypeError(f"operators[{k!r}] must be a diffedu.inverse LinearOperator (e.g. Blur, Inpainting), "
                            f"got {type(op).__name__}")
        if op.in_shape is not None and tuple(op.in_shape) != tuple(x.shape[1:]):
            raise ValueError(f"operators[{k!r}] acts on images {tuple(op.in_shape)}, but x is one image "
                             f"{tuple(x.shape[1:])}")
    sigmas = [round(0.01 * k, 2) for k in range(21)] if sigmas is None else check_options("sigmas", sigmas)
    for i, s in enumerate(sigmas):
        check_real(f"sigmas[{i}]", s, lo=0)
    if tikhonov_lam is not None:
        check_callable("tikhonov_lam", tikhonov_lam, "tikhonov_lam(sigma) -> lam > 0")
    lam_of = tikhonov_lam or (lambda s: 25 * max(s * s, 1e-4))
    names = list(operators)
    if operator is not None:
        check_choice("operator", operator, names)
    check_real("sigma", sigma, lo=0)
    g = torch.Generator().manual_seed(seed)
    x = x.double()
    noise = {k: torch.randn((1,) + tuple(op.out_shape), generator=g, dtype=torch.float64)
             for k, op in operators.items()}
    cache = {}

    def compute(name):
        """All slider values for one operator: (y, A^+ y, Tikhonov, PSNRs) per sigma."""
        if name not in cache:
            op = operators[name]
            Ax = op.A(x)
            res = {}
            for s in sigmas:
                y = Ax + s * noise[name]
                if hasattr(op, "mask"):                 # inpainting observes nothing in the holes
                    y = op.A(y)
                xp, xt = op.A_dagger(y).clamp(-1, 1), tikhonov(y, op, lam=lam_of(s)).clamp(-1, 1)
                res[s] = (_upsample(y[0], x[0]), xp[0], xt[0], psnr(xp, x).item(), psnr(xt, x).item())
            cache[name] = res
        return cache[name]

    menu, slider = dropdown(names, operator), selection(sigmas, sigma, continuous=True)
    fig, ax = plt.subplots(1, 4, figsize=(10, 2.9))
    y0, xp0, xt0, _, _ = compute(menu.value)[slider.value]
    _panel(ax[0], x[0], "x (truth)")
    arts = [_panel(a, img, "") for a, img in zip(ax[1:], (y0, xp0, xt0))]
    suptitle = fig.suptitle("", fontsize=10)
    fig.tight_layout()
    plt.close(fig)                      # shown through `out` only

    def draw():
        name, s = menu.value, slider.value
        y, xp, xt, p_pinv, p_tik = compute(name)[s]
        titles = (f"y = A x + {s:g} n", f"A^+ y: {p_pinv:.1f} dB", f"Tikhonov (lam={lam_of(s):.2g}): {p_tik:.1f} dB")
        for art, img, title in zip(arts, (y, xp, xt), titles):
            art.set_data(plots.to_image(img))
            art.axes.set_title(title, fontsize=9)
        suptitle.set_text(name)
        return fig

    return dashboard({"operator": menu, "sigma_y": slider}, draw, dropdown=menu, slider=slider, cache=cache)


def pnp_player(x_true: torch.Tensor, y_show: torch.Tensor, traces: dict, index: int = 0):
    """Replay plug-and-play iterations: a slider over the iteration k showing the data step
    x_k and the denoiser output z_k of one image, next to the measurement and the truth,
    and the noise level sigma_k and PSNR(z_k) along the run. A dropdown picks the run.

    x_true: (B, C, H, W); y_show: (B, C, h, w) the measurement (upsampled for display);
    traces: {name: list of pnp_hqs callback dicts {'i', 'sigma', 'mu', 'x', 'z'}} (recorded
    once, e.g. with `callback=trace.append`); index: which image of the batch. A move only
    updates one persistent figure.
    """
    import matplotlib.pyplot as plt

    check_image("x_true", x_true, batched=True)
    check_image("y_show", y_show, batched=True)
    if len(y_show) != len(x_true):
        raise ValueError(f"y_show must hold one measurement per image of x_true ({len(x_true)}), got {len(y_show)}")
    traces = check_dict("traces", traces, "{run name: list of pnp_hqs callback dicts}")
    for k, t in traces.items():
        if not isinstance(t, (list, tuple)) or not t:
            raise ValueError(f"traces[{k!r}] must be a non-empty list of pnp_hqs callback dicts "
                             f"{{'i', 'sigma', 'mu', 'x', 'z'}}, got {t if not t else type(t).__name__}")
        missing = sorted({"sigma", "x", "z"} - set(t[0])) if isinstance(t[0], dict) else ["sigma", "x", "z"]
        if missing:
            raise ValueError(f"traces[{k!r}] must hold pnp_hqs callback dicts with keys 'sigma', 'x', 'z'; "
                             f"its first entry lacks {missing}")
    check_int("index", index, 0, len(x_true) - 1)
    names = list(traces)
    run = dropdown(names)
    n = max(len(t) for t in traces.values())
    step = int_slider(0, 0, n - 1, True)
    truth = x_true[index].double()
    curves = {k: [psnr(d["z"][index:index + 1].double().clamp(-1, 1), truth[None]).item() for d in t]
              for k, t in traces.items()}

    fig, ax = plt.subplots(1, 5, figsize=(12, 2.7), gridspec_kw={"width_ratios": [1, 1, 1, 1, 1.6]})
    _panel(ax[0], _upsample(y_show[index], truth), "measurement y")
    first = traces[names[0]][0]
    art_x = _panel(ax[1], first["x"][index].clamp(-1, 1), "")
    art_z = _panel(ax[2], first["z"][index].clamp(-1, 1), "")
    _panel(ax[3], truth, "truth")
    ax2 = ax[4].twinx()
    (line_s,) = ax[4].semilogy([], [], "o-", ms=3, color="C0")
    (line_p,) = ax2.plot([], [], "s-", ms=3, color="C1")
    marker = ax[4].axvline(1, color="C3")
    ax[4].set_xlabel("iteration k")
    ax[4].set_ylabel("sigma_k", color="C0")
    ax2.set_ylabel("PSNR(z_k), dB", color="C1")
    for a in (ax[1], ax[2], ax[4]):
        a.set_title(" ", fontsize=9)
    fig.tight_layout()
    plt.close(fig)
    shown, dynamic = {}, [art_x, art_z, ax[1].title, ax[2].title, marker]

    def draw():
        tr = traces[run.value]
        k = min(step.value, len(tr) - 1)
        d = tr[k]
        art_x.set_data(plots.to_image(d["x"][index].clamp(-1, 1)))
        art_z.set_data(plots.to_image(d["z"][index].clamp(-1, 1)))
        art_x.axes.set_title(f"x_{k + 1} (data step)", fontsize=9)
        art_z.axes.set_title(f"z_{k + 1} (denoiser, sigma={d['sigma']:.3f})", fontsize=9)
        if shown.get("run") != run.value:                 # the curves change only with the run
            ks = list(range(1, len(tr) + 1))
            line_s.set_data(ks, [e["sigma"] for e in tr])
            line_p.set_data(ks, curves[run.value])
            for a in (ax[4], ax2):
                a.relim()
                a.autoscale_view()
            ax[4].set_title(f"{run.value}: sigma_k and PSNR", fontsize=9)
            shown["run"] = run.value
            moving(fig, dynamic)                          # the curves are new: a new background
        marker.set_xdata([k + 1, k + 1])
        return fig

    return dashboard({"run": run, "iteration k": step}, draw, run=run, step=step)
