"""Hostile inputs at every public widget function: each must fail at the widget's boundary with a
ValueError/TypeError whose message starts by naming the argument (and says what was given and
what is allowed), not deep inside a sampler or matplotlib."""
import inspect
import re

import matplotlib
import pytest
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import diffedu as dd  # noqa: E402
from diffedu import inverse as inv  # noqa: E402
from diffedu.viz.widgets import arch as WA  # noqa: E402
from diffedu.viz.widgets import conclusion as WC  # noqa: E402
from diffedu.viz.widgets import basics as WB  # noqa: E402
from diffedu.viz.widgets import core as WD  # noqa: E402
from diffedu.viz.widgets import flow as WF  # noqa: E402
from diffedu.viz.widgets import inverse as WI  # noqa: E402
from diffedu.viz.widgets import posterior as WP  # noqa: E402
from diffedu.viz.widgets import segmentation as WS  # noqa: E402

MODULES = (WB, WF, WA, WI, WP, WD, WS, WC)
S = dd.linear_schedule(20)
PTS = torch.randn(10, 2)
IMG = torch.rand(1, 8, 8) * 2 - 1
IMG16 = torch.rand(1, 16, 16) * 2 - 1
X1 = torch.rand(1, 1, 16, 16) * 2 - 1
XB = torch.rand(2, 1, 16, 16) * 2 - 1


def den(x, t):
    return torch.zeros_like(x)


def traj(n):
    return torch.randn(n + 1, 10, 2)


def sample_fn(u, x, n):
    return torch.randn(n + 1, len(x), 2)


def log_prob(x):
    return -(x ** 2).sum(1)


LABELS = torch.tensor([0, 1, 1])
SWEEP = WF.guidance_sweep(lambda w: torch.randn(3, 2), [0.0, 1.0], LABELS, {"m": lambda x, y: 0.0})
MAPS = [torch.softmax(torch.randn(2, 20, 20), -1)]          # L = 4 context + T = 4 x 4 tokens
OPS = {"blur": inv.Blur(inv.gaussian_kernel(3, 1.0), 16, channels=1)}
TRACES = {"a": [{"i": 0, "sigma": 0.1, "mu": 1.0, "x": XB, "z": XB}]}


def run(jl, jn):
    return torch.rand(2, 1, 8, 8) * 2 - 1


def x8():
    return torch.rand(1, 1, 8, 8) * 2 - 1


def slider():
    return WD.int_slider(0, 0, 3)


def on_axes(fn):
    fig, ax = plt.subplots()
    try:
        return fn(ax)
    finally:
        plt.close(fig)


# (function, argument named in the message, the call)
CASES = [
    ("default_image", "size", lambda: WB.default_image(0)),
    ("forward_explorer", "points", lambda: WB.forward_explorer(points=torch.randn(10, 3), T=20, t=5)),
    ("forward_explorer", "points", lambda: WB.forward_explorer(points=[[0.0, 0.0]], T=20, t=5)),
    ("forward_explorer", "image", lambda: WB.forward_explorer(image=torch.rand(8, 8), T=20, t=5)),
    ("forward_explorer", "image", lambda: WB.forward_explorer(image=torch.rand(2, 1, 8, 8), T=20, t=5)),
    ("forward_explorer", "t", lambda: WB.forward_explorer(T=20, t=20)),
    ("forward_explorer", "T", lambda: WB.forward_explorer(T="20")),
    ("trajectory_player", "denoiser", lambda: WB.trajectory_player(None, S, PTS)),
    ("trajectory_player", "schedule", lambda: WB.trajectory_player(den, "linear", PTS)),
    ("trajectory_player", "x_T", lambda: WB.trajectory_player(den, S, torch.randn(10, 3))),
    ("trajectory_player", "reference", lambda: WB.trajectory_player(den, S, PTS, reference=torch.randn(5))),
    ("trajectory_player", "steps", lambda: WB.trajectory_player(den, S, PTS, steps=0)),
    ("denoiser_comparison", "exact", lambda: WB.denoiser_comparison(None, den, PTS, S)),
    ("denoiser_comparison", "learned", lambda: WB.denoiser_comparison(den, "learned", PTS, S)),
    ("denoiser_comparison", "points", lambda: WB.denoiser_comparison(den, den, torch.randn(10, 2, 1), S)),
    ("denoiser_comparison", "t", lambda: WB.denoiser_comparison(den, den, PTS, S, t=0)),
    ("solver_explorer", "samplers", lambda: WF.solver_explorer({})),
    ("solver_explorer", "samplers", lambda: WF.solver_explorer([traj])),
    ("solver_explorer", "samplers['a']", lambda: WF.solver_explorer({"a": 3})),
    ("solver_explorer", "log_prob", lambda: WF.solver_explorer({"a": traj}, log_prob=3)),
    ("solver_explorer", "reference", lambda: WF.solver_explorer({"a": traj}, reference=torch.randn(5, 3))),
    ("solver_explorer", "step_options", lambda: WF.solver_explorer({"a": traj}, step_options=[])),
    ("solver_explorer", "lim", lambda: WF.solver_explorer({"a": traj}, lim=0.0)),
    ("solver_explorer", "n_paths", lambda: WF.solver_explorer({"a": traj}, n_paths=0)),
    ("reflow_explorer", "flows", lambda: WF.reflow_explorer({}, PTS, sample_fn)),
    ("reflow_explorer", "x1", lambda: WF.reflow_explorer({"a": den}, torch.randn(5, 3), sample_fn)),
    ("reflow_explorer", "sample_fn", lambda: WF.reflow_explorer({"a": den}, PTS, None)),
    ("reflow_explorer", "straightness_fn", lambda: WF.reflow_explorer({"a": den}, PTS, sample_fn, 1)),
    ("guidance_sweep", "sample_fn", lambda: WF.guidance_sweep(None, [1.0], LABELS)),
    ("guidance_sweep", "ws", lambda: WF.guidance_sweep(lambda w: torch.zeros(3, 2), [], LABELS)),
    ("guidance_sweep", "labels", lambda: WF.guidance_sweep(lambda w: torch.zeros(3, 2), [1.0], torch.zeros(3, 2))),
    ("guidance_sweep", "metrics['m']", lambda: WF.guidance_sweep(lambda w: torch.zeros(3, 2), [1.0], LABELS,
                                                                 {"m": 3})),
    ("guidance_explorer", "sweep", lambda: WF.guidance_explorer({})),
    ("guidance_explorer", "sweep", lambda: WF.guidance_explorer({"ws": [1.0]})),
    ("guidance_explorer", "show", lambda: WF.guidance_explorer(SWEEP, show=("nope",))),
    ("guidance_explorer", "w", lambda: WF.guidance_explorer(SWEEP, w=7.0)),
    ("guidance_explorer", "images[0.0]", lambda: WF.guidance_explorer(SWEEP, images={0.0: torch.zeros(4, 8, 8),
                                                                                     1.0: torch.zeros(4, 8, 8)})),
    ("patch_viewer", "image", lambda: WA.patch_viewer(torch.rand(16, 16))),
    ("patch_viewer", "patch_sizes", lambda: WA.patch_viewer(IMG16, (2, 3))),
    ("patch_viewer", "p", lambda: WA.patch_viewer(IMG16, (2, 4), p=8)),
    ("attention_viewer", "maps", lambda: WA.attention_viewer([], IMG16, 4, 4, 4)),
    ("attention_viewer", "image", lambda: WA.attention_viewer(MAPS, torch.rand(16, 16), 4, 4, 4)),
    ("attention_viewer", "image", lambda: WA.attention_viewer(MAPS, IMG16, 4, 4, 3)),
    ("attention_viewer", "block", lambda: WA.attention_viewer(MAPS, IMG16, 4, 4, 4, block=5)),
    ("attention_viewer", "query", lambda: WA.attention_viewer(MAPS, IMG16, 4, 4, 4, query=-1)),
    ("attention_viewer", "context_names", lambda: WA.attention_viewer(MAPS, IMG16, 4, 4, 4, context_names=["a"])),
    ("operator_explorer", "x", lambda: WI.operator_explorer(torch.rand(1, 16, 16), OPS)),
    ("operator_explorer", "operators", lambda: WI.operator_explorer(X1, {})),
    ("operator_explorer", "operators['a']", lambda: WI.operator_explorer(X1, {"a": lambda x: x})),
    ("operator_explorer", "operator", lambda: WI.operator_explorer(X1, OPS, operator="nope")),
    ("operator_explorer", "sigmas[0]", lambda: WI.operator_explorer(X1, OPS, sigmas=[-0.1])),
    ("operator_explorer", "tikhonov_lam", lambda: WI.operator_explorer(X1, OPS, tikhonov_lam=0.1)),
    ("operator_explorer", "sigma", lambda: WI.operator_explorer(X1, OPS, sigma=float("nan"))),
    ("pnp_player", "x_true", lambda: WI.pnp_player(torch.rand(2, 16, 16), XB, TRACES)),
    ("pnp_player", "y_show", lambda: WI.pnp_player(XB, XB[:1], TRACES)),
    ("pnp_player", "traces", lambda: WI.pnp_player(XB, XB, {})),
    ("pnp_player", "traces['a']", lambda: WI.pnp_player(XB, XB, {"a": [{"i": 0}]})),
    ("pnp_player", "index", lambda: WI.pnp_player(XB, XB, TRACES, index=2)),
    ("mode_fractions", "x", lambda: WP.mode_fractions(torch.randn(5), PTS)),
    ("mode_fractions", "modes", lambda: WP.mode_fractions(PTS, torch.zeros(3))),
    ("sweep", "sample_fn", lambda: WP.sweep(3, [1])),
    ("dps_zeta_explorer", "samples", lambda: WP.dps_zeta_explorer({}, log_prob)),
    ("dps_zeta_explorer", "samples[0.1]", lambda: WP.dps_zeta_explorer({0.1: torch.zeros(5, 3)}, log_prob)),
    ("dps_zeta_explorer", "log_prob", lambda: WP.dps_zeta_explorer({0.1: PTS}, None)),
    ("dps_zeta_explorer", "mode_weights", lambda: WP.dps_zeta_explorer({0.1: PTS}, log_prob, torch.zeros(3, 2),
                                                                       torch.ones(2))),
    ("dps_zeta_explorer", "reference", lambda: WP.dps_zeta_explorer({0.1: PTS}, log_prob, reference=torch.zeros(4, 3))),
    ("plot_repaint_schedule", "jump_length", lambda: on_axes(lambda ax: WP.plot_repaint_schedule(ax, 10, 0, 1))),
    ("repaint_explorer", "run_fn", lambda: WP.repaint_explorer(None, 10, [2], [1], x8(), x8())),
    ("repaint_explorer", "jump_lengths", lambda: WP.repaint_explorer(run, 10, [], [1], x8(), x8())),
    ("repaint_explorer", "jump_n_samples[0]", lambda: WP.repaint_explorer(run, 10, [2], [0], x8(), x8())),
    ("repaint_explorer", "x_true", lambda: WP.repaint_explorer(run, 10, [2], [1], torch.rand(1, 8, 8), x8())),
    ("repaint_explorer", "y_show", lambda: WP.repaint_explorer(run, 10, [2], [1], x8(), torch.rand(8, 8))),
    ("repaint_explorer", "run_fn(2, 1)", lambda: WP.repaint_explorer(lambda a, b: torch.rand(2, 8, 8), 10, [2], [1],
                                                                     x8(), x8())),
    ("dashboard", "controls", lambda: WD.dashboard({}, plt.figure)),
    ("figure_png", "fig", lambda: WD.figure_png(plt.gca())),
    ("spills", "fig", lambda: WD.spills(None)),
    ("moving", "fig", lambda: WD.moving(plt.gca(), [])),
    ("moving", "artists", lambda: WD.moving(plt.figure(), [plt.figure().gca()])),
    ("dashboard", "draw", lambda: WD.dashboard({"a": slider()}, None)),
    ("dashboard", "rows", lambda: WD.dashboard({"a": slider()}, plt.figure, rows=[["b"]])),
    ("dashboard", "before key", lambda: WD.dashboard({"a": slider()}, plt.figure, before={"b": print})),
    ("ensemble_tables", "samples", lambda: WS.ensemble_tables(torch.full((1, 2, 4, 4), 7), torch.zeros(1, 3, 4, 4, dtype=torch.long))),
    ("ensemble_explorer", "images", lambda: WS.ensemble_explorer(torch.rand(4, 4), torch.zeros(1, 2, 4, 4, dtype=torch.long),
                                                                 torch.zeros(1, 3, 4, 4, dtype=torch.long))),
    ("ensemble_explorer", "annotations", lambda: WS.ensemble_explorer(torch.rand(1, 1, 4, 4), torch.zeros(1, 2, 4, 4, dtype=torch.long),
                                                                      torch.rand(1, 3, 4, 4))),
    ("plot_results", "chapter", lambda: WC.plot_results([dd.results.Result(chapter="02", method="m", metric="x", value=1.0,
                                                                           calls=None, baseline=None, baseline_value=None,
                                                                           higher_is_better=True, note="")], "99")),
    ("results_explorer", "results", lambda: WC.results_explorer([])),
]


@pytest.mark.parametrize("fn, arg, call", CASES, ids=[f"{f}-{a}-{i}" for i, (f, a, _) in enumerate(CASES)])
def test_bad_input_names_the_argument(fn, arg, call):
    with pytest.raises((ValueError, TypeError)) as err:
        call()
    msg = str(err.value)
    assert re.match(rf"(unknown )?{re.escape(arg)}(?!\w)", msg), f"{fn}: the message does not open with {arg!r}: {msg}"
    assert len(msg) > len(arg) + 20, msg                     # says what was given and what is allowed


def _public_widget_functions():
    out = set()
    for m in MODULES:
        for name, obj in vars(m).items():
            if inspect.isfunction(obj) and obj.__module__ == m.__name__ and not name.startswith("_") \
                    and not name.startswith("check_"):
                out.add(name)
    return out


def test_every_public_widget_function_meets_a_bad_input():
    factories = {"int_slider", "float_slider", "selection", "dropdown", "redraw"}   # plain ipywidgets builders
    missing = _public_widget_functions() - factories - {f for f, _, _ in CASES}
    assert not missing, f"no hostile-input case for {sorted(missing)}"


def test_image_messages_say_which_layout():
    with pytest.raises(ValueError, match=r"\(C, H, W\), got shape \(16, 16\); without a channel dimension"):
        WA.patch_viewer(torch.rand(16, 16))
    with pytest.raises(ValueError, match=r"\(1, C, H, W\), got shape \(1, 16, 16\)"):
        WI.operator_explorer(torch.rand(1, 16, 16), OPS)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\), got shape \(2, 16, 16\)"):
        WI.pnp_player(torch.rand(2, 16, 16), XB, TRACES)


def test_dashboard_redraws_once_per_move_and_labels_controls():
    a, b = slider(), slider()
    draws, hooks = [], []

    def draw():
        draws.append((a.value, b.value))
        return plt.figure()

    def hook():                                   # moves b: no re-draw of its own
        hooks.append(a.value)
        b.value = a.value

    box = WD.dashboard({"a": a, "b": b}, draw, rows=[["a"], ["b"]], before={"a": hook}, cache="c")
    assert draws == [(0, 0)] and a.description == "a" and box.cache == "c" and box.controls == {"a": a, "b": b}
    a.value = 2
    assert hooks == [2] and draws == [(0, 0), (2, 2)]
    b.value = 3
    assert draws[-1] == (2, 3) and len(draws) == 3
