"""A tiny text-to-image model (survey 6.1): a word-level tokenizer with an explicit vocabulary, a
small transformer text encoder trained with the denoiser, and a U-Net that reads the caption
through cross-attention (as Stable Diffusion's U-Net; Rombach et al. 2022, section 3.3).

Scope: captions of the procedural scenes of data/scenes.py ("a red circle above a blue square").
  Tokenizer            words -> ids; id 0 is the padding token "<pad>"; an unknown word raises an
                       error naming it; the null caption "" (all padding) is the unconditional
                       input of classifier-free guidance
  TextEncoder          ids (B, L) -> tokens (B, L, D): embeddings + learned positions, pre-LN
                       transformer blocks (transformer.Attention / Mlp), a final LayerNorm
  CrossAttentionBlock  image features attend to the caption tokens; the weights (B, heads, H*W, L)
                       pass through an Identity `probe`, so `features` can record them
  TextUNet             nets.unet.UNet with a CrossAttentionBlock in the blocks of
                       `cross_attention_levels` and in the middle, and the mean caption token added
                       to the timestep embedding; captions are dropped to "" with probability
                       caption_dropout_prob in training (the null branch of CFG)
  caption_guidance     classifier-free guidance with captions: D_u + w (D_c - D_u), D_u on ""

Notation: B batch, L = max_len caption tokens, D = text_dim, V vocabulary size (+1 for "<pad>"),
C channels of an image feature map, H x W its size, heads attention heads, d = C / heads.
Cross-attention (Vaswani et al. 2017, eq. 1, with queries from the image and keys/values from the
caption): A = softmax(Q K^T / sqrt(d)) in R^{H*W x L}, out = A V, Q = W_q GN(h), K = W_k c, V = W_v c.

The model is a denoiser network like any other: model(x_t, t, cond) with cond the captions (a
str, a list of B str, or ids (B, L)); `dd.to_denoiser` wraps it. The class-label CFG of
guidance.py takes integer labels, so captions get their own guide here (same formula).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from .._validate import check_callable, check_positive_int, check_real
from ..denoiser import Denoiser, as_denoiser, t_batch
from .embeddings import as_timesteps, timestep_embedding
from .features import record_features
from .transformer import Attention, Mlp
from .unet import EmbedSequential, ResBlock, UNet, Upsample, num_groups, zero_module

__all__ = ["PAD", "Tokenizer", "TextEncoder", "CrossAttentionBlock", "ContextSequential", "TextUNet",
           "caption_guidance", "CaptionGuidance", "sample_captions", "caption_accuracy", "text_unet_scenes",
           "CHECKPOINT_MODELS"]

PAD = "<pad>"


def caption_guidance(denoiser, w: float, caption=None):
    """Classifier-free guidance with captions (Ho & Salimans 2022, eq. 6, "scale" convention):
    D_w(x_t, t, c) = D(x_t, t, "") + w (D(x_t, t, c) - D(x_t, t, "")); w = 1 conditional, 0 the
    null caption. denoiser: a denoiser of a TextUNet (x_t: (B, C, H, W)); caption: a str or B str
    to bind (else given at call time). Both branches run as one batch of 2B. Returns a denoiser."""
    check_callable("denoiser", denoiser, "D(x_t, t, cond)")
    w = check_real("w", w)
    model = getattr(denoiser, "model", None)
    tok = getattr(model, "tokenizer", None) or getattr(getattr(model, "base", None), "tokenizer", None) \
        or getattr(getattr(getattr(model, "controlled", None), "base", None), "tokenizer", None)
    if tok is None:
        raise ValueError("caption_guidance needs the denoiser of a TextUNet (denoiser.model.tokenizer)")
    return CaptionGuidance(denoiser, w, tok, caption)


def sample_captions(denoiser, captions, w: float = 1.0, steps: int = 20, seed: int = 0, size: int = 16) -> torch.Tensor:
    """DDIM samples (B, 3, size, size) for B captions (a list of str) with caption guidance weight
    w (1: the conditional model, 0: the null caption alone, > 1 guided), `steps` respaced steps,
    noise from `seed`. denoiser: the TextUNet's denoiser (dd.to_denoiser / pretrained_denoiser)."""
    from ..samplers import ddim
    if isinstance(captions, str) or not isinstance(captions, (list, tuple)) or not captions:
        raise TypeError("captions must be a non-empty list of str (one per sample)")
    w = check_real("w", w)
    g = torch.Generator().manual_seed(seed)
    x_T = torch.randn(len(captions), 3, size, size, generator=g)
    if w == 0:                                           # the unconditional model: one branch
        den, cond = denoiser, [""] * len(captions)
    elif w == 1:                                         # the conditional model: one branch
        den, cond = denoiser, list(captions)
    else:
        den, cond = caption_guidance(denoiser, w), list(captions)
    bound = as_denoiser(lambda x, t: den(x, t, cond), denoiser.schedule)
    with torch.no_grad():
        return ddim(bound, x_T, denoiser.schedule, steps)


def caption_accuracy(denoiser, classifier, captions, w: float = 1.0, steps: int = 20, seed: int = 0) -> dict:
    """How often samples follow their captions: sample_captions(...), cell labels by the per-cell
    `classifier` (data.scenes.predict_cells), graded by data.scenes.layout_accuracy. Returns
    {"all", "colour", "shape", "position"} -> fraction, plus "samples" (B, 3, H, W)."""
    from ..data.scenes import layout_accuracy, predict_cells
    x = sample_captions(denoiser, captions, w, steps, seed)
    with torch.no_grad():
        acc = layout_accuracy(predict_cells(classifier, x), captions)
    return {**acc, "samples": x}


# ----------------------------------------------------------------------------- modules

class Tokenizer:
    """Word-level tokenizer over an explicit vocabulary. encode(captions) -> ids (B, max_len) long:
    lower-cased words split on spaces, id i + 1 for vocab[i], 0 ("<pad>") after the last word.
    Unknown words and captions longer than max_len raise ValueError naming them."""

    def __init__(self, vocab, max_len: int):
        vocab = list(vocab)
        if not vocab or not all(isinstance(v, str) and v and " " not in v and v == v.lower() for v in vocab):
            raise ValueError(f"vocab must be a non-empty list of lower-case words without spaces, got {vocab!r}")
        if len(set(vocab)) != len(vocab) or PAD in vocab:
            raise ValueError(f"vocab must hold distinct words and not {PAD!r}, got {vocab!r}")
        self.vocab, self.max_len = vocab, check_positive_int("max_len", max_len)
        self.index = {w: i + 1 for i, w in enumerate(vocab)}

    def __len__(self):
        return len(self.vocab) + 1                      # with <pad>

    def encode(self, captions, batch_size: int | None = None) -> torch.Tensor:
        """captions: a str or a list of str (a str is repeated batch_size times, default 1)."""
        if isinstance(captions, str):
            captions = [captions] * (batch_size or 1)
        if not isinstance(captions, (list, tuple)) or not all(isinstance(c, str) for c in captions):
            raise TypeError(f"captions must be a str or a list of str, got {type(captions).__name__}")
        ids = torch.zeros(len(captions), self.max_len, dtype=torch.long)
        for i, cap in enumerate(captions):
            words = cap.lower().split()
            unknown = [w for w in words if w not in self.index]
            if unknown:
                raise ValueError(f"unknown word {unknown[0]!r} in caption {cap!r}; the vocabulary is {self.vocab}")
            if len(words) > self.max_len:
                raise ValueError(f"caption {cap!r} has {len(words)} words; at most max_len={self.max_len}")
            ids[i, :len(words)] = torch.tensor([self.index[w] for w in words], dtype=torch.long)
        return ids

    def decode(self, ids: torch.Tensor) -> list[str]:
        """ids (B, L) -> B captions (padding dropped)."""
        return [" ".join(self.vocab[int(i) - 1] for i in row if int(i) > 0) for row in ids]


class TextEncoder(nn.Module):
    """ids (B, L) long -> caption tokens (B, L, D): token + position embeddings, `depth` pre-LN
    transformer blocks (self-attention over the whole caption, padding included), LayerNorm."""

    def __init__(self, vocab_size: int, max_len: int, dim: int = 64, depth: int = 2, num_heads: int = 4):
        super().__init__()
        self.token_embed = nn.Embedding(vocab_size, dim)
        self.pos_embed = nn.Parameter(0.02 * torch.randn(1, max_len, dim))
        self.blocks = nn.ModuleList()
        for _ in range(depth):
            self.blocks.append(nn.ModuleDict({"norm1": nn.LayerNorm(dim), "attn": Attention(dim, num_heads),
                                              "norm2": nn.LayerNorm(dim), "mlp": Mlp(dim, 4 * dim)}))
        self.norm = nn.LayerNorm(dim)
        nn.init.normal_(self.token_embed.weight, std=0.02)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.token_embed(ids) + self.pos_embed[:, :ids.shape[1]]         # (B, L, D)
        for b in self.blocks:
            x = x + b["attn"](b["norm1"](x))
            x = x + b["mlp"](b["norm2"](x))
        return self.norm(x)


class CrossAttentionBlock(nn.Module):
    """Image features attend to caption tokens, with a residual connection:
    x: (B, C, H, W), context: (B, L, D) -> (B, C, H, W). The attention weights (B, heads, H*W, L)
    go through `self.probe` (an Identity), where a forward hook can read them. The output
    projection starts at 0, so the block starts as the identity (as the U-Net's own blocks)."""

    def __init__(self, channels: int, context_dim: int, num_heads: int = 4, max_groups: int = 8):
        super().__init__()
        if channels % num_heads:
            raise ValueError(f"channels ({channels}) must be divisible by num_heads ({num_heads})")
        self.num_heads = num_heads
        self.norm = nn.GroupNorm(num_groups(channels, max_groups), channels)
        self.q = nn.Conv2d(channels, channels, 1)
        self.kv = nn.Linear(context_dim, 2 * channels)
        self.proj = zero_module(nn.Conv2d(channels, channels, 1))
        self.probe = nn.Identity()

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        L, nh = context.shape[1], self.num_heads
        q = self.q(self.norm(x)).reshape(B, nh, C // nh, H * W).transpose(-1, -2)   # (B, heads, HW, d)
        k, v = self.kv(context).reshape(B, L, 2, nh, C // nh).permute(2, 0, 3, 1, 4)  # each (B, heads, L, d)
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(C // nh), dim=-1)      # (B, heads, HW, L)
        a = self.probe(a)
        h = (a @ v).transpose(-1, -2).reshape(B, C, H, W)
        return x + self.proj(h)


class ContextSequential(EmbedSequential):
    """An EmbedSequential whose CrossAttentionBlocks also read the caption tokens `context`."""

    def forward(self, x, emb=None, context=None):
        for layer in self:
            if isinstance(layer, ResBlock):
                x = layer(x, emb)
            elif isinstance(layer, CrossAttentionBlock):
                x = layer(x, context)
            else:
                x = layer(x)
        return x


def _with_cross_attention(block: EmbedSequential, make) -> ContextSequential:
    """The layers of `block` with make() inserted before a final Upsample (else at the end)."""
    layers = list(block)
    at = len(layers) - 1 if layers and isinstance(layers[-1], Upsample) else len(layers)
    return ContextSequential(*layers[:at], make(), *layers[at:])


class TextUNet(UNet):
    """Caption-conditional U-Net, called as `model(x_t, t, cond=None)`.

    x_t: (B, C, H, W); t: (B,) steps; cond: captions (a str for the whole batch, a list of B str)
    or their ids (B, max_len) long; None or "" is the null caption. Returns (B, C, H, W), the
    quantity named by `prediction`. The vocabulary is a constructor argument (saved in the
    manifest), so the checkpoint carries its tokenizer: `model.tokenizer`.

    Args (besides the UNet's): vocab, max_len: the tokenizer's; text_dim, text_depth, text_heads:
    the TextEncoder's; cross_attention_levels: levels whose ResBlocks are followed by a
    CrossAttentionBlock (the middle block always has one); caption_dropout_prob: in training,
    captions become "" with this probability.
    """

    def __init__(self, vocab=("a",), max_len: int = 8, in_channels: int = 3, base_channels: int = 16,
                 channel_mult=(1, 2, 2), num_res_blocks: int = 1, attention_levels=(2,),
                 cross_attention_levels=(1, 2), num_heads: int = 4, text_dim: int = 64, text_depth: int = 2,
                 text_heads: int = 4, caption_dropout_prob: float = 0.1, dropout: float = 0.0,
                 prediction: str = "eps"):
        super().__init__(in_channels=in_channels, base_channels=base_channels, channel_mult=channel_mult,
                         num_res_blocks=num_res_blocks, attention_levels=attention_levels, num_heads=num_heads,
                         dropout=dropout, num_classes=None, prediction=prediction)
        bad = [lvl for lvl in cross_attention_levels if not 0 <= lvl < len(self.channel_mult)]
        if bad:
            raise ValueError(f"cross_attention_levels {tuple(cross_attention_levels)} must lie in "
                             f"[0, {len(self.channel_mult) - 1}]")
        if not 0.0 <= caption_dropout_prob < 1.0:
            raise ValueError(f"caption_dropout_prob must be in [0, 1), got {caption_dropout_prob!r}")
        self.tokenizer = Tokenizer(vocab, max_len)
        self.caption_dropout_prob = caption_dropout_prob
        self.text_encoder = TextEncoder(len(self.tokenizer), max_len, text_dim, text_depth, text_heads)
        self.text_to_emb = nn.Linear(text_dim, 4 * base_channels)
        xattn = lambda ch: (lambda: CrossAttentionBlock(ch, text_dim, num_heads))   # noqa: E731

        # Rebuild every block as a ContextSequential, adding cross-attention where asked (the
        # level of each block follows UNet.__init__'s order of construction; None: a Downsample).
        last, nrb = len(self.channel_mult) - 1, num_res_blocks
        down_levels = [lvl for level in range(last + 1) for lvl in [level] * nrb + ([None] if level != last else [])]
        up_levels = [level for level in reversed(range(last + 1)) for _ in range(nrb + 1)]
        for blocks, lvls in ((self.down, down_levels), (self.up, up_levels)):
            for k, (block, level) in enumerate(zip(blocks, lvls)):
                blocks[k] = (_with_cross_attention(block, xattn(base_channels * self.channel_mult[level]))
                             if level in cross_attention_levels else ContextSequential(*block))
        self.middle = _with_cross_attention(self.middle, xattn(base_channels * self.channel_mult[-1]))

    def tokens(self, cond, B: int, device=None) -> torch.Tensor:
        """Caption ids (B, max_len) from cond (module doc); in training mode captions are dropped
        to the null caption with probability caption_dropout_prob."""
        if cond is None:
            ids = torch.zeros(B, self.tokenizer.max_len, dtype=torch.long)
        elif isinstance(cond, torch.Tensor):
            if cond.is_floating_point() or cond.dtype == torch.bool or cond.shape != (B, self.tokenizer.max_len):
                raise ValueError(f"cond ids must be a long tensor ({B}, {self.tokenizer.max_len}), got "
                                 f"{cond.dtype} {tuple(cond.shape)}")
            if cond.numel() and (int(cond.min()) < 0 or int(cond.max()) >= len(self.tokenizer)):
                raise ValueError(f"cond ids must lie in [0, {len(self.tokenizer) - 1}], got "
                                 f"[{int(cond.min())}, {int(cond.max())}]")
            ids = cond
        else:
            ids = self.tokenizer.encode(cond, B)
            if len(ids) != B:
                raise ValueError(f"cond has {len(ids)} captions for a batch of {B}")
        ids = ids.to(device)
        if self.training and self.caption_dropout_prob > 0:
            drop = torch.rand(B, device=device) < self.caption_dropout_prob
            ids = torch.where(drop[:, None], torch.zeros_like(ids), ids)
        return ids

    def embed(self, x: torch.Tensor, t, cond=None):
        """(emb (B, E), context (B, L, D)): the timestep embedding plus the projected mean caption
        token, and the caption tokens. x: (B, C, H, W) (for the batch size and device)."""
        B = x.shape[0]
        context = self.text_encoder(self.tokens(cond, B, x.device))                   # (B, L, D)
        emb = self.time_embed(timestep_embedding(as_timesteps(t, B, x.device), self.base_channels))
        return emb + self.text_to_emb(context.mean(1)), context

    def forward(self, x: torch.Tensor, t, cond=None, force_drop_ids=None) -> torch.Tensor:
        if force_drop_ids is not None:
            raise ValueError("TextUNet takes no force_drop_ids: pass the null caption '' (or None) instead")
        self._check_input(x)
        emb, context = self.embed(x, t, cond)
        h = self.input_conv(x)
        skips = [h]
        for block in self.down:
            h = block(h, emb, context)
            skips.append(h)
        h = self.middle(h, emb, context)
        for block in self.up:
            h = block(torch.cat([h, skips.pop()], dim=1), emb, context)
        return self.out(h)

    def _check_input(self, x):
        self.check_input(x)

    def features(self, x: torch.Tensor, t, cond=None, layers=None) -> dict:
        """UNet.features' names ("input", "down.k", "mid", "up.k", "out") and, for every block
        with cross-attention, "attn.<block>" (e.g. "attn.down.2", "attn.mid", "attn.up.1"): its
        attention weights (B, heads, H_b * W_b, L) over the L caption tokens, rows summing to 1,
        pixels in row-major order at that block's resolution."""
        taps = {"input": (self.input_conv, None)}
        for k, block in enumerate(self.down):
            taps.update(_taps(f"down.{k}", block))
        taps.update(_taps("mid", self.middle))
        for k, block in enumerate(self.up):
            taps.update(_taps(f"up.{k}", block))
        taps["out"] = (None, None)
        return record_features(taps, layers, lambda: self(x, t, cond))


def _taps(name: str, block) -> dict:
    out = {name: (block, None)}
    for layer in block:
        if isinstance(layer, CrossAttentionBlock):
            out[f"attn.{name}"] = (layer.probe, None)
    return out


class CaptionGuidance(Denoiser):
    """Classifier-free guidance over captions; built by `caption_guidance`. x: (B, C, H, W)."""

    def __init__(self, denoiser, w: float, tokenizer: Tokenizer, caption=None):
        self.inner, self.w, self.tokenizer, self.caption = as_denoiser(denoiser), w, tokenizer, caption
        self.schedule = self.inner.schedule

    def x0_eps(self, x: torch.Tensor, t, cond=None, alpha_bar=None):
        cond = self.caption if cond is None else cond
        if cond is None:
            raise ValueError("caption guidance needs a caption: bind one (caption=...) or pass cond=...")
        B = len(x)
        ids = cond if isinstance(cond, torch.Tensor) else self.tokenizer.encode(cond, B)
        if len(ids) != B:
            raise ValueError(f"{len(ids)} captions for a batch of {B}")
        ids2 = torch.cat([ids.to(x.device), torch.zeros_like(ids, device=x.device)])   # [captions; null]
        t = t_batch(t, x)
        if isinstance(alpha_bar, torch.Tensor) and alpha_bar.ndim > 0 and len(alpha_bar) == B:
            alpha_bar = torch.cat([alpha_bar, alpha_bar])
        x0, eps = self.inner.x0_eps(torch.cat([x, x]), torch.cat([t, t]), ids2, alpha_bar)
        (x0_c, x0_u), (eps_c, eps_u) = x0.chunk(2), eps.chunk(2)
        return x0_u + self.w * (x0_c - x0_u), eps_u + self.w * (eps_c - eps_u)


# ----------------------------------------------------------------------------- configs

def text_unet_scenes(**kwargs) -> TextUNet:
    """The chapter-12 caption model: 16x16 RGB scenes, the scenes vocabulary (data/scenes.py),
    base 16 channels, levels (1, 2, 2) at 16 / 8 / 4 pixels, cross-attention at 8 and 4 (and the
    middle), text encoder of width 64 and depth 2."""
    from ..data.scenes import VOCAB
    return TextUNet(**{**dict(vocab=list(VOCAB), max_len=8), **kwargs})


CHECKPOINT_MODELS = ((text_unet_scenes, TextUNet), TextUNet)
