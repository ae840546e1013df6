"""Cross-attention as a signal of *where* a word is: token maps, their overlap with the objects'
true masks (survey 9.1), and correspondence by optimising a conditioning embedding (Hedlin et al.
2023, survey reference [10]; survey 9.2). Works on nets.text.TextUNet (chapter 12), whose
CrossAttentionBlocks pass their weights through an Identity `probe` that `features` records.

Also: per-layer token maps (layer_token_maps), the mean top-k IoU of a word's map with its object
against the other object's word and random pixels (object_iou), stripe-textured scenes (textured)
and the hit rates of Hedlin's method and of raw pixels on scene pairs (match_hits).

Notation (TextUNet's docstring): A = softmax(Q K^T / sqrt(d)) in R^{HW x L} per block and head;
the *token map* of token l is A[:, l] reshaped to the block's h x w, averaged over heads, every
attention block (upsampled to the image size) and noise draws.

Hedlin et al. 2023 (section 3), in this model's terms:
  1. x_t^src = noised source image at step t; c: (1, L, D) a free context (the caption tokens the
     U-Net reads), initialised from the empty caption
  2. optimise c so that token l's map on x_t^src matches a Gaussian bump at the query point p
     (both normalised to sum 1 over pixels; squared error; Adam), the network frozen
  3. run the same c on x_t^tgt; the match is the argmax of token l's map
Where the denoiser contract ends: this reads and optimises the network's context input, which no
denoiser D(x_t, t) exposes, so the functions take the TextUNet itself.
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F

from .._validate import check_int, check_positive_int, check_tensor

__all__ = ["attention_layers", "token_maps", "layer_token_maps", "word_position", "topk_iou", "object_iou", "with_context", "bump",
           "optimise_context", "attention_match", "shared_object_pairs", "centroid", "textured", "match_hits"]


def attention_layers(model, image_shape) -> list:
    """Names of the model's attention probes ("attn.down.2", "attn.mid", ...) for images (C, H, W)."""
    with torch.no_grad():
        names = list(model.features(torch.zeros(1, *image_shape), torch.zeros(1, dtype=torch.long)))
    return [n for n in names if n.startswith("attn.")]


def _maps(acts: dict, size) -> torch.Tensor:
    """{name: (B, heads, h*w, L)} -> (B, L, H, W): mean over heads and layers, each upsampled."""
    out = 0
    for a in acts.values():
        B, _, hw, L = a.shape
        h = int(round(hw ** 0.5))
        m = a.mean(1).transpose(1, 2).reshape(B, L, h, h)
        out = out + F.interpolate(m, size=size, mode="bilinear", align_corners=False)
    return out / len(acts)


def token_maps(model, images: torch.Tensor, captions, t: int, schedule, n_noise: int = 2, seed: int = 0,
               layers=None) -> torch.Tensor:
    """Token maps (B, L, H, W) of images (B, C, H, W) read with their captions (list of B str) at
    step t, averaged over heads, the attention layers (default: all) and n_noise draws."""
    check_tensor("images", images, ndim=4, finite=True)
    check_positive_int("n_noise", n_noise)
    t = check_int("t", t, lo=0, hi=len(schedule) - 1)
    layers = attention_layers(model, images.shape[1:]) if layers is None else list(layers)
    ab = float(schedule.alpha_bar[t])
    g = torch.Generator().manual_seed(seed)
    out = 0
    with torch.no_grad():
        for _ in range(n_noise):
            xt = ab ** 0.5 * images + (1 - ab) ** 0.5 * torch.randn(images.shape, generator=g)
            acts = model.features(xt, torch.full((len(images),), t), captions, layers)
            out = out + _maps(acts, images.shape[-2:]) / n_noise
    return out


def layer_token_maps(model, images: torch.Tensor, captions, t: int, schedule, n_noise: int = 2, seed: int = 0) -> dict:
    """{layer: token maps (B, L, H, W)} of every attention layer separately (heads and n_noise draws
    averaged, each upsampled to the image size), from the same noise draws as token_maps; their
    mean over layers is token_maps(..., layers=None)."""
    check_tensor("images", images, ndim=4, finite=True)
    check_positive_int("n_noise", n_noise)
    t = check_int("t", t, lo=0, hi=len(schedule) - 1)
    layers = attention_layers(model, images.shape[1:])
    ab = float(schedule.alpha_bar[t])
    g = torch.Generator().manual_seed(seed)
    out = {name: 0 for name in layers}
    with torch.no_grad():
        for _ in range(n_noise):
            xt = ab ** 0.5 * images + (1 - ab) ** 0.5 * torch.randn(images.shape, generator=g)
            acts = model.features(xt, torch.full((len(images),), t), captions, layers)
            for name in layers:
                out[name] = out[name] + _maps({name: acts[name]}, images.shape[-2:]) / n_noise
    return out


def word_position(model, caption: str, word: str, occurrence: int = 0) -> int:
    """Token index of `word` in the tokenized caption (its occurrence-th appearance)."""
    words = caption.lower().split()
    hits = [k for k, w in enumerate(words) if w == word]
    if len(hits) <= occurrence:
        raise ValueError(f"word {word!r} appears {len(hits)} time(s) in caption {caption!r}")
    return hits[occurrence]


def topk_iou(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """IoU of each map's k highest pixels with its mask, k = the mask's area (no threshold to tune).
    maps: (N, H, W) float; masks: (N, H, W) bool, each non-empty. Returns (N,)."""
    check_tensor("maps", maps, ndim=3)
    if masks.shape != maps.shape or masks.dtype != torch.bool:
        raise ValueError(f"masks must be a bool tensor of shape {tuple(maps.shape)}")
    flat, m = maps.flatten(1), masks.flatten(1)
    k = m.sum(1)
    if bool((k == 0).any()):
        raise ValueError("every mask must hold at least one pixel")
    rank = flat.argsort(1, descending=True).argsort(1)                  # 0 for the highest pixel
    top = rank < k[:, None]
    return (top & m).sum(1).float() / (top | m).sum(1).float()


def object_iou(maps: torch.Tensor, sc, word: str = "shape") -> tuple:
    """Mean top-k IoU over every object of two-object scenes sc (data.scenes.Scenes, N scenes):
    (own, other, chance): the object's `word` ("shape" or "colour") map against its mask, the
    other object's same word against it, and random pixels (k of N_pix: IoU = a / (2 - a), a the
    mask's area fraction, since E|top-k & mask| = k^2 / N_pix). maps: (N, L, H, W) token maps."""
    if word not in ("shape", "colour"):
        raise ValueError(f"word must be 'shape' or 'colour', got {word!r}")
    if bool((sc.relations < 0).any()):
        raise ValueError("object_iou needs two-object scenes (scenes(..., two_object_prob=1.0))")
    off = 2 if word == "shape" else 1
    tok = [[off, len(c.split()) - 3 + off] for c in sc.captions]          # word of object A, of object B
    n = len(sc.captions)
    own = torch.cat([topk_iou(maps[[i], tok[i][k]], sc.masks[[i], k]) for i in range(n) for k in (0, 1)])
    other = torch.cat([topk_iou(maps[[i], tok[i][1 - k]], sc.masks[[i], k]) for i in range(n) for k in (0, 1)])
    area = sc.masks.flatten(2).float().mean(2).flatten()
    return own.mean().item(), other.mean().item(), (area / (2 - area)).mean().item()


@contextlib.contextmanager
def with_context(model, context: torch.Tensor):
    """Within the block, the model reads `context` (B or 1, L, D) instead of encoding its caption:
    TextUNet.embed is replaced on the instance (emb = time embedding + projected mean token, as
    TextUNet.embed computes it), then restored."""
    from ..nets.embeddings import as_timesteps, timestep_embedding

    def embed(x, t, cond=None):
        c = context.expand(x.shape[0], -1, -1)
        emb = model.time_embed(timestep_embedding(as_timesteps(t, x.shape[0], x.device), model.base_channels))
        return emb + model.text_to_emb(c.mean(1)), c
    model.embed = embed
    try:
        yield model
    finally:
        del model.embed


def bump(point: torch.Tensor, size: int, sigma: float) -> torch.Tensor:
    """Gaussian bump (size, size) at pixel point (x, y), std sigma pixels, summing to 1."""
    c = torch.arange(size, dtype=torch.float32) + 0.5
    g = torch.exp(-((c[None, :] - point[0]) ** 2 + (c[:, None] - point[1]) ** 2) / (2 * sigma ** 2))
    return g / g.sum()


def optimise_context(model, x_src: torch.Tensor, point: torch.Tensor, t: int, schedule, token: int = 1,
                     steps: int = 30, lr: float = 0.05, sigma: float = 1.0, seed: int = 0) -> tuple:
    """Steps 1-2 for one source image x_src: (1, C, H, W) and one point (x, y). Returns (context
    (1, L, D), the losses). The network is frozen; only the context moves."""
    check_positive_int("steps", steps)
    t = check_int("t", t, lo=0, hi=len(schedule) - 1)
    ab = float(schedule.alpha_bar[t])
    g = torch.Generator().manual_seed(seed)
    xt = ab ** 0.5 * x_src + (1 - ab) ** 0.5 * torch.randn(x_src.shape, generator=g)
    with torch.no_grad():
        init = model.text_encoder(model.tokens([""], 1))                  # (1, L, D): the empty caption
    context = init.clone().requires_grad_(True)
    target = bump(point, x_src.shape[-1], sigma)
    layers = attention_layers(model, x_src.shape[1:])
    opt = torch.optim.Adam([context], lr=lr)
    losses, flags = [], [p.requires_grad for p in model.parameters()]
    model.requires_grad_(False)                                           # frozen: gradients reach c only
    for _ in range(steps):
        with with_context(model, context):
            m = _maps(model.features(xt, torch.full((1,), t), None, layers), x_src.shape[-2:])[0, token]
        loss = ((m / m.sum() - target) ** 2).sum() * target.numel()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    for p, flag in zip(model.parameters(), flags):
        p.requires_grad_(flag)
    return context.detach(), losses


def attention_match(model, context: torch.Tensor, x_tgt: torch.Tensor, t: int, schedule, token: int = 1,
                    seed: int = 0) -> torch.Tensor:
    """Step 3: the pixel centre (x, y) where token `token` of `context` attends most on x_tgt: (1, C, H, W)."""
    ab = float(schedule.alpha_bar[t])
    g = torch.Generator().manual_seed(seed + 1)
    xt = ab ** 0.5 * x_tgt + (1 - ab) ** 0.5 * torch.randn(x_tgt.shape, generator=g)
    with torch.no_grad(), with_context(model, context):
        m = _maps(model.features(xt, torch.full((1,), t), None, attention_layers(model, x_tgt.shape[1:])),
                  x_tgt.shape[-2:])[0, token]
    best = int(m.argmax())
    return torch.tensor([best % m.shape[1] + 0.5, best // m.shape[1] + 0.5])


def shared_object_pairs(sc, n: int, colour: str = "same") -> list:
    """Up to n (i, a, j, b): scene i's object a and scene j's object b have the same shape and sit in
    different cells (so copying the coordinates misses); colour "same": the same colour too,
    "different": another colour (so matching colours misses). sc: data.scenes.Scenes."""
    if colour not in ("same", "different"):
        raise ValueError(f"colour must be 'same' or 'different', got {colour!r}")
    out = []
    for i in range(len(sc)):
        for j in range(i + 1, len(sc)):
            for a in range(2):
                for b in range(2):
                    same_colour = bool(sc.colours[i, a] == sc.colours[j, b])
                    ok = (bool(sc.shapes[i, a] == sc.shapes[j, b]) and same_colour == (colour == "same")
                          and int(sc.colours[i, a]) >= 0 and int(sc.colours[j, b]) >= 0
                          and int(sc.positions[i, a]) != int(sc.positions[j, b]))
                    if ok:
                        out.append((i, a, j, b))
                        if len(out) == n:
                            return out
                        break
                else:
                    continue
                break
    return out


def textured(images: torch.Tensor, masks: torch.Tensor, amp: float = 0.5, seed: int = 0) -> torch.Tensor:
    """Scenes (N, 3, S, S) with stripe textures (warps' random orientation, wavelength, phase):
    every pixel's brightness moves by amp * stripe, one stripe for the background and another for
    the objects of each image (masks (N, K, S, S) bool); clamped to [-1, 1]."""
    from .warps import _textures
    check_tensor("images", images, ndim=4, finite=True)
    N, _, S, _ = images.shape
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(S) + 0.5, torch.arange(S) + 0.5, indexing="ij")
    coords = torch.stack([xx.flatten(), yy.flatten()], 1)
    bg, fg = _textures(coords, g, N, S), _textures(coords, g, N, S)            # (N, 1, S, S) each
    inside = masks.any(1, keepdim=True)
    return (images + amp * torch.where(inside, fg, bg)).clamp(-1, 1)


def match_hits(model, schedule, images: torch.Tensor, masks: torch.Tensor, pairs, t: int, seed: int = 0,
               **opt) -> dict:
    """Hedlin et al. (steps 1-3) and the raw-pixel control (3x3 patches, cosine nearest neighbour) on
    pairs (i, a, j, b) of images (N, C, S, S) with object masks (N, K, S, S): a hit is a match inside
    object b's mask of image j; the query is object a's centroid in image i. Returns {"hedlin",
    "pixels", "chance" (the mask's area fraction), "loss_drop" (final / first loss)} means."""
    from .dift import match_points, pixel_features
    pix = pixel_features(images, 3)
    res = {"hedlin": [], "pixels": [], "chance": [], "loss_drop": []}
    for i, a, j, b in pairs:
        p = centroid(masks[i, a])
        ctx, losses = optimise_context(model, images[[i]], p, t, schedule, seed=seed, **opt)
        q = attention_match(model, ctx, images[[j]], t, schedule, seed=seed)
        r = match_points(pix[i], pix[j], p[None])[0]
        res["hedlin"].append(float(masks[j, b][int(q[1]), int(q[0])]))
        res["pixels"].append(float(masks[j, b][int(r[1]), int(r[0])]))
        res["chance"].append(masks[j, b].float().mean().item())
        res["loss_drop"].append(losses[-1] / losses[0])
    return {k: sum(v) / max(len(v), 1) for k, v in res.items()}


def centroid(mask: torch.Tensor) -> torch.Tensor:
    """Pixel (x, y) of a (H, W) bool mask's centroid (pixel centres at +0.5)."""
    ys, xs = torch.nonzero(mask, as_tuple=True)
    return torch.stack([xs.float().mean() + 0.5, ys.float().mean() + 0.5])
