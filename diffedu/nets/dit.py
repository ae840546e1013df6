"""Diffusion Transformer (DiT, Peebles & Xie 2023): a ViT over patches of the noisy image,
conditioned on the timestep and a class label.

Scope: the model of the paper with its four ways of feeding in the condition (Section 3.2):
  "adaln_zero"       adaptive LayerNorm: shift/scale of each LayerNorm and a gate on each
                     residual branch regressed from c = t_emb + y_emb, the regressor zeroed
                     so every block starts as the identity (the paper's best; the default)
  "adaln"            the same shift/scale, no gates, regressor not zeroed
  "cross_attention"  a cross-attention layer after self-attention, attending to the two
                     tokens [t_emb, y_emb]; plain (affine) LayerNorms otherwise
  "in_context"       [t_emb, y_emb] appended to the image tokens as two extra tokens, dropped
                     before the final layer; a plain ViT otherwise
The adaLN-Zero model uses the parameter names and shapes of the official code
(github.com/facebookresearch/DiT, models.py, which builds on timm's PatchEmbed, Attention and
Mlp: here in transformer.py, shared with MMDiT), so an official state dict loads with
`load_state_dict` and no renaming; the factories DiT_XL_2 ... DiT_S_8 give the official
configurations (ImageNet 256: 32x32x4 latents, 1000 classes, learned sigma). `dit_tiny` /
`dit_mini` are teaching sizes for 16x16 / 32x32 images. `DiT.features` returns the
activations of every block from one forward pass.

Notation: B batch, C channels, H = W = input_size, p patch size, T = (H / p) ** 2 tokens,
D hidden size, c the (B, D) conditioning vector.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .._validate import check_choice, check_model_input, check_positive_int, check_tensor
from .embeddings import as_labels, as_timesteps, sincos_pos_embed_2d
from .features import record_features
# The layers DiT shares with MMDiT (timm's names); re-exported, so `dit.Attention` etc. work.
from .transformer import (Attention, CrossAttention, LabelEmbedder, Mlp, PatchEmbed,  # noqa: F401
                          TimestepEmbedder, attention)

CONDITIONINGS = ("adaln_zero", "adaln", "cross_attention", "in_context")
PREDICTIONS = ("eps", "x0", "v", "velocity")


def modulate(x, shift, scale):
    """x: (B, T, D); shift, scale: (B, D). The adaptive-LayerNorm affine map, per sample."""
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


def patchify(x: torch.Tensor, p: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, T, p * p * C), T = (H / p) * (W / p) in row-major patch order.

    Each row lists one patch's pixels in (row-in-patch, column-in-patch, channel) order, the
    order `DiT.unpatchify` (and the official code's final linear layer) expects.
    """
    B, C, H, W = x.shape
    x = x.reshape(B, C, H // p, p, W // p, p)
    x = torch.einsum("nchpwq->nhwpqc", x)
    return x.reshape(B, (H // p) * (W // p), p * p * C)


def unpatchify(x: torch.Tensor, p: int, channels: int, grid_size) -> torch.Tensor:
    """(B, T, p * p * C) -> (B, C, Gh * p, Gw * p); the inverse of `patchify`.

    grid_size: Gh (= Gw) or (Gh, Gw), the patch grid with T = Gh * Gw.
    """
    gh, gw = (grid_size, grid_size) if isinstance(grid_size, int) else grid_size
    B = x.shape[0]
    x = x.reshape(B, gh, gw, p, p, channels)
    x = torch.einsum("nhwpqc->nchpwq", x)
    return x.reshape(B, channels, gh * p, gw * p)


# ----------------------------------------------------------------- blocks
# (the embedders, attention and MLP sublayers live in transformer.py, shared with MMDiT)

class DiTBlock(nn.Module):
    """One transformer block, x: (B, T, D) -> (B, T, D), conditioned as `conditioning` says.

    c: (B, D) for "adaln_zero" / "adaln", the (B, L, D) condition tokens for
    "cross_attention", unused for "in_context" (the condition is already among the tokens).
    """

    def __init__(self, hidden_size: int, num_heads: int, mlp_ratio: float = 4.0,
                 conditioning: str = "adaln_zero"):
        super().__init__()
        self.conditioning = conditioning
        adaptive = conditioning in ("adaln_zero", "adaln")
        # With adaLN the LayerNorm's own affine parameters would be redundant (the regressed
        # shift/scale replace them); the plain ViT variants keep them.
        self.norm1 = nn.LayerNorm(hidden_size, elementwise_affine=not adaptive, eps=1e-6)
        self.attn = Attention(hidden_size, num_heads)
        if conditioning == "cross_attention":
            self.norm_cross = nn.LayerNorm(hidden_size, eps=1e-6)
            self.cross_attn = CrossAttention(hidden_size, num_heads)
        self.norm2 = nn.LayerNorm(hidden_size, elementwise_affine=not adaptive, eps=1e-6)
        self.mlp = Mlp(hidden_size, int(hidden_size * mlp_ratio))
        if adaptive:
            # adaLN-Zero regresses 6 vectors (shift, scale, gate for attention and MLP),
            # adaLN 4 (no gates).
            n_out = 6 if conditioning == "adaln_zero" else 4
            self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, n_out * hidden_size))

    def forward(self, x, c=None):
        if self.conditioning == "adaln_zero":
            shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = \
                self.adaLN_modulation(c).chunk(6, dim=1)              # each (B, D)
            x = x + gate_msa.unsqueeze(1) * self.attn(modulate(self.norm1(x), shift_msa, scale_msa))
            x = x + gate_mlp.unsqueeze(1) * self.mlp(modulate(self.norm2(x), shift_mlp, scale_mlp))
        elif self.conditioning == "adaln":
            shift_msa, scale_msa, shift_mlp, scale_mlp = self.adaLN_modulation(c).chunk(4, dim=1)
            x = x + self.attn(modulate(self.norm1(x), shift_msa, scale_msa))
            x = x + self.mlp(modulate(self.norm2(x), shift_mlp, scale_mlp))
        else:
            x = x + self.attn(self.norm1(x))
            if self.conditioning == "cross_attention":
                x = x + self.cross_attn(self.norm_cross(x), c)
            x = x + self.mlp(self.norm2(x))
        return x


class FinalLayer(nn.Module):
    """(B, T, D) -> (B, T, p * p * C_out): LayerNorm (adaptively modulated by c for the adaLN
    variants) then a linear map to each patch's pixels."""

    def __init__(self, hidden_size: int, patch_size: int, out_channels: int, adaptive: bool = True):
        super().__init__()
        self.norm_final = nn.LayerNorm(hidden_size, elementwise_affine=not adaptive, eps=1e-6)
        self.linear = nn.Linear(hidden_size, patch_size * patch_size * out_channels)
        self.adaptive = adaptive
        if adaptive:
            self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 2 * hidden_size))

    def forward(self, x, c=None):
        x = self.norm_final(x)
        if self.adaptive:
            shift, scale = self.adaLN_modulation(c).chunk(2, dim=1)
            x = modulate(x, shift, scale)
        return self.linear(x)


# ----------------------------------------------------------------- the model

class DiT(nn.Module):
    """Diffusion Transformer, called as `model(x_t, t, cond=None)`.

    x_t: (B, C, H, W) with C = in_channels and H = W = input_size.
    t: (B,) integer steps in [0, T) (or real times, or one number for the batch).
    cond: (B,) long class labels in [0, num_classes); `num_classes` (the null label) or
      None means "no label" (needs class_dropout_prob > 0). Must be None when num_classes
      is None (an unconditional DiT).
    force_drop_ids: optional (B,) tensor; where it is 1 the label is replaced by the null
      label (as the official LabelEmbedder; for batched classifier-free guidance).
    Returns (B, out_channels, H, W); out_channels = 2 * C with learn_sigma (the first C
    channels are the `prediction`, the last C the variance interpolation of
    Nichol & Dhariwal 2021), else C.
    """

    def __init__(self, input_size: int = 16, patch_size: int = 2, in_channels: int = 1,
                 hidden_size: int = 64, depth: int = 4, num_heads: int = 4, mlp_ratio: float = 4.0,
                 class_dropout_prob: float = 0.1, num_classes: int | None = 10,
                 learn_sigma: bool = False, conditioning: str = "adaln_zero",
                 prediction: str = "eps"):
        super().__init__()
        check_choice("conditioning", conditioning, CONDITIONINGS)
        check_choice("prediction", prediction, PREDICTIONS)
        for name, v in [("input_size", input_size), ("patch_size", patch_size),
                        ("in_channels", in_channels), ("hidden_size", hidden_size),
                        ("depth", depth), ("num_heads", num_heads)]:
            check_positive_int(name, v)
        if input_size % patch_size:
            raise ValueError(f"input_size ({input_size}) must be divisible by patch_size ({patch_size})")
        if hidden_size % num_heads:
            raise ValueError(f"hidden_size ({hidden_size}) must be divisible by num_heads ({num_heads})")
        if hidden_size % 4:
            raise ValueError(f"hidden_size must be a multiple of 4 (2D sin-cos positions), got {hidden_size}")
        if num_classes is not None:
            check_positive_int("num_classes", num_classes)
        if not 0.0 <= class_dropout_prob < 1.0:
            raise ValueError(f"class_dropout_prob must be in [0, 1), got {class_dropout_prob!r}")

        self.input_size = input_size
        self.learn_sigma = learn_sigma
        self.in_channels = in_channels
        self.out_channels = in_channels * 2 if learn_sigma else in_channels
        self.patch_size = patch_size
        self.num_heads = num_heads
        self.num_classes = num_classes
        self.class_dropout_prob = class_dropout_prob
        self.conditioning = conditioning
        self.prediction = prediction
        adaptive = conditioning in ("adaln_zero", "adaln")

        self.x_embedder = PatchEmbed(input_size, patch_size, in_channels, hidden_size)
        self.t_embedder = TimestepEmbedder(hidden_size)
        if num_classes is not None:
            self.y_embedder = LabelEmbedder(num_classes, hidden_size, class_dropout_prob)
        # Fixed sin-cos positions: a Parameter that does not train (as official, so the
        # checkpoint holds `pos_embed`).
        self.pos_embed = nn.Parameter(torch.zeros(1, self.x_embedder.num_patches, hidden_size),
                                      requires_grad=False)
        self.blocks = nn.ModuleList([DiTBlock(hidden_size, num_heads, mlp_ratio, conditioning)
                                     for _ in range(depth)])
        self.final_layer = FinalLayer(hidden_size, patch_size, self.out_channels, adaptive)
        self.initialize_weights()

    def initialize_weights(self):
        # Transformer linears: Xavier-uniform weights, zero biases (as in ViT).
        def _basic_init(module):
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        self.apply(_basic_init)

        # Fixed 2D sin-cos positions (not learned).
        pos = sincos_pos_embed_2d(self.pos_embed.shape[-1], self.x_embedder.grid_size)
        self.pos_embed.data.copy_(pos.unsqueeze(0))

        # The patch embedding is a linear map of each flattened patch: init it like one.
        w = self.x_embedder.proj.weight.data
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))

        # Small embeddings for labels and steps, so c = t_emb + y_emb starts small.
        if self.num_classes is not None:
            nn.init.normal_(self.y_embedder.embedding_table.weight, std=0.02)
        nn.init.normal_(self.t_embedder.mlp[0].weight, std=0.02)
        nn.init.normal_(self.t_embedder.mlp[2].weight, std=0.02)

        # adaLN-Zero: zero the regressor of (shift, scale, gate), so every gate is 0 and each
        # block x + gate * f(x) starts as the identity map -- the paper's key to stable
        # training of deep DiTs. (Plain adaLN keeps the Xavier init: its blocks are not the
        # identity at init.)
        if self.conditioning == "adaln_zero":
            for block in self.blocks:
                nn.init.zeros_(block.adaLN_modulation[-1].weight)
                nn.init.zeros_(block.adaLN_modulation[-1].bias)

        # Zero the output layer (all variants): the untrained model predicts 0 -- for
        # eps-prediction the mean of the noise -- and the final shift/scale start at 0.
        if self.final_layer.adaptive:
            nn.init.zeros_(self.final_layer.adaLN_modulation[-1].weight)
            nn.init.zeros_(self.final_layer.adaLN_modulation[-1].bias)
        nn.init.zeros_(self.final_layer.linear.weight)
        nn.init.zeros_(self.final_layer.linear.bias)

    def unpatchify(self, x):
        """(B, T, p * p * out_channels) -> (B, out_channels, H, W)."""
        return unpatchify(x, self.patch_size, self.out_channels, self.x_embedder.grid_size)

    def _check_x(self, x):
        check_tensor("x", x, ndim=4)
        check_model_input("x", x, self, self.x_embedder.proj.weight)
        B, C, H, W = x.shape
        if C != self.in_channels:
            raise ValueError(f"x has {C} channels, this DiT expects in_channels={self.in_channels}")
        if H != self.input_size or W != self.input_size:
            hint = ("" if H % self.patch_size == 0 and W % self.patch_size == 0 else
                    f"; {H}x{W} is not even divisible by patch_size={self.patch_size}")
            raise ValueError(f"x is {H}x{W}, this DiT was built for input_size={self.input_size} "
                             f"({self.input_size}x{self.input_size}){hint}")

    def embed_condition(self, t, cond, B, device, force_drop_ids=None):
        """The condition embeddings: a list of (B, D) tensors [t_emb] or [t_emb, y_emb]."""
        embs = [self.t_embedder(as_timesteps(t, B, device))]
        if self.num_classes is not None:
            y = as_labels(cond, B, self.num_classes, self.class_dropout_prob > 0, device)
            if force_drop_ids is not None and self.class_dropout_prob == 0:
                raise ValueError("force_drop_ids needs a null class: build the model with class_dropout_prob > 0")
            embs.append(self.y_embedder(y, self.training, force_drop_ids))
        elif cond is not None:
            raise ValueError("cond was given but this DiT is unconditional (num_classes=None)")
        return embs

    def forward(self, x, t, cond=None, force_drop_ids=None):
        self._check_x(x)
        B = x.shape[0]
        embs = self.embed_condition(t, cond, B, x.device, force_drop_ids)
        x = self.x_embedder(x) + self.pos_embed                     # (B, T, D), T = H * W / p ** 2

        if self.conditioning in ("adaln_zero", "adaln"):
            c = sum(embs)                                            # (B, D)
            for block in self.blocks:
                x = block(x, c)
            x = self.final_layer(x, c)
        elif self.conditioning == "cross_attention":
            context = torch.stack(embs, dim=1)                       # (B, L, D), L = 1 or 2
            for block in self.blocks:
                x = block(x, context)
            x = self.final_layer(x)
        else:  # in_context
            L = len(embs)
            x = torch.cat([torch.stack(embs, dim=1), x], dim=1)      # (B, L + T, D)
            for block in self.blocks:
                x = block(x)
            x = self.final_layer(x[:, L:])                            # drop the condition tokens
        return self.unpatchify(x)                                    # (B, out_channels, H, W)

    def features(self, x, t, cond=None, layers=None) -> dict:
        """Named activations of one forward pass `self(x, t, cond)` (nets/features.py), in
        forward order; `layers` picks some. T = (H / p) ** 2 tokens, D = hidden size:
          "embed"    patch embeddings plus positions: (B, T, D)
          "block.k"  the output of block k, k < depth: (B, T, D) (for "in_context" the image
                     tokens only: the L condition tokens in front are left out)
          "final"    final_layer: (B, T, p * p * out_channels), before unpatchify
          "out"      the output (B, out_channels, H, W)
        """
        T = self.x_embedder.num_patches
        taps = {"embed": (self.x_embedder, lambda h: h + self.pos_embed),
                **{f"block.{k}": (block, lambda h: h[:, -T:]) for k, block in enumerate(self.blocks)},
                "final": (self.final_layer, None), "out": (None, None)}
        return record_features(taps, layers, lambda: self(x, t, cond))


# ----------------------------------------------------------------- configs
# Official sizes (Table 1 of the paper); defaults give the official ImageNet-256 model
# (32x32x4 SD-VAE latents, 1000 classes, learned sigma). Override any of them by keyword.

_OFFICIAL = dict(input_size=32, in_channels=4, num_classes=1000, learn_sigma=True,
                 class_dropout_prob=0.1)


def _official(**kwargs) -> DiT:
    return DiT(**{**_OFFICIAL, **kwargs})


def DiT_XL_2(**kwargs):
    return _official(**{**dict(depth=28, hidden_size=1152, patch_size=2, num_heads=16), **kwargs})


def DiT_XL_4(**kwargs):
    return _official(**{**dict(depth=28, hidden_size=1152, patch_size=4, num_heads=16), **kwargs})


def DiT_XL_8(**kwargs):
    return _official(**{**dict(depth=28, hidden_size=1152, patch_size=8, num_heads=16), **kwargs})


def DiT_L_2(**kwargs):
    return _official(**{**dict(depth=24, hidden_size=1024, patch_size=2, num_heads=16), **kwargs})


def DiT_L_4(**kwargs):
    return _official(**{**dict(depth=24, hidden_size=1024, patch_size=4, num_heads=16), **kwargs})


def DiT_L_8(**kwargs):
    return _official(**{**dict(depth=24, hidden_size=1024, patch_size=8, num_heads=16), **kwargs})


def DiT_B_2(**kwargs):
    return _official(**{**dict(depth=12, hidden_size=768, patch_size=2, num_heads=12), **kwargs})


def DiT_B_4(**kwargs):
    return _official(**{**dict(depth=12, hidden_size=768, patch_size=4, num_heads=12), **kwargs})


def DiT_B_8(**kwargs):
    return _official(**{**dict(depth=12, hidden_size=768, patch_size=8, num_heads=12), **kwargs})


def DiT_S_2(**kwargs):
    return _official(**{**dict(depth=12, hidden_size=384, patch_size=2, num_heads=6), **kwargs})


def DiT_S_4(**kwargs):
    return _official(**{**dict(depth=12, hidden_size=384, patch_size=4, num_heads=6), **kwargs})


def DiT_S_8(**kwargs):
    return _official(**{**dict(depth=12, hidden_size=384, patch_size=8, num_heads=6), **kwargs})


def dit_tiny(**kwargs) -> DiT:
    """Teaching size: 16x16x1 images, patch 2 (64 tokens), hidden 64, depth 4, 4 heads,
    10 classes; 0.33M trainable parameters (adaLN-Zero). Pass patch_size=4, input_size=32, ... to change."""
    return DiT(**{**dict(input_size=16, patch_size=2, in_channels=1, hidden_size=64, depth=4,
                         num_heads=4, num_classes=10), **kwargs})


def dit_mini(**kwargs) -> DiT:
    """Teaching size: 32x32x1 images, patch 4 (64 tokens), hidden 128, depth 6, 4 heads,
    10 classes; 1.9M trainable parameters (adaLN-Zero)."""
    return DiT(**{**dict(input_size=32, patch_size=4, in_channels=1, hidden_size=128, depth=6,
                         num_heads=4, num_classes=10), **kwargs})


DIT_MODELS = {
    "DiT-XL/2": DiT_XL_2, "DiT-XL/4": DiT_XL_4, "DiT-XL/8": DiT_XL_8,
    "DiT-L/2": DiT_L_2, "DiT-L/4": DiT_L_4, "DiT-L/8": DiT_L_8,
    "DiT-B/2": DiT_B_2, "DiT-B/4": DiT_B_4, "DiT-B/8": DiT_B_8,
    "DiT-S/2": DiT_S_2, "DiT-S/4": DiT_S_4, "DiT-S/8": DiT_S_8,
    "dit_tiny": dit_tiny, "dit_mini": dit_mini,
}
