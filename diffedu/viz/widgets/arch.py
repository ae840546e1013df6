"""Dashboards for chapter 06 (architectures): how a DiT sees an image, and where an MMDiT looks.

  patch_viewer      slider over the patch size p: the image with its p x p patch grid, the
                    token count T = H * W / p ** 2, and the token matrix (T, p * p * C) that
                    `patchify` hands to the transformer
  attention_viewer  sliders over block, head and query token of precomputed joint-attention
                    maps (MMDiT): the full (L + T) x (L + T) matrix with its four blocks, and
                    the chosen query's attention on the context tokens and on the patch grid

Everything is computed once when the widget is built; a slider move only re-draws.
"""
from __future__ import annotations

import torch

from .. import plots
from ..._validate import check_choice
from ...nets.dit import patchify
from .core import check_image, check_int, check_options, dashboard, int_slider, moving, selection


def patch_viewer(image: torch.Tensor, patch_sizes=(1, 2, 4, 8), p: int = 4):
    """image: (C, H, W) in [-1, 1]. A slider over `patch_sizes` (each must divide H and W)
    shows the patch grid, T and the patchified token matrix (T, p * p * C)."""
    import matplotlib.pyplot as plt
    image = check_image("image", image)
    C, H, Wd = image.shape
    patch_sizes = check_options("patch_sizes", patch_sizes)
    bad = [q for q in patch_sizes if not isinstance(q, int) or q < 1 or H % q or Wd % q]
    if bad:
        raise ValueError(f"patch_sizes must be positive ints that divide the image size {H}x{Wd}; "
                         f"patch sizes {bad} do not divide the image size")
    check_choice("p", p, patch_sizes)
    tokens = {q: patchify(image[None], q)[0] for q in patch_sizes}     # (T, q*q*C), precomputed
    slider = selection(patch_sizes, p, continuous=True)

    def draw():
        q = slider.value
        tok = tokens[q]
        fig, ax = plt.subplots(1, 2, figsize=(8.5, 3.8), gridspec_kw=dict(width_ratios=[1, 1.3]))
        plots.show_image(ax[0], image.clamp(-1, 1), f"{H}x{Wd} image, p = {q}: T = {tok.shape[0]} tokens")
        for k in range(0, H + 1, q):
            ax[0].axhline(k - 0.5, color="C3", lw=0.8)
        for k in range(0, Wd + 1, q):
            ax[0].axvline(k - 0.5, color="C3", lw=0.8)
        if H // q <= 8:                                         # number the tokens (row-major)
            for i in range(H // q):
                for j in range(Wd // q):
                    ax[0].text(j * q + q / 2 - 0.5, i * q + q / 2 - 0.5, str(i * (Wd // q) + j),
                               color="C1", ha="center", va="center", fontsize=8)
        ax[1].imshow(tok.numpy(), cmap="gray", vmin=-1, vmax=1, aspect="auto", interpolation="nearest")
        ax[1].set(title=f"patchify: (T, p*p*C) = {tuple(tok.shape)}", xlabel="pixel of the patch",
                  ylabel="token (row-major patch)")
        fig.tight_layout()
        return fig

    return dashboard({"patch p": slider}, draw, slider=slider)


def attention_viewer(maps, image: torch.Tensor, num_context: int, grid_size: int, patch_size: int,
                     context_names=None, block: int = 0, head: int = 0, query: int | None = None):
    """maps: list (one per block) of (heads, L + T, L + T) attention weights of ONE sample,
    context tokens first (as `MMDiT.attention_maps(...)[b][0]`); image: (C, H, W) the input;
    num_context = L; grid_size = H / p (T = grid_size ** 2).

    Sliders: block, head, query token (0 .. L + T - 1). Left: the whole matrix, with lines
    between its four blocks (context->context, context->image / image->context,
    image->image). Middle: the query's weights on the L context tokens. Right: its weights on
    the T image tokens, drawn over the image's patch grid."""
    import matplotlib.pyplot as plt
    image = check_image("image", image)
    if isinstance(maps, torch.Tensor) or not isinstance(maps, (list, tuple)) or not maps:
        raise TypeError(f"maps must be a non-empty list (one per block) of (heads, L + T, L + T) attention "
                        f"weights, got {type(maps).__name__}{' (empty)' if isinstance(maps, (list, tuple)) else ''}")
    maps = [torch.as_tensor(m).float() for m in maps]
    L = check_int("num_context", num_context, 0, 10 ** 6)
    T = check_int("grid_size", grid_size, 1, 10 ** 4) ** 2
    check_int("patch_size", patch_size, 1, 10 ** 4)
    if image.shape[-2:] != (grid_size * patch_size,) * 2:
        raise ValueError(f"image must be (C, grid_size * patch_size, grid_size * patch_size) = "
                         f"(C, {grid_size * patch_size}, {grid_size * patch_size}), got shape {tuple(image.shape)}")
    for b, m in enumerate(maps):
        if m.ndim != 3 or m.shape[1:] != (L + T, L + T) or m.shape[0] != maps[0].shape[0]:
            raise ValueError(f"maps[{b}] must have shape (heads, {L + T}, {L + T}) = (heads, L + T, L + T) with "
                             f"the same heads for every block, got {tuple(m.shape)}")
    names = list(context_names) if context_names is not None else [f"c{i}" for i in range(L)]
    if len(names) != L:
        raise ValueError(f"context_names must name the num_context = {L} context tokens, got {len(names)} names")
    heads = maps[0].shape[0]
    check_int("block", block, 0, len(maps) - 1)
    check_int("head", head, 0, heads - 1)
    query = L + T // 2 if query is None else check_int("query", query, 0, L + T - 1)
    s_block, s_head = int_slider(block, 0, len(maps) - 1, True), int_slider(head, 0, heads - 1, True)
    s_query = int_slider(query, 0, L + T - 1, True)
    H = image.shape[-1]

    # One figure, built once; a move updates the weights, the query's bars and heat map, blitted
    # (core.moving; the bar panel is re-drawn whole, its y-limits follow the row).
    w0 = maps[s_block.value][s_head.value]
    fig, ax = plt.subplots(1, 3, figsize=(11, 3.6), gridspec_kw=dict(width_ratios=[1.2, 0.8, 1]))
    weights = ax[0].imshow(w0.numpy(), cmap="viridis", interpolation="nearest")
    split = [a(L - 0.5, color="w", lw=1.2) for a in (ax[0].axhline, ax[0].axvline)]   # context | image
    qline = ax[0].axhline(0, color="C3", lw=0.8, ls="--")
    ax[0].set(title=" ", xlabel="key (context | image)", ylabel="query (context | image)")
    bars = ax[1].bar(range(L), [0.0] * L, color="C1")
    ax[1].set(xticks=range(L), title=" ")
    ax[1].set_xticklabels(names, rotation=45, fontsize=8)
    plots.show_image(ax[2], image.clamp(-1, 1))
    heat = ax[2].imshow(w0[0, L:].reshape(grid_size, grid_size).numpy(), cmap="inferno", alpha=0.6,
                        extent=(-0.5, H - 0.5, H - 0.5, -0.5), interpolation="nearest")
    box = ax[2].add_patch(plt.Rectangle((0, 0), patch_size, patch_size, fill=False, ec="C2", lw=2))
    ax[2].set_title(" ")
    fig.tight_layout()
    moving(fig, [weights, *split, qline, ax[0].title, ax[1], heat, box, ax[2].title])     # drawn in this order

    def draw():
        w = maps[s_block.value][s_head.value]                     # (L + T, L + T)
        qi = s_query.value
        row = w[qi]
        weights.set_data(w.numpy())
        weights.set_clim(float(w.min()), float(w.max()))
        qline.set_ydata([qi, qi])
        ax[0].set_title(f"block {s_block.value}, head {s_head.value}: weights")
        for b, v in zip(bars, row[:L].tolist()):
            b.set_height(v)
        ax[1].set(title=f"on context: {row[:L].sum():.2f}", ylim=(0, max(1e-3, row.max().item())))
        hm = row[L:].reshape(grid_size, grid_size)
        heat.set_data(hm.numpy())
        heat.set_clim(float(hm.min()), float(hm.max()))
        who = names[qi] if qi < L else f"image token {qi - L}"
        i, j = divmod(max(qi - L, 0), grid_size)                 # the query's own patch, when it is one
        box.set_xy((j * patch_size - 0.5, i * patch_size - 0.5))
        box.set_visible(qi >= L)
        ax[2].set_title(f"query = {who}: on image {row[L:].sum():.2f}")
        return fig

    return dashboard({"block": s_block, "head": s_head, "query": s_query}, draw, sliders=(s_block, s_head, s_query))
