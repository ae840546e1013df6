"""Widget of the conclusion (chapter 16): every recorded result of one chapter beside its baseline."""
from __future__ import annotations

from .core import dashboard, dropdown

__all__ = ["results_explorer", "plot_results"]


def plot_results(results, chapter: str):
    """Horizontal bars: each result of `chapter` (dicts from dd.results.collect) and its baseline,
    one panel row per result, each bar labelled with its value; returns the Figure."""
    import matplotlib.pyplot as plt
    rows = [r for r in results if r["chapter"] == chapter]
    if not rows:
        raise ValueError(f"chapter {chapter!r} recorded no results; chapters with results: "
                         f"{sorted({r['chapter'] for r in results})}")
    fig, axes = plt.subplots(len(rows), 1, figsize=(7, 0.2 + 1.0 * len(rows)), squeeze=False)
    for ax, r in zip(axes[:, 0], rows):
        names, vals = [r["method"]], [r["value"]]
        if r["baseline"] is not None:
            names.append(r["baseline"])
            vals.append(r["baseline_value"])
        better = r["baseline_value"] is None or (r["value"] > r["baseline_value"]) == r["higher_is_better"]
        bars = ax.barh(range(len(vals)), vals, color=["tab:green" if better else "tab:red", "tab:gray"][:len(vals)])
        ax.set_yticks(range(len(vals)), [n[:40] for n in names], fontsize=8)
        ax.bar_label(bars, fmt="%.3g", fontsize=8)
        arrow = "higher is better" if r["higher_is_better"] else "lower is better"
        ax.set_title(f"{r['metric']} ({arrow})", fontsize=8, loc="left")
        ax.invert_yaxis()
    fig.tight_layout()
    return fig


def results_explorer(results):
    """A dropdown over the chapters that recorded results; shows `plot_results` for the chosen one."""
    results = list(results)
    chapters = sorted({r["chapter"] for r in results})
    if not chapters:
        raise ValueError("results must hold at least one recorded result (dd.results.collect found none)")
    pick = dropdown(chapters)
    return dashboard({"chapter": pick}, lambda: plot_results(results, pick.value), dropdown=pick)
