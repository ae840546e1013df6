"""Dashboards for chapters 04 (SDEs, flow matching, reflow) and 05 (guidance).

Same style as `widgets`: heavy work (sampling) happens once per setting and is cached, so a
move of a control only re-draws. Every widget takes plain callables and tensors (no model
classes), returns an ipywidgets VBox and attaches handles (`.controls`, `.out`, `.cache`,
`.draw`) for tests.

    solver_explorer     solver dropdown x step-count slider; trajectories over the 2D density
    reflow_explorer     slider over reflow rounds x step count; paths straighten round by round
    guidance_sweep      precompute guided samples and fidelity / diversity numbers over a w grid
    guidance_explorer   guidance-scale slider over a guidance_sweep (optionally with images)
"""
from __future__ import annotations

import torch

from .. import plots
from ..._validate import check_callable, check_real
from ...metrics import sliced_wasserstein
from .core import check_dict, check_image, check_int, check_options, check_points, dashboard, dropdown, moving, selection

_LOG_PROB = "log_prob(x: (M, 2) float64) -> (M,)"


def _density_grid(log_prob, lim: float, n: int = 100):
    """(X, Y, P) numpy arrays of exp(log_prob) on an n x n grid over [-lim, lim]^2 (computed once)."""
    g = torch.linspace(-lim, lim, n, dtype=torch.float64)
    X, Y = torch.meshgrid(g, g, indexing="xy")
    with torch.no_grad():
        P = log_prob(torch.stack([X.reshape(-1), Y.reshape(-1)], 1)).exp().reshape(n, n)
    return X.numpy(), Y.numpy(), P.numpy()


def _background(ax, dens, reference, lim):
    if dens is not None:
        ax.contourf(*dens, levels=12, cmap="Greys", alpha=0.6)
    if reference is not None:
        plots.plot_points(ax, reference, None, lim=lim, color="0.75", s=1)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])


def _paths_figure(dens, reference, lim, n_paths, legend: bool = False):
    """One figure for trajectories, built once; returns (fig, show) where show(xs, left, right)
    puts xs: (S+1, B, 2) in it and returns fig. Left: the first n_paths paths over the density,
    from noise (black) to the end (red); right: all end points over the reference samples.
    Only the paths, points and titles move (blitted: see core.moving)."""
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(1, 2, figsize=(8.5, 4.2))
    _background(ax[0], dens, None, lim)
    paths = [ax[0].plot([], [], color="C0", lw=0.8, alpha=0.75)[0] for _ in range(n_paths)]
    start = ax[0].scatter([], [], s=6, color="k", zorder=3, label="start (noise)")
    end = ax[0].scatter([], [], s=8, color="C3", zorder=3, label="end")
    if legend:
        ax[0].legend(loc="lower left", fontsize=7)
    _background(ax[1], dens, reference, lim)
    ends = ax[1].scatter([], [], s=2, alpha=0.5, color="C3")
    for a in ax:
        a.set_title(" ", fontsize=10)
    fig.tight_layout()
    moving(fig, paths + [start, end, ends] + [a.title for a in ax] + ([ax[0].get_legend()] if legend else []))

    def show(xs, left: str, right: str):
        for j, line in enumerate(paths):
            line.set_data(*(xs[:, j].T.numpy() if j < xs.shape[1] else ([], [])))
        start.set_offsets(xs[0, :n_paths].numpy())
        end.set_offsets(xs[-1, :n_paths].numpy())
        ends.set_offsets(xs[-1].numpy())
        ax[0].set_title(left, fontsize=10)
        ax[1].set_title(right, fontsize=10)
        return fig
    return fig, show


def _check_common(log_prob, reference, lim, n_paths=None):
    """The arguments the 2D dashboards share; None means not given."""
    if log_prob is not None:
        check_callable("log_prob", log_prob, _LOG_PROB)
    check_points("reference", reference, optional=True)
    check_real("lim", lim, lo=0, lo_open=True)
    if n_paths is not None:
        check_int("n_paths", n_paths, 1, 10 ** 9)


def solver_explorer(samplers: dict, log_prob=None, reference: torch.Tensor | None = None, steps: int = 16,
                    step_options=(1, 2, 4, 8, 16, 32, 64, 128), n_paths: int = 40, lim: float = 3.0):
    """Pick a solver and a step count; see the trajectories over the density and the samples.

    samplers: {name: fn(steps) -> xs (S+1, B, 2)}, each a whole trajectory from noise (xs[0])
    to samples (xs[-1]), e.g. `lambda n: sde.pf_ode_heun(score, x_T, vp, n, return_trajectory=True)[1]`.
    log_prob: (M, 2) float64 -> (M,), drawn as the background density; reference: (N, 2)
    samples of the target, for the sliced Wasserstein distance in the title. Each (solver, steps)
    is run once and cached."""
    samplers = check_dict("samplers", samplers, "{name: fn(steps) -> trajectory (S+1, B, 2)}",
                          "fn(steps) -> trajectory (S+1, B, 2)")
    _check_common(log_prob, reference, lim, n_paths)
    check_int("steps", steps, 1, 10 ** 6)
    step_options = sorted(set(int(s) for s in check_options("step_options", step_options)) | {int(steps)})
    solver, nsteps = dropdown(samplers), selection(step_options, int(steps), continuous=False)
    cache = {}
    dens = _density_grid(log_prob, lim) if log_prob is not None else None

    def trajectory():
        key = (solver.value, nsteps.value)
        if key not in cache:
            with torch.no_grad():
                xs = samplers[key[0]](key[1]).detach().float().cpu()
            sw = sliced_wasserstein(xs[-1], reference) if reference is not None else None
            cache[key] = (xs, sw)
        return cache[key]

    _, show = _paths_figure(dens, reference, lim, n_paths, legend=True)

    def draw():
        xs, sw = trajectory()
        return show(xs, f"{solver.value}: {len(xs) - 1} steps",
                    "samples" + (f" (sliced W to data: {sw:.3f})" if sw is not None else ""))

    return dashboard({"solver": solver, "steps": nsteps}, draw, cache=cache)


def reflow_explorer(flows: dict, x1: torch.Tensor, sample_fn, straightness_fn=None, log_prob=None,
                    reference: torch.Tensor | None = None, step_options=(1, 2, 4, 8, 32), n_paths: int = 40,
                    lim: float = 3.0):
    """A slider over reflow rounds and one over the step count: round 0 (flow matching) has
    curved paths, which need many steps; each reflow round straightens them.

    flows: {round name: velocity_fn u(x, tau)}, in order; x1: (B, 2) noise, shared by all rounds;
    sample_fn(u, x1, steps) -> trajectory xs (S+1, B, 2) (e.g. flow.sample_flow with
    return_trajectory); straightness_fn(u, x1) -> float (e.g. flow.straightness). Everything is
    precomputed here (rounds x step options), so moving a slider only re-draws."""
    flows = check_dict("flows", flows, "{round name: velocity_fn u(x, tau)}", "u(x, tau) -> velocity like x")
    check_points("x1", x1)
    check_callable("sample_fn", sample_fn, "sample_fn(u, x1, steps) -> trajectory (S+1, B, 2)")
    if straightness_fn is not None:
        check_callable("straightness_fn", straightness_fn, "straightness_fn(u, x1) -> float")
    _check_common(log_prob, reference, lim, n_paths)
    names = list(flows)
    step_options = sorted(set(int(s) for s in check_options("step_options", step_options)))
    cache = {}
    with torch.no_grad():
        for name, u in flows.items():
            S = straightness_fn(u, x1) if straightness_fn is not None else None
            for n in step_options:
                xs = sample_fn(u, x1, n).detach().float().cpu()
                sw = sliced_wasserstein(xs[-1], reference) if reference is not None else None
                cache[name, n] = (xs, sw, S)
    rnd = selection(names, names[0], continuous=False)
    nsteps = selection(step_options, step_options[-1], continuous=False)
    dens = _density_grid(log_prob, lim) if log_prob is not None else None

    _, show = _paths_figure(dens, reference, lim, n_paths)

    def draw():
        xs, sw, S = cache[rnd.value, nsteps.value]
        return show(xs, f"{rnd.value}: paths" + (f" (straightness {S:.3f})" if S is not None else ""),
                    f"{nsteps.value}-step samples" + (f", sliced W {sw:.3f}" if sw is not None else ""))

    return dashboard({"flow": rnd, "steps": nsteps}, draw, cache=cache)


def _spread(x: torch.Tensor) -> float:
    """sqrt(trace Cov(x)): the size of a sample cloud (x: (N, D))."""
    return float(x.double().var(0).sum().sqrt()) if len(x) > 1 else 0.0


def guidance_sweep(sample_fn, ws, labels: torch.Tensor, metrics: dict | None = None) -> dict:
    """Run a guided sampler at each guidance scale in `ws` and measure fidelity and diversity.

    sample_fn(w) -> samples (N, D) whose row i was generated for class labels[i] (labels: (N,)).
    metrics: {name: fn(x (N, D) float64, labels (N,)) -> float}, fidelity measures such as the
    accuracy of a classifier or the mean log p(x | y) of the requested class. Diversity is always
    measured: 'spread', the per-class sqrt(trace Cov), averaged over classes.
    Returns {'ws', 'samples': {w: (N, D)}, 'labels', 'metrics' (names), 'rows': [{'w', 'spread', <metrics>}]}."""
    check_callable("sample_fn", sample_fn, "sample_fn(w) -> samples (N, D)")
    ws = check_options("ws", ws)
    try:
        labels = torch.as_tensor(labels)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"labels must be integer class labels (N,) (a tensor or a list of ints), "
                        f"got {type(labels).__name__}") from None
    if labels.ndim != 1 or not len(labels) or (labels.is_floating_point() and not torch.equal(labels, labels.round())):
        raise ValueError(f"labels must be integer class labels of shape (N,) with N >= 1, "
                         f"got shape {tuple(labels.shape)}, dtype {labels.dtype}")
    labels = labels.long()
    classes = torch.unique(labels).tolist()
    metrics = {} if metrics is None else check_dict("metrics", metrics, "{name: fn(x, labels) -> float}",
                                                    "fn(x (N, D) float64, labels (N,)) -> float")
    samples, rows = {}, []
    for w in ws:
        with torch.no_grad():
            x = sample_fn(float(w))
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"sample_fn({w}) must return a tensor of samples (N, D), got {type(x).__name__}")
        if x.ndim != 2 or x.shape[0] != len(labels):
            raise ValueError(f"sample_fn({w}) must return samples (N, D) with N = len(labels) = {len(labels)}, "
                             f"got shape {tuple(x.shape)}")
        x = x.detach().float().cpu()
        samples[float(w)] = x
        row = {"w": float(w), "spread": sum(_spread(x[labels == c]) for c in classes) / len(classes)}
        for name, fn in metrics.items():
            row[name] = float(fn(x.double(), labels))
        rows.append(row)
    return {"ws": [float(w) for w in ws], "samples": samples, "labels": labels, "metrics": list(metrics),
            "rows": rows}


def guidance_explorer(sweep: dict, log_prob=None, lim: float = 3.0, w: float | None = None, show=None,
                      images: dict | None = None, nrow: int = 8):
    """A guidance-scale slider over a `guidance_sweep`: the samples at w coloured by requested
    class, up to two fidelity metrics against w (`show`: their names, default the sweep's first
    two; the first on the left axis, the second on a right axis) and the diversity (spread)
    against w. images: optional {w: (B, C, H, W)} generated at the same scales, shown as a grid
    (fourth panel)."""
    import matplotlib.pyplot as plt
    _check_common(log_prob, None, lim)
    sweep = check_dict("sweep", sweep, "as returned by guidance_sweep")
    missing = sorted({"ws", "samples", "labels", "rows"} - set(sweep))
    if missing:
        raise ValueError(f"sweep must be the dict guidance_sweep returns; it lacks {missing}")
    ws, rows, labels = sweep["ws"], sweep["rows"], sweep["labels"]
    names = list(sweep.get("metrics", [])[:2] if show is None else [show] if isinstance(show, str) else show)
    if len(names) > 2 or any(n not in sweep.get("metrics", []) for n in names):
        raise ValueError(f"show must name at most two of the sweep's metrics {sweep.get('metrics', [])}, got {names}")
    w = ws[min(range(len(ws)), key=lambda k: abs(ws[k] - 1.0))] if w is None else float(w)
    if w not in ws:
        raise ValueError(f"w must be one of the swept scales {ws}, got {w}")
    if images is not None:
        images = check_dict("images", images, "{w: images (B, C, H, W)}")
        if set(images) != set(ws):
            raise ValueError(f"images must have one batch per swept scale {ws}, got keys {sorted(images)}")
        for k, v in images.items():
            check_image(f"images[{k}]", v, batched=True)
    check_int("nrow", nrow, 1, 10 ** 6)
    slider = selection(ws, w, continuous=True)
    dens = _density_grid(log_prob, lim) if log_prob is not None else None
    classes = torch.unique(labels).tolist()

    # One figure, built once (density, curves, legend); a move only updates its artists.
    ncol = 4 if images is not None else 3
    fig, ax = plt.subplots(1, ncol, figsize=(3.7 * ncol, 3.7))
    _background(ax[0], dens, None, lim)
    x0 = sweep["samples"][w]
    dots = [plots.plot_points(ax[0], x0[labels == c], None, lim=lim, color=f"C{c}", s=3, alpha=0.6,
                              label=f"class {c}").collections[-1] for c in classes]
    ax[0].legend(loc="lower left", fontsize=7, markerscale=3)
    axes = [ax[1], ax[1].twinx()] if len(names) > 1 else [ax[1]]
    for j, name in enumerate(names):
        axes[j].plot(ws, [r[name] for r in rows], "o-", ms=3, color=f"C{3 + j}", label=name)
        axes[j].set_ylabel(name, color=f"C{3 + j}", fontsize=8)
    ax[1].set_xlabel("guidance scale w")
    ax[2].plot(ws, [r["spread"] for r in rows], "o-", ms=3, color="C0")
    ax[2].set(xlabel="guidance scale w", ylim=(0, None))
    marks = [ax[1].axvline(w, color="k", lw=0.8), ax[2].axvline(w, color="k", lw=0.8)]
    grid = plots.show_image(ax[3], plots.image_grid(images[w], nrow=nrow)).images[0] if images is not None else None

    def draw():
        k, wv = ws.index(slider.value), slider.value
        x, row = sweep["samples"][wv], rows[k]
        for d, c in zip(dots, classes):
            d.set_offsets(x[labels == c].detach().cpu().numpy())
        for m in marks:
            m.set_xdata([wv, wv])
        ax[0].set_title(f"guided samples, w = {wv:g}", fontsize=10)
        ax[1].set_title("fidelity: " + ", ".join(f"{n} {row[n]:.2f}" for n in names), fontsize=9)
        ax[2].set_title(f"diversity: per-class spread {row['spread']:.2f}", fontsize=9)
        if grid is not None:
            grid.set_data(plots.to_image(plots.image_grid(images[wv], nrow=nrow)))
            ax[3].set_title(f"images, w = {wv:g}", fontsize=10)
        return fig

    draw()                                                       # the titles exist before the layout
    fig.tight_layout()
    moving(fig, dots + [ax[0].get_legend()] + marks + [a.title for a in ax[:3]] + ([grid, ax[3].title] if grid is not None else []))
    return dashboard({"w": slider}, draw, cache=sweep)
