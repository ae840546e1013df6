"""Widgets of chapter 14 (discrete and low-rank data); each redraws one persistent figure.

    masking_player(frames, K)           a slider over the steps of a masking / unmasking trajectory of
                                        token sequences (rows of coloured cells) or binary images
    transition_explorer(table, views)   the training-set-size slider of the low-rank transition: two
                                        curves (e.g. novel share, nn-distance ratio) with a marker at n, and
                                        the samples beside the training points in the first subspace's plane
"""
from __future__ import annotations

import torch

from .core import check_dict, check_options, dashboard, int_slider, moving, selection

__all__ = ["token_colours", "masking_player", "transition_explorer"]

_PALETTE = [(0.12, 0.47, 0.71), (1.0, 0.5, 0.05), (0.17, 0.63, 0.17), (0.84, 0.15, 0.16), (0.58, 0.4, 0.74),
            (0.55, 0.34, 0.29), (0.89, 0.47, 0.76), (0.5, 0.5, 0.5), (0.74, 0.74, 0.13), (0.09, 0.75, 0.81)]
_MASK = (0.85, 0.85, 0.85)


def token_colours(z: torch.Tensor, K: int, binary_image: bool = False) -> torch.Tensor:
    """RGB (..., 3) float of tokens z (...) in 0..K (K = the mask, light grey). binary_image: 0 black, 1 white."""
    pal = torch.tensor([(0.0, 0.0, 0.0), (1.0, 1.0, 1.0)] if binary_image else _PALETTE[:K], dtype=torch.float32)
    if len(pal) < K:
        raise ValueError(f"K={K} tokens but only {len(pal)} colours; pass at most {len(_PALETTE)} tokens")
    pal = torch.cat([pal[:K], torch.tensor([_MASK])])
    return pal[z.long().clamp(0, K)]


def _frames(frames, K: int) -> torch.Tensor:
    if isinstance(frames, (list, tuple)):
        frames = torch.stack(list(frames))
    if not isinstance(frames, torch.Tensor) or frames.ndim != 3 or frames.is_floating_point():
        raise ValueError(f"frames must be a list of (B, L) token tensors or a (steps + 1, B, L) integer tensor, got "
                         f"{tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__}")
    if bool(((frames < 0) | (frames > K)).any()):
        raise ValueError(f"frames hold tokens outside 0..{K} (K={K} data tokens and the mask {K})")
    return frames


def masking_player(frames, K: int, image_shape=None, titles=None, figsize=(8, 3)):
    """A slider over frames: (steps + 1, B, L) tokens (mask = K), e.g. a forward masking trajectory or
    mdlm_sample(..., trajectory=True). image_shape (h, w) with h w = L: show each row as a binary image
    (tokens 0 / 1); else as a row of coloured cells. titles: optional one string per frame."""
    import matplotlib.pyplot as plt
    frames = _frames(frames, K)
    n, B, L = frames.shape
    if image_shape is not None:
        h, w = image_shape
        if h * w != L:
            raise ValueError(f"image_shape {image_shape} has {h * w} pixels but the sequences have L={L}")
        rgb = token_colours(frames, K, binary_image=True).reshape(n, B, h, w, 3)
        rgb = torch.cat([torch.cat([im, torch.full((n, h, 1, 3), 0.5)], 2) for im in rgb.unbind(1)], 2)   # tiles
    else:
        rgb = token_colours(frames, K)
    titles = list(titles) if titles is not None else [f"step {i} of {n - 1}" for i in range(n)]
    fig, ax = plt.subplots(figsize=figsize)
    art = ax.imshow(rgb[0].numpy(), interpolation="nearest", aspect="equal")
    ax.set_xticks([]), ax.set_yticks([])
    head = ax.set_title(titles[0])
    fig.tight_layout()
    plt.close(fig)
    moving(fig, [art, head])
    step = int_slider(0, 0, n - 1, continuous=True)

    def draw():
        masked = float((frames[step.value] == K).double().mean())
        art.set_data(rgb[step.value].numpy())
        head.set_text(f"{titles[step.value]}   (masked: {masked:.0%}, grey)")
        return fig

    return dashboard({"step": step}, draw, slider=step, rgb=rgb)


def transition_explorer(table: dict, views: dict, figsize=(10, 3.6)):
    """table: {"n": [...], metric: {who: [...]}, other metric: {who: [...]}} per training-set size n
    (two metrics, e.g. "share of novel samples" and "nn-distance ratio");
    views: {n: (samples (N, 2), train (n, 2))} coordinates in one plane (e.g. the first true subspace).
    A slider over n redraws the marker on the curves and the scatter."""
    import matplotlib.pyplot as plt
    table = check_dict("table", table, '{"n": [...], metric: {who: [...]}, metric: {who: [...]}}')
    sizes = check_options("table['n']", table.get("n", []))
    metrics = [k for k in table if k != "n"]
    if len(metrics) != 2:
        raise ValueError(f"table must hold 'n' and two metrics, got keys {list(table)}")
    views = check_dict("views", views, "{n: (samples (N, 2), train (n, 2))}")
    if sorted(views) != sorted(sizes):
        raise ValueError(f"views must hold one entry per n in table['n'] = {sizes}, got {sorted(views)}")
    fig, (a1, a2, a3) = plt.subplots(1, 3, figsize=figsize)
    for ax, key in zip((a1, a2), metrics):
        for who, ys in table[key].items():
            ax.plot(sizes, ys, "o-", label=who)
        ax.set_xscale("log", base=2), ax.set_xlabel("training-set size n"), ax.set_title(key)
    a1.legend(fontsize=8)
    marks = [ax.axvline(sizes[0], color="k", ls=":") for ax in (a1, a2)]
    s_art = a3.scatter([], [], s=4, alpha=0.5, label="samples")
    t_art = a3.scatter([], [], s=30, marker="x", color="k", label="training points")
    lim = max(float(v[0].abs().max()) for v in views.values()) * 1.05
    a3.set_xlim(-lim, lim), a3.set_ylim(-lim, lim), a3.set_aspect("equal"), a3.legend(fontsize=8, loc="upper right")
    a3.set_title(" ")
    fig.tight_layout()
    plt.close(fig)
    moving(fig, [s_art, t_art, a3.get_legend(), a3.title] + marks)
    n_sel = selection(sizes, sizes[0])

    def draw():
        x, tr = views[n_sel.value]
        s_art.set_offsets(x[:, :2].numpy()), t_art.set_offsets(tr[:, :2].numpy())
        for m in marks:
            m.set_xdata([n_sel.value, n_sel.value])
        a3.set_title(f"network samples, n = {n_sel.value}")
        return fig

    return dashboard({"n": n_sel}, draw, slider=n_sel)
