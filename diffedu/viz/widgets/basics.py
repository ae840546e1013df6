"""Interactive dashboards (ipywidgets + matplotlib) for class: each re-draws one figure.

Heavy work (sampling trajectories) is done when a control that needs it changes and cached,
so scrubbing through time only re-draws.
"""
from __future__ import annotations

import torch

from .. import plots
from ..._validate import check_callable, check_positive_int, check_schedule
from ...forward import q_sample
from ...samplers import ddim, ddpm
from ...schedules import get_schedule
from .core import check_image, check_int, check_points, dashboard, dropdown, float_slider, int_slider, moving, redraw

__all__ = ["redraw", "default_image", "forward_explorer", "trajectory_player", "denoiser_comparison"]

_DENOISER = "denoiser(x_t, t) -> x0_hat"


def default_image(size: int = 64) -> torch.Tensor:
    """scikit-image's bundled 'camera' photo, (1, size, size) in [-1, 1]."""
    from skimage import data, transform
    check_positive_int("size", size)
    img = transform.resize(data.camera().astype("float32") / 255.0, (size, size), anti_aliasing=True)
    return torch.from_numpy(img).float()[None] * 2 - 1


def forward_explorer(points: torch.Tensor | None = None, image: torch.Tensor | None = None, T: int = 1000,
                     seed: int = 0, t: int = 100):
    """Slider over t and a schedule dropdown; shows q(x_t | x_0) for 2D points (N, 2) and an
    image (C, H, W) side by side, with alpha_bar_t marked on the schedule curve."""
    import matplotlib.pyplot as plt
    from ...data.toy import moons
    check_int("T", T, 2, 100_000)
    check_int("t", t, 0, T - 1)
    check_int("seed", seed, 0, 2 ** 63 - 1)
    points = moons(1500, seed) if points is None else check_points("points", points)
    image = default_image() if image is None else check_image("image", image)
    g = torch.Generator().manual_seed(seed)
    eps_p, eps_i = torch.randn(points.shape, generator=g), torch.randn(image.shape, generator=g)   # fixed noise: only t moves
    schedules = {name: get_schedule(name, T) for name in ("linear", "cosine", "sigmoid")}
    slider, schedule = int_slider(t, 0, T - 1), dropdown(schedules, "linear")

    # One figure, built once; a move only updates its artists (no new axes, no new layout).
    s0, u = schedules["linear"], schedules["linear"].t_continuous.numpy()
    fig, ax = plt.subplots(1, 3, figsize=(10, 3.3))
    plots.plot_points(ax[0], q_sample(points, t, s0, eps=eps_p), "points", lim=3.5)
    plots.show_image(ax[1], q_sample(image[None], t, s0, eps=eps_i[None])[0].clamp(-1, 1), "image")
    dots, img = ax[0].collections[0], ax[1].images[0]
    curve, = ax[2].plot(u, s0.alpha_bar.numpy(), color="C0")
    mark = ax[2].axvline(u[t], color="C3")
    ax[2].set(xlabel="t / T", ylim=(-0.05, 1.05), title=r"$\bar\alpha_t$")
    fig.tight_layout()
    moving(fig, [dots, img, curve, mark] + [a.title for a in ax])

    def draw():
        s, i = schedules[schedule.value], slider.value
        dots.set_offsets(q_sample(points, i, s, eps=eps_p).numpy())
        img.set_data(plots.to_image(q_sample(image[None], i, s, eps=eps_i[None])[0].clamp(-1, 1)))
        curve.set_ydata(s.alpha_bar.numpy())
        mark.set_xdata([u[i], u[i]])
        ax[0].set_title(f"points, t = {i}", fontsize=10)
        ax[1].set_title(f"image, t = {i}", fontsize=10)
        ax[2].set_title(rf"$\bar\alpha_t$ = {s.alpha_bar[i].item():.3f}, log-SNR = {s.log_snr[i].item():.2f}")
        return fig

    return dashboard({"t": slider, "schedule": schedule}, draw, slider=slider, dropdown=schedule)


def trajectory_player(denoiser, schedule, x_T: torch.Tensor, reference: torch.Tensor | None = None,
                      steps: int = 50, seed: int = 0, lim: float = 3.0):
    """Replay reverse trajectories of 2D points x_T: (N, 2): a slider over sampling steps,
    sampler (DDIM/DDPM), eta and step count. Trajectories are computed when a sampler control
    changes and cached; the step slider only re-draws. denoiser: denoiser(x_t, t) -> x0_hat;
    reference: optional (M, 2) data points drawn in grey."""
    import matplotlib.pyplot as plt
    check_callable("denoiser", denoiser, _DENOISER)
    check_schedule(schedule)
    check_points("x_T", x_T)
    check_points("reference", reference, optional=True)
    check_int("steps", steps, 2, min(200, len(schedule)))
    sampler = dropdown(["ddim", "ddpm"], "ddim")
    eta = float_slider(0.0, 0.0, 1.0, 0.1)
    nsteps = int_slider(steps, 2, min(200, len(schedule)))
    step = int_slider(steps, 0, steps)
    cache = {}

    def run():
        g = torch.Generator().manual_seed(seed)
        if sampler.value == "ddim":
            res = ddim(denoiser, x_T, schedule, nsteps.value, eta=eta.value, generator=g, return_trajectory=True)
        else:
            res = ddpm(denoiser, x_T, schedule, nsteps.value, generator=g, return_trajectory=True)
        cache["xs"], cache["x0s"] = res[1], res[2]
        step.max = nsteps.value
        step.value = nsteps.value

    # One figure, built once; a move only updates its artists.
    fig, ax = plt.subplots(1, 2, figsize=(8, 4))
    if reference is not None:
        plots.plot_points(ax[0], reference, color="0.8", lim=lim)
    paths = [ax[0].plot([], [], color="k", lw=0.6, alpha=0.5)[0] for _ in range(min(25, x_T.shape[0]))]
    now = plots.plot_points(ax[0], x_T, "x", lim=lim).collections[-1]
    est = plots.plot_points(ax[1], x_T, "x0", lim=lim, color="C1").collections[-1]
    fig.tight_layout()
    moving(fig, paths + [now, est] + [a.title for a in ax])

    def draw():
        xs, x0s, k = cache["xs"], cache["x0s"], step.value
        for j, line in enumerate(paths):
            line.set_data(xs[: k + 1, j, 0].numpy(), xs[: k + 1, j, 1].numpy())
        now.set_offsets(xs[k].numpy())
        est.set_offsets((x0s[k - 1] if k > 0 else xs[0]).numpy())
        ax[0].set_title(f"x after {k} of {len(xs) - 1} steps", fontsize=10)
        ax[1].set_title(r"denoiser's $\hat x_0$ at this step" if k > 0 else "start: pure noise", fontsize=10)
        return fig

    def on_sampler():
        eta.disabled = sampler.value == "ddpm"
        run()

    run()
    controls = {"sampler": sampler, "eta": eta, "steps": nsteps, "step": step}
    return dashboard(controls, draw, rows=[["sampler", "eta", "steps"], ["step"]],
                     before=dict.fromkeys(("sampler", "eta", "steps"), on_sampler), cache=cache)


def denoiser_comparison(exact, learned, points: torch.Tensor, schedule, lim: float = 3.0, t: int = 300):
    """Slider over t: for x_t of the given clean points, arrows to the exact E[x_0 | x_t]
    (exact(x, t)) and to the learned denoiser's estimate, with the mean squared gap.
    exact, learned: denoiser(x_t, t) -> x0_hat; points: (N, 2) clean samples."""
    import matplotlib.pyplot as plt
    check_callable("exact", exact, _DENOISER)
    check_callable("learned", learned, _DENOISER)
    check_points("points", points)
    check_schedule(schedule)
    T = len(schedule)
    check_int("t", t, 1, T - 1)
    g = torch.Generator().manual_seed(0)
    eps = torch.randn(points.shape, generator=g)
    # precompute on a coarse grid of t so that moving the slider only re-draws
    grid = sorted(set(torch.linspace(1, T - 1, 40).round().long().tolist()) | {t})
    cache = {}
    with torch.no_grad():
        for i in grid:
            xt = q_sample(points, i, schedule, eps=eps)
            tt = torch.full((len(xt),), int(schedule.timesteps[i]))
            cache[i] = (xt, exact(xt, tt), learned(xt, tt))

    mse = [((cache[j][1] - cache[j][2]) ** 2).sum(1).mean().item() for j in grid]
    # One figure, built once; a move only updates its artists.
    fig, ax = plt.subplots(1, 2, figsize=(8, 4))
    xt0, ex0, le0 = cache[grid[0]]
    dots = [plots.plot_points(ax[0], v, None, lim=lim, color=c, label=lab).collections[-1]
            for v, c, lab in ((xt0, "0.6", None), (ex0, "C0", "exact E[x0|xt]"), (le0, "C3", "learned"))]
    ax[0].legend(loc="lower left", fontsize=8)
    ax[1].semilogy(grid, mse)
    mark = ax[1].axvline(grid[0], color="C3")
    ax[1].set(xlabel="t", title="mean squared gap, learned vs exact")
    ax[0].set_title("x_t", fontsize=10)
    fig.tight_layout()
    moving(fig, dots + [mark, ax[0].title])

    def draw():
        i = min(grid, key=lambda j: abs(j - slider.value))
        for d, v in zip(dots, cache[i]):
            d.set_offsets(v.detach().cpu().numpy())
        mark.set_xdata([i, i])
        ax[0].set_title(f"x_t at t = {i}", fontsize=10)
        return fig

    slider = int_slider(t, 1, T - 1)
    return dashboard({"t": slider}, draw, slider=slider, cache=cache)
