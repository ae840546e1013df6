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
from ...nets.dit import patchify
from .basics import redraw


def _check_image(image):
    if not isinstance(image, torch.Tensor) or image.ndim != 3:
        raise ValueError(f"image must be a (C, H, W) tensor, got {getattr(image, 'shape', type(image).__name__)}")
    return image


def patch_viewer(image: torch.Tensor, patch_sizes=(1, 2, 4, 8), p: int = 4):
    """image: (C, H, W) in [-1, 1]. A slider over `patch_sizes` (each must divide H and W)
    shows the patch grid, T and the patchified token matrix (T, p * p * C)."""
    import ipywidgets as W
    import matplotlib.pyplot as plt
    image = _check_image(image)
    C, H, Wd = image.shape
    bad = [q for q in patch_sizes if H % q or Wd % q]
    if bad:
        raise ValueError(f"patch sizes {bad} do not divide the image size {H}x{Wd}")
    if p not in patch_sizes:
        raise ValueError(f"p={p} must be one of patch_sizes={tuple(patch_sizes)}")
    tokens = {q: patchify(image[None], q)[0] for q in patch_sizes}     # (T, q*q*C), precomputed
    slider = W.SelectionSlider(options=list(patch_sizes), value=p, description="patch p", continuous_update=True)
    out = W.Output()

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

    slider.observe(lambda _: redraw(out, draw), names="value")
    redraw(out, draw)
    box = W.VBox([slider, out])
    box.slider, box.out, box.draw = slider, out, draw
    return box


def attention_viewer(maps, image: torch.Tensor, num_context: int, grid_size: int, patch_size: int,
                     context_names=None, block: int = 0, head: int = 0, query: int | None = None):
    """maps: list (one per block) of (heads, L + T, L + T) attention weights of ONE sample,
    context tokens first (as `MMDiT.attention_maps(...)[b][0]`); image: (C, H, W) the input;
    num_context = L; grid_size = H / p (T = grid_size ** 2).

    Sliders: block, head, query token (0 .. L + T - 1). Left: the whole matrix, with lines
    between its four blocks (context->context, context->image / image->context,
    image->image). Middle: the query's weights on the L context tokens. Right: its weights on
    the T image tokens, drawn over the image's patch grid."""
    import ipywidgets as W
    import matplotlib.pyplot as plt
    image = _check_image(image)
    maps = [torch.as_tensor(m).float() for m in maps]
    L, T = num_context, grid_size ** 2
    for b, m in enumerate(maps):
        if m.ndim != 3 or m.shape[1:] != (L + T, L + T):
            raise ValueError(f"maps[{b}] must have shape (heads, {L + T}, {L + T}), got {tuple(m.shape)}")
    names = list(context_names) if context_names is not None else [f"c{i}" for i in range(L)]
    heads = maps[0].shape[0]
    s_block = W.IntSlider(value=block, min=0, max=len(maps) - 1, description="block")
    s_head = W.IntSlider(value=head, min=0, max=heads - 1, description="head")
    s_query = W.IntSlider(value=L + T // 2 if query is None else query, min=0, max=L + T - 1, description="query")
    out = W.Output()
    H = image.shape[-1]

    def draw():
        w = maps[s_block.value][s_head.value]                     # (L + T, L + T)
        qi = s_query.value
        row = w[qi]
        fig, ax = plt.subplots(1, 3, figsize=(11, 3.6), gridspec_kw=dict(width_ratios=[1.2, 0.8, 1]))
        ax[0].imshow(w.numpy(), cmap="viridis", interpolation="nearest")
        for a in (ax[0].axhline, ax[0].axvline):
            a(L - 0.5, color="w", lw=1.2)
        ax[0].axhline(qi, color="C3", lw=0.8, ls="--")
        ax[0].set(title=f"block {s_block.value}, head {s_head.value}: weights", xlabel="key (context | image)",
                  ylabel="query (context | image)")
        ax[1].bar(range(L), row[:L].numpy(), color="C1")
        ax[1].set(xticks=range(L), title=f"on context: {row[:L].sum():.2f}", ylim=(0, max(1e-3, row.max().item())))
        ax[1].set_xticklabels(names, rotation=45, fontsize=8)
        plots.show_image(ax[2], image.clamp(-1, 1))
        heat = row[L:].reshape(grid_size, grid_size)
        ax[2].imshow(heat.numpy(), cmap="inferno", alpha=0.6, extent=(-0.5, H - 0.5, H - 0.5, -0.5),
                     interpolation="nearest")
        who = names[qi] if qi < L else f"image token {qi - L}"
        if qi >= L:                                               # mark the query's own patch
            i, j = divmod(qi - L, grid_size)
            ax[2].add_patch(plt.Rectangle((j * patch_size - 0.5, i * patch_size - 0.5), patch_size, patch_size,
                                          fill=False, ec="C2", lw=2))
        ax[2].set_title(f"query = {who}: on image {row[L:].sum():.2f}")
        fig.tight_layout()
        return fig

    for s in (s_block, s_head, s_query):
        s.observe(lambda _: redraw(out, draw), names="value")
    redraw(out, draw)
    box = W.VBox([W.HBox([s_block, s_head, s_query]), out])
    box.sliders, box.out, box.draw = (s_block, s_head, s_query), out, draw
    return box
