"""Editing with cross-attention (survey 9.1): prompt-to-prompt word swaps (Hertz et al. 2022) and
attend-and-excite (Chefer et al. 2023), on a caption model nets.text.TextUNet, whose
CrossAttentionBlocks pass their weights through an Identity `probe`: a forward hook on the probe
can read the weights or return new ones, which the block then uses (out = A V).

Notation: x_t (B, C, H, W) the sample at step t, c a caption of L tokens, A_l^t (B, heads, h*w, L)
the attention of cross-attention block l at step t, S respaced DDIM steps (eta = 0), k = 0..S-1 the
step counter (k = 0 the noisiest).

Prompt-to-prompt, word swap (Hertz et al. 2022, section 3.2 "Word Swap": Edit(M_t, M_t*, t) = M_t*
if t < tau else M_t, with t counting down from T, so the source's maps M_t act in the first steps):
  1. source caption c and target c* differ by one word at the same position (equal length), and
     share the initial noise x_T (one batch [c; c*], so both are sampled together)
  2. at steps k < tau S, every block's attention of the target is replaced by the source's
     (A* <- A, all tokens: the swapped word's map is the source word's map); the values V come from
     c*, so what is drawn follows the new word and where it is drawn follows the source
  3. at steps k >= tau S the target runs on its own maps (tau = 0: plain re-sampling with c* at
     the same seed; tau = 1: maps injected at every step)
Attend-and-excite (Chefer et al. 2023, section 4, Algorithm 1):
  1. at steps k < n_excite, read the maps of the chosen blocks with x_t requiring grad; average over
     heads and blocks (upsampled to H x W); re-normalise over the caption's words (padding dropped,
     as they drop <sot>; by the sum rather than their softmax); smooth with a 3x3 Gaussian
  2. loss = max over the object tokens s of (1 - max over pixels of A_s): the most neglected token
  3. x_t <- x_t - alpha grad_x loss (each sample's loss moves only its own x_t), then the DDIM step
     from the updated x_t. (Their iterative refinement to loss thresholds at a few steps, and
     their decaying step size, are left out.)
Where the denoiser contract ends: both functions take a denoiser of a TextUNet (denoiser.model),
because they read and replace the network's attention weights, which D(x_t, t) does not expose.
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F

from .._validate import check_int, check_positive_int, check_real
from ..samplers import ddim_step

__all__ = ["cross_attention_blocks", "attention_hook", "swap_word", "prompt_to_prompt", "object_tokens",
           "SHAPE_WORDS", "excite_loss", "attend_and_excite", "objects_present", "edit_scores", "tau_explorer"]


def _model_of(denoiser):
    from ..nets.text import TextUNet
    model = getattr(denoiser, "model", None)
    if not isinstance(model, TextUNet) or not hasattr(denoiser, "x0_eps"):
        raise TypeError(f"denoiser must be the denoiser of a TextUNet (dd.to_denoiser / pretrained_denoiser), "
                        f"got {type(denoiser).__name__}")
    return model


def cross_attention_blocks(model) -> dict:
    """{name: CrossAttentionBlock} of a TextUNet, in forward order ("down.0.2", ..., "mid.1", "up.5.2")."""
    from ..nets.text import CrossAttentionBlock
    return {n: m for n, m in model.named_modules() if isinstance(m, CrossAttentionBlock)}


@contextlib.contextmanager
def attention_hook(model, fn, first: bool = False):
    """Within the block, fn(name, A) runs on every cross-attention's weights A: (B, heads, h*w, L);
    its return value (a tensor of the same shape) replaces A, or None keeps A. first=True runs fn
    before the hooks already there (so they, e.g. `model.features`, see the replaced weights)."""
    handles = [blk.probe.register_forward_hook(lambda mod, inp, out, n=n: fn(n, out), prepend=first)
               for n, blk in cross_attention_blocks(model).items()]
    try:
        yield model
    finally:
        for h in handles:
            h.remove()


def swap_word(caption: str, old: str, new: str, occurrence: int = 0) -> str:
    """The caption with the occurrence-th `old` replaced by `new` (same number of words)."""
    words = caption.split()
    hits = [k for k, w in enumerate(words) if w == old]
    if len(hits) <= occurrence:
        raise ValueError(f"word {old!r} appears {len(hits)} time(s) in caption {caption!r}")
    words[hits[occurrence]] = new
    return " ".join(words)


def _x_T(n: int, size: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, size, size, generator=g)


def _x0_eps(denoiser, x: torch.Tensor, t: torch.Tensor, captions, w: float) -> tuple:
    """(x0, eps) of the captions with classifier-free guidance weight w (nets.text.caption_guidance's
    formula, D_u + w (D_c - D_u)); for w != 1 one batch [captions; null], so the conditional rows
    come first in every attention the hooks see."""
    if w == 1:
        return denoiser.x0_eps(x, t, list(captions))
    B = len(x)
    x0, eps = denoiser.x0_eps(torch.cat([x, x]), torch.cat([t, t]), list(captions) + [""] * B)
    (x0_c, x0_u), (eps_c, eps_u) = x0.chunk(2), eps.chunk(2)
    return x0_u + w * (x0_c - x0_u), eps_u + w * (eps_c - eps_u)


def prompt_to_prompt(denoiser, sources, targets, tau: float, steps: int = 20, seed: int = 0, size: int = 16,
                     w: float = 1.0) -> tuple:
    """Word-swap prompt-to-prompt (steps 1-3). sources, targets: lists of N captions, each pair of
    equal length; tau in [0, 1]; w: caption guidance weight (1: none; the null branch's maps are not
    injected). Returns (x_src, x_edit), each (N, 3, size, size); sample n of both starts from the
    same noise (drawn from `seed`)."""
    model = _model_of(denoiser)
    tau = check_real("tau", tau, lo=0, hi=1)
    w = check_real("w", w)
    steps = check_positive_int("steps", steps)
    if not isinstance(sources, (list, tuple)) or not isinstance(targets, (list, tuple)) or len(sources) != len(targets) \
            or not sources:
        raise ValueError("sources and targets must be non-empty lists of captions of the same length")
    for s, t in zip(sources, targets):
        if len(str(s).split()) != len(str(t).split()):
            raise ValueError(f"a word swap needs captions of equal length, got {s!r} and {t!r}")
    N = len(sources)
    x = _x_T(N, size, seed).repeat(2, 1, 1, 1)                              # 1. [source; target], shared noise
    caps = list(sources) + list(targets)
    sched = denoiser.schedule.respace(steps)
    ab, ts = sched.alpha_bar.tolist(), sched.timesteps.tolist()
    state = {"inject": False}

    def inject(name, a):                                                     # 2. A* <- A while injecting
        return torch.cat([a[:N], a[:N], a[2 * N:]]) if state["inject"] else None

    with torch.no_grad(), attention_hook(model, inject, first=True):
        for k, i in enumerate(reversed(range(len(sched)))):
            state["inject"] = k < tau * steps                                # 3. then the target's own maps
            x0, eps = _x0_eps(denoiser, x, torch.full((2 * N,), ts[i]), caps, w)
            x = ddim_step(x, x0, eps, ab[i], ab[i - 1] if i > 0 else 1.0) if i > 0 else x0
    return x[:N], x[N:]


def object_tokens(caption: str, words=("circle", "square", "triangle")) -> list:
    """Token indices of the caption's object words (default: its shape nouns)."""
    return [k for k, w in enumerate(caption.lower().split()) if w in words]


def _smooth(m: torch.Tensor) -> torch.Tensor:
    """3x3 Gaussian (std 0.5 pixel) smoothing of maps (B, K, H, W), replicate padding."""
    k1 = torch.exp(-torch.tensor([1.0, 0.0, 1.0]) / (2 * 0.25))
    k = (k1[:, None] * k1[None, :]) / (k1.sum() ** 2)
    B, K, H, W = m.shape
    out = F.conv2d(F.pad(m.reshape(B * K, 1, H, W), (1, 1, 1, 1), mode="replicate"), k[None, None])
    return out.reshape(B, K, H, W)


SHAPE_WORDS = ("circle", "square", "triangle")


def excite_loss(acts: dict, captions, size: int, words=SHAPE_WORDS) -> torch.Tensor:
    """Step 1-2: acts {name: A (B, heads, h*w, L)} -> per-sample loss (B,) = max over the object
    tokens (the caption's `words`) of (1 - max pixel of the token's smoothed, word-normalised map
    at size x size)."""
    maps = 0
    for a in acts.values():
        B, _, hw, L = a.shape
        h = int(round(hw ** 0.5))
        maps = maps + F.interpolate(a.mean(1).transpose(1, 2).reshape(B, L, h, h), size=(size, size), mode="bilinear",
                                    align_corners=False)
    maps = maps / len(acts)                                                 # (B, L, H, W)
    out = []
    for b, cap in enumerate(captions):
        n_words = len(cap.split())
        m = maps[b, :n_words] / maps[b, :n_words].sum(0, keepdim=True)    # over the words (padding dropped)
        tok = object_tokens(cap, words)
        if not tok:
            raise ValueError(f"caption {cap!r} names no object word")
        peaks = _smooth(m[tok][None])[0].flatten(1).max(1).values
        out.append((1 - peaks).max())
    return torch.stack(out)


def attend_and_excite(denoiser, captions, n_excite: int = 5, alpha: float = 20.0, steps: int = 20, seed: int = 0,
                      size: int = 16, min_res: int = 8, w: float = 1.0, words=SHAPE_WORDS) -> torch.Tensor:
    """DDIM samples (N, 3, size, size) of N captions from the noise of `seed`, with attend-and-excite
    updates (steps 1-3) at the first n_excite steps (n_excite = 0: plain sampling), step size alpha,
    maps of the blocks at resolution >= min_res (of the conditional branch), the object tokens
    those of `words` (Chefer et al. excite the nouns), caption guidance w."""
    model = _model_of(denoiser)
    w = check_real("w", w)
    n_excite = check_int("n_excite", n_excite, lo=0)
    alpha = check_real("alpha", alpha, lo=0)
    steps = check_positive_int("steps", steps)
    if not isinstance(captions, (list, tuple)) or not captions:
        raise ValueError("captions must be a non-empty list of str")
    x = _x_T(len(captions), size, seed)
    sched = denoiser.schedule.respace(steps)
    ab, ts = sched.alpha_bar.tolist(), sched.timesteps.tolist()
    acts = {}

    def record(name, a):
        if a.shape[2] >= min_res ** 2:
            acts[name] = a

    flags = [p.requires_grad for p in model.parameters()]
    model.requires_grad_(False)
    try:
        for k, i in enumerate(reversed(range(len(sched)))):
            t = torch.full((len(x),), ts[i])
            if k < n_excite and alpha > 0:
                x = x.detach().requires_grad_(True)
                acts.clear()
                with attention_hook(model, record):
                    model(x, t, list(captions))                              # 1. the maps, with grad
                loss = excite_loss(acts, captions, size, words)               # 2. per sample
                grad, = torch.autograd.grad(loss.sum(), x)
                x = (x - alpha * grad).detach()                               # 3. each x_t moves by its own loss
            with torch.no_grad():
                x0, eps = _x0_eps(denoiser, x, t, captions, w)
                x = ddim_step(x, x0, eps, ab[i], ab[i - 1] if i > 0 else 1.0) if i > 0 else x0
    finally:
        for p, f in zip(model.parameters(), flags):
            p.requires_grad_(f)
    return x


def objects_present(cells: torch.Tensor, captions, attribute: str = "all") -> torch.Tensor:
    """(N,) bool: every object the caption names is somewhere in the predicted cell labels cells:
    (N, 4) (data.scenes: 0 empty, else 1 + 3 colour + shape), wherever it is; objects and cells
    compared through `attribute` ("all": colour and shape, "colour", "shape"). Two objects that
    look alike through the attribute need two such cells."""
    from ..data.scenes import parse_caption
    if attribute not in ("all", "colour", "shape"):
        raise ValueError(f"attribute must be 'all', 'colour' or 'shape', got {attribute!r}")
    if not isinstance(cells, torch.Tensor) or cells.ndim != 2 or cells.shape[1] != 4 or len(cells) != len(captions):
        raise ValueError("cells must be (N, 4) cell labels, one row per caption")
    out = []
    for row, cap in zip(cells.tolist(), captions):
        objs, _ = parse_caption(cap)
        have = [_project(v, attribute) for v in row]
        want = [_project(1 + 3 * c + s, attribute) for c, s in objs]
        out.append(all(have.count(v) >= want.count(v) for v in want))
    return torch.tensor(out)


def _project(label: int, attribute: str) -> int:
    """A cell label (0 empty, else 1 + 3 colour + shape) seen through one attribute."""
    if label <= 0 or attribute == "all":
        return label
    return 1 + (label - 1) // 3 if attribute == "colour" else 1 + (label - 1) % 3


def edit_scores(cells_src: torch.Tensor, cells_edit: torch.Tensor, sources, targets, edited: int = 0,
                attribute: str = "all", x_src: torch.Tensor | None = None, x_edit: torch.Tensor | None = None,
                tol: float = 0.25) -> dict:
    """Grades of word-swap edits from predicted cell labels (N, 4) of the source samples and of the
    edits, and the N source and target captions, whose object `edited` (0: A, 1: B) had a word
    swapped; labels compared through `attribute` ("all", "colour" or "shape"):
    "changed": the cell where the source drew that object now holds the target's object;
    "layout": the same cells are occupied; "kept": every other occupied cell kept its label;
    "success": all three; with x_src, x_edit (N, 3, S, S): "pixels kept", the fraction of pixels
    outside the edited object's cell (the whole image if the source lacks it) whose channels all
    agree within tol. Returns {name: fraction}; a source sample that lacks the object misses "changed"."""
    from ..data.scenes import parse_caption
    if attribute not in ("all", "colour", "shape"):
        raise ValueError(f"attribute must be 'all', 'colour' or 'shape', got {attribute!r}")
    if not isinstance(cells_src, torch.Tensor) or not isinstance(cells_edit, torch.Tensor) \
            or cells_src.shape != cells_edit.shape or cells_src.ndim != 2 or cells_src.shape[1] != 4 \
            or not len(sources) == len(targets) == len(cells_src):
        raise ValueError("cells_src and cells_edit must be (N, 4) cell labels with one source and one target caption per row")
    res = {"changed": [], "layout": [], "kept": []}
    where_all = []
    for s, e, src, tgt in zip(cells_src.tolist(), cells_edit.tolist(), sources, targets):
        s, e = [_project(v, attribute) for v in s], [_project(v, attribute) for v in e]
        old, new = (_project(1 + 3 * c + sh, attribute) for c, sh in (parse_caption(src)[0][edited],
                                                                         parse_caption(tgt)[0][edited]))
        where = [k for k in range(4) if s[k] == old][:1]
        where_all.append(where)
        res["changed"].append(bool(where) and e[where[0]] == new)
        res["layout"].append([v > 0 for v in s] == [v > 0 for v in e])
        res["kept"].append(all(e[k] == s[k] for k in range(4) if s[k] > 0 and k not in where))
    out = {k: sum(v) / len(v) for k, v in res.items()}
    out["success"] = sum(a and b and c for a, b, c in zip(*res.values())) / len(targets)
    if x_src is not None:
        if x_edit is None or x_src.shape != x_edit.shape or x_src.ndim != 4 or len(x_src) != len(targets):
            raise ValueError("x_src and x_edit must be (N, 3, S, S), one row per caption")
        agree = ((x_src - x_edit).abs().amax(1) < tol).float()              # (N, S, S)
        S = x_src.shape[-1]
        frac = []
        for n, where in enumerate(where_all):
            keep = torch.ones(S, S, dtype=torch.bool)
            for k in where:
                keep[(k // 2) * S // 2:(k // 2 + 1) * S // 2, (k % 2) * S // 2:(k % 2 + 1) * S // 2] = False
            frac.append(agree[n][keep].mean().item())
        out["pixels kept"] = sum(frac) / len(frac)
    return out


def tau_explorer(x_src: torch.Tensor, edits: dict, sources, targets, n_show: int = 4):
    """A widget: a tau slider over precomputed prompt-to-prompt edits. x_src: (N, 3, H, W) source
    samples; edits: {tau: (N, 3, H, W)} (from prompt_to_prompt at each tau); the first n_show
    scenes, source above edit, captions as titles. Returns the dashboard (an ipywidgets VBox)."""
    import matplotlib.pyplot as plt

    from ..viz.widgets.core import dashboard, moving, selection
    taus = sorted(edits)
    if not taus or any(e.shape != x_src.shape for e in edits.values()):
        raise ValueError("edits must map tau -> samples of the same shape as x_src")
    n = min(n_show, len(x_src))
    slider = selection(taus, taus[len(taus) // 2])
    show = lambda im: ((im.permute(1, 2, 0) + 1) / 2).clamp(0, 1).numpy()   # noqa: E731

    # One figure, built once: the sources stay, a move swaps the edits and their titles (blitted).
    fig, ax = plt.subplots(2, n, figsize=(2.3 * n, 4.6), squeeze=False)
    edited = []
    for k in range(n):
        ax[0, k].imshow(show(x_src[k]))
        ax[0, k].set_title(sources[k].replace(" a ", "\na "), fontsize=7)
        edited.append(ax[1, k].imshow(show(edits[slider.value][k])))
        ax[1, k].set_title(targets[k].replace(" a ", "\na ") + "\ntau = 0.00", fontsize=7)
        for a in ax[:, k]:
            a.axis("off")
    fig.tight_layout()
    moving(fig, edited + [a.title for a in ax[1]])

    def draw():
        tau = slider.value
        for k in range(n):
            edited[k].set_data(show(edits[tau][k]))
            ax[1, k].set_title(targets[k].replace(" a ", "\na ") + f"\ntau = {tau:.2f}", fontsize=7)
        return fig
    return dashboard({"tau": slider}, draw, slider=slider)
