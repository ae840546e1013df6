"""Multimodal Diffusion Transformer (MMDiT, Stable Diffusion 3: Esser et al. 2024, Fig. 2).

Scope: the joint-attention block and a small class- or token-conditioned model around it.

An MMDiT block keeps two token streams -- the image tokens x and the context tokens c (text
in SD3; here a class label turned into a few tokens, or any (B, L, context_dim) tokens) --
each with its OWN weights: adaLN modulation, qkv and output projections, MLP. The streams
meet in one attention: the q, k, v of both are concatenated along the sequence, attention
runs over all L + T tokens, and the result is split back. Both streams are modulated by one
vector y = t_emb + pooled condition (adaLN-Zero as in DiT). As in SD3, the context stream
of the last block only makes its k, v ("pre-only"): its output would never be read.

Notation: B batch, T image tokens, L context tokens, D hidden size, y the (B, D)
conditioning vector. Layer names follow the SD3 reference code (`x_block`,
`context_block`, `joint_blocks`, `context_embedder`); the weights are not meant to load
SD3 checkpoints.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .._validate import check_choice, check_model_input, check_positive_int, check_tensor
from .dit import PREDICTIONS, FinalLayer, modulate, unpatchify
from .embeddings import as_labels, as_timesteps, drop_labels, sincos_pos_embed_2d
from .features import record_features
from .transformer import Mlp, PatchEmbed, TimestepEmbedder, attention


class StreamAttention(nn.Module):
    """The per-stream half of joint attention: qkv projection (with optional RMS
    QK-normalisation, SD3 Sec. 5.3.2) and the output projection."""

    def __init__(self, dim: int, num_heads: int, qk_norm: bool = False, pre_only: bool = False):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        # (A pre-only stream's queries are never used -- only its keys and values are -- so
        # it gets no q-norm weights that could not learn.)
        self.ln_q = nn.RMSNorm(dim // num_heads, eps=1e-6) if qk_norm and not pre_only else nn.Identity()
        self.ln_k = nn.RMSNorm(dim // num_heads, eps=1e-6) if qk_norm else nn.Identity()
        if not pre_only:
            self.proj = nn.Linear(dim, dim)

    def qkv_heads(self, x):
        """(B, N, D) -> q, k, v, each (B, heads, N, D / heads)."""
        B, N, D = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, self.num_heads, D // self.num_heads).permute(2, 0, 3, 1, 4)
        return self.ln_q(q), self.ln_k(k), v


class StreamBlock(nn.Module):
    """One stream of an MMDiT block: LayerNorms, adaLN-Zero modulation (6 vectors from y),
    attention projections, MLP. The attention itself happens in `MMDiTBlock`.

    pre_only: keep only what produces q, k, v (norm1, qkv, a 2-vector modulation). SD3 does
    this for the context stream of the last block, whose output nobody reads (its output
    projection and MLP would get no gradient).
    """

    def __init__(self, hidden_size: int, num_heads: int, mlp_ratio: float = 4.0,
                 qk_norm: bool = False, pre_only: bool = False):
        super().__init__()
        self.pre_only = pre_only
        self.norm1 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.attn = StreamAttention(hidden_size, num_heads, qk_norm, pre_only)
        if not pre_only:
            self.norm2 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
            self.mlp = Mlp(hidden_size, int(hidden_size * mlp_ratio))
        n_mod = 2 if pre_only else 6
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, n_mod * hidden_size))

    def pre_attention(self, x, y):
        """x: (B, N, D), y: (B, D) -> (q, k, v) and the modulation for `post_attention`."""
        if self.pre_only:
            shift_msa, scale_msa = self.adaLN_modulation(y).chunk(2, dim=1)
            return self.attn.qkv_heads(modulate(self.norm1(x), shift_msa, scale_msa)), None
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.adaLN_modulation(y).chunk(6, dim=1)
        qkv = self.attn.qkv_heads(modulate(self.norm1(x), shift_msa, scale_msa))
        return qkv, (gate_msa, shift_mlp, scale_mlp, gate_mlp)

    def post_attention(self, x, h, mod):
        """x: (B, N, D) the stream's input, h: (B, N, D) its slice of the joint attention.
        Returns the updated stream (None for a pre_only stream)."""
        if self.pre_only:
            return None
        gate_msa, shift_mlp, scale_mlp, gate_mlp = mod
        x = x + gate_msa.unsqueeze(1) * self.attn.proj(h)
        x = x + gate_mlp.unsqueeze(1) * self.mlp(modulate(self.norm2(x), shift_mlp, scale_mlp))
        return x


class MMDiTBlock(nn.Module):
    """Joint-attention block. x: (B, T, D) image tokens, c: (B, L, D) context tokens,
    y: (B, D) -> (x, c) updated, each by its own stream's weights
    [, attention weights (B, heads, L + T, L + T), context tokens first, if asked].
    With context_pre_only (the last block of an MMDiT) the returned c is None."""

    def __init__(self, hidden_size: int, num_heads: int, mlp_ratio: float = 4.0,
                 qk_norm: bool = False, context_pre_only: bool = False):
        super().__init__()
        self.context_block = StreamBlock(hidden_size, num_heads, mlp_ratio, qk_norm, context_pre_only)
        self.x_block = StreamBlock(hidden_size, num_heads, mlp_ratio, qk_norm)

    def forward(self, x, c, y, return_attention: bool = False):
        B, T, D = x.shape
        L = c.shape[1]
        # 1. Each stream makes its own q, k, v (B, heads, N, D/heads) with its own weights.
        (qc, kc, vc), mod_c = self.context_block.pre_attention(c, y)
        (qx, kx, vx), mod_x = self.x_block.pre_attention(x, y)
        # 2. One attention over the concatenated sequence [c; x] of L + T tokens: image
        #    tokens attend to the context and vice versa.
        q, k, v = (torch.cat(pair, dim=2) for pair in ((qc, qx), (kc, kx), (vc, vx)))
        h, weights = attention(q, k, v, return_attention)            # (B, heads, L + T, D/heads)
        h = h.transpose(1, 2).reshape(B, L + T, D)
        # 3. Split back and finish each stream (output projection, gated residual, MLP).
        c = self.context_block.post_attention(c, h[:, :L], mod_c)
        x = self.x_block.post_attention(x, h[:, L:], mod_x)
        return (x, c, weights) if return_attention else (x, c)


class MMDiT(nn.Module):
    """A small MMDiT, called as `model(x_t, t, cond=None)`.

    x_t: (B, C, H, W), H = W = input_size; t: (B,) steps (or one number).
    cond, in class mode (num_classes set): (B,) long labels; `num_classes` or None is the
      null label. Each label becomes `context_tokens` learned tokens (the context stream)
      and one learned pooled vector (added to t_emb to form y).
    cond, in token mode (context_dim set): (B, L, context_dim) float tokens; they are
      projected to D by `context_embedder`, and their mean, through `y_embedder`, is the
      pooled vector. None means an all-zero single token (the "empty prompt").
    Returns (B, out_channels, H, W); out_channels = 2C with learn_sigma, else C.
    """

    def __init__(self, input_size: int = 16, patch_size: int = 2, in_channels: int = 1,
                 hidden_size: int = 64, depth: int = 4, num_heads: int = 4, mlp_ratio: float = 4.0,
                 num_classes: int | None = 10, context_tokens: int = 4, context_dim: int | None = None,
                 class_dropout_prob: float = 0.1, learn_sigma: bool = False, qk_norm: bool = False,
                 prediction: str = "eps"):
        super().__init__()
        check_choice("prediction", prediction, PREDICTIONS)
        for name, v in [("input_size", input_size), ("patch_size", patch_size),
                        ("in_channels", in_channels), ("hidden_size", hidden_size),
                        ("depth", depth), ("num_heads", num_heads), ("context_tokens", context_tokens)]:
            check_positive_int(name, v)
        if (num_classes is None) == (context_dim is None):
            raise ValueError("give exactly one of num_classes (class labels as cond) and "
                             f"context_dim (token tensors as cond); got num_classes={num_classes!r}, "
                             f"context_dim={context_dim!r}")
        if num_classes is not None:
            check_positive_int("num_classes", num_classes)
        if context_dim is not None:
            check_positive_int("context_dim", context_dim)
        if input_size % patch_size:
            raise ValueError(f"input_size ({input_size}) must be divisible by patch_size ({patch_size})")
        if hidden_size % num_heads or hidden_size % 4:
            raise ValueError(f"hidden_size ({hidden_size}) must be divisible by num_heads ({num_heads}) and by 4")
        if not 0.0 <= class_dropout_prob < 1.0:
            raise ValueError(f"class_dropout_prob must be in [0, 1), got {class_dropout_prob!r}")

        self.input_size, self.patch_size = input_size, patch_size
        self.in_channels = in_channels
        self.out_channels = 2 * in_channels if learn_sigma else in_channels
        self.learn_sigma = learn_sigma
        self.hidden_size = hidden_size
        self.num_classes, self.context_dim = num_classes, context_dim
        self.context_tokens = context_tokens
        self.class_dropout_prob = class_dropout_prob
        self.prediction = prediction

        self.x_embedder = PatchEmbed(input_size, patch_size, in_channels, hidden_size)
        self.t_embedder = TimestepEmbedder(hidden_size)
        self.register_buffer("pos_embed", sincos_pos_embed_2d(hidden_size, self.x_embedder.grid_size)[None],
                             persistent=False)                       # (1, T, D), fixed
        if num_classes is not None:
            rows = num_classes + int(class_dropout_prob > 0)         # + the null label
            self.label_context = nn.Embedding(rows, context_tokens * hidden_size)
            self.label_pooled = nn.Embedding(rows, hidden_size)
        else:
            self.context_embedder = nn.Linear(context_dim, hidden_size)
            self.y_embedder = nn.Sequential(nn.Linear(context_dim, hidden_size), nn.SiLU(),
                                            nn.Linear(hidden_size, hidden_size))
        # The last block's context stream is pre-only (SD3): its output would be discarded.
        self.joint_blocks = nn.ModuleList([MMDiTBlock(hidden_size, num_heads, mlp_ratio, qk_norm,
                                                      context_pre_only=(i == depth - 1))
                                           for i in range(depth)])
        self.final_layer = FinalLayer(hidden_size, patch_size, self.out_channels)
        self.initialize_weights()

    def initialize_weights(self):
        # Xavier-uniform linears with zero biases; the patch embedding like a linear map.
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        w = self.x_embedder.proj.weight.data
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        # Small label / step embeddings, so y starts small.
        if self.num_classes is not None:
            nn.init.normal_(self.label_context.weight, std=0.02)
            nn.init.normal_(self.label_pooled.weight, std=0.02)
        nn.init.normal_(self.t_embedder.mlp[0].weight, std=0.02)
        nn.init.normal_(self.t_embedder.mlp[2].weight, std=0.02)
        # adaLN-Zero in both streams: all gates start at 0, so every block is the identity
        # on x AND on c at init.
        for block in self.joint_blocks:
            for stream in (block.x_block, block.context_block):
                nn.init.zeros_(stream.adaLN_modulation[-1].weight)
                nn.init.zeros_(stream.adaLN_modulation[-1].bias)
        # Zero output layer: the untrained model predicts 0.
        nn.init.zeros_(self.final_layer.adaLN_modulation[-1].weight)
        nn.init.zeros_(self.final_layer.adaLN_modulation[-1].bias)
        nn.init.zeros_(self.final_layer.linear.weight)
        nn.init.zeros_(self.final_layer.linear.bias)

    def embed_condition(self, cond, B, device, force_drop_ids=None):
        """cond -> context tokens c: (B, L, D) and pooled vector (B, D)."""
        D = self.hidden_size
        if self.num_classes is not None:
            allow_null = self.class_dropout_prob > 0
            y = as_labels(cond, B, self.num_classes, allow_null, device)
            if force_drop_ids is not None and not allow_null:
                raise ValueError("force_drop_ids needs a null class: build the model with class_dropout_prob > 0")
            if allow_null and (self.training or force_drop_ids is not None):
                y = drop_labels(y, self.num_classes, self.class_dropout_prob, force_drop_ids)
            return self.label_context(y).reshape(B, self.context_tokens, D), self.label_pooled(y)
        if cond is None:
            cond = torch.zeros(B, 1, self.context_dim, device=device)
        check_tensor("cond", cond, ndim=3)
        if cond.shape[0] != B or cond.shape[2] != self.context_dim:
            raise ValueError(f"cond must have shape (B, L, context_dim) = ({B}, L, {self.context_dim}), "
                             f"got {tuple(cond.shape)}")
        return self.context_embedder(cond), self.y_embedder(cond.mean(dim=1))

    def _run(self, x, t, cond, force_drop_ids, return_attention):
        check_tensor("x", x, ndim=4)
        check_model_input("x", x, self, self.x_embedder.proj.weight)
        B, C, H, W = x.shape
        if C != self.in_channels:
            raise ValueError(f"x has {C} channels, this MMDiT expects in_channels={self.in_channels}")
        if H != self.input_size or W != self.input_size:
            raise ValueError(f"x is {H}x{W}, this MMDiT was built for input_size={self.input_size} "
                             f"(divisible by patch_size={self.patch_size})")
        c, pooled = self.embed_condition(cond, B, x.device, force_drop_ids)  # (B, L, D), (B, D)
        y = self.t_embedder(as_timesteps(t, B, x.device)) + pooled           # (B, D)
        x = self.x_embedder(x) + self.pos_embed                              # (B, T, D)
        maps = []
        for block in self.joint_blocks:
            if return_attention:
                x, c, w = block(x, c, y, return_attention=True)
                maps.append(w)
            else:
                x, c = block(x, c, y)
        out = unpatchify(self.final_layer(x, y), self.patch_size, self.out_channels,
                         self.x_embedder.grid_size)                          # (B, out_channels, H, W)
        return out, maps

    def forward(self, x, t, cond=None, force_drop_ids=None):
        return self._run(x, t, cond, force_drop_ids, False)[0]

    def features(self, x, t, cond=None, layers=None) -> dict:
        """Named activations of one forward pass `self(x, t, cond)` (nets/features.py), in
        forward order; `layers` picks some. T = (H / p) ** 2 image tokens, L context tokens
        (context_tokens in class mode, cond's L in token mode), D = hidden size:
          "embed"      patch embeddings plus positions: (B, T, D)
          "block.k"    the image stream after joint block k, k < depth: (B, T, D)
          "context.k"  the context stream after block k, k < depth - 1: (B, L, D) (the last
                       block's context stream is pre-only: it has no output)
          "final"      final_layer: (B, T, p * p * out_channels), before unpatchify
          "out"        the output (B, out_channels, H, W)
        """
        taps = {"embed": (self.x_embedder, lambda h: h + self.pos_embed)}
        for k, block in enumerate(self.joint_blocks):
            taps[f"block.{k}"] = (block, lambda out: out[0])
            if k < len(self.joint_blocks) - 1:
                taps[f"context.{k}"] = (block, lambda out: out[1])
        taps.update({"final": (self.final_layer, None), "out": (None, None)})
        return record_features(taps, layers, lambda: self(x, t, cond))

    @torch.no_grad()
    def attention_maps(self, x, t, cond=None):
        """The joint-attention weights of every block: a list of depth tensors
        (B, heads, L + T, L + T), context tokens first; row i is where token i looks.
        The image-to-context part is `w[:, :, L:, :L]` (for an attention-map figure, reshape
        its T rows to the (H/p, W/p) patch grid). Runs in eval mode (no label dropout)."""
        was_training = self.training
        try:
            return self.eval()._run(x, t, cond, None, True)[1]
        finally:
            self.train(was_training)


def mmdit_tiny(**kwargs) -> MMDiT:
    """Teaching size: 16x16x1 images, patch 2, hidden 64, depth 4, 4 heads, 10 classes as
    4 context tokens each; 0.58M parameters."""
    return MMDiT(**{**dict(input_size=16, patch_size=2, in_channels=1, hidden_size=64, depth=4,
                           num_heads=4, num_classes=10, context_tokens=4), **kwargs})


def mmdit_mini(**kwargs) -> MMDiT:
    """Teaching size: 32x32x1 images, patch 4, hidden 128, depth 4, 4 heads, 10 classes;
    2.3M parameters."""
    return MMDiT(**{**dict(input_size=32, patch_size=4, in_channels=1, hidden_size=128, depth=4,
                           num_heads=4, num_classes=10, context_tokens=4), **kwargs})


MMDIT_MODELS = {"mmdit_tiny": mmdit_tiny, "mmdit_mini": mmdit_mini}
