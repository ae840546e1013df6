"""DDPM-style U-Net: the convolutional denoiser of Ho et al. (2020), with the small changes
of Nichol & Dhariwal (2021) (zero-initialised output convolutions, multi-head attention).

Scope: one readable network for 16x16 and 32x32 images that trains on a CPU in minutes.
Pieces, each reused elsewhere in diffedu (classifier, autoencoder):
  ResBlock        GroupNorm -> SiLU -> conv, plus a projection of the timestep embedding,
                  then GroupNorm -> SiLU -> dropout -> conv, added to a skip connection
  AttentionBlock  multi-head self-attention over the H*W pixels of a feature map
  Downsample / Upsample   stride-2 conv / nearest upsampling + conv
  UNet            encoder (levels of ResBlocks, halving the resolution), middle
                  (Res, Attn, Res), decoder (ResBlocks on [features, skip]), output conv

Notation: B batch, C channels, H x W image size, E = 4 * base_channels the width of the
timestep (+ class) embedding `emb`. Levels are numbered from 0 (full resolution); level l
works at H / 2**l and has base_channels * channel_mult[l] channels.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .._validate import check_choice, check_model_input, check_positive_int, check_tensor
from .embeddings import as_labels, as_timesteps, drop_labels, timestep_embedding
from .features import record_features

PREDICTIONS = ("eps", "x0", "v", "velocity")


def num_groups(channels: int, max_groups: int = 8) -> int:
    """The largest group count <= max_groups that divides `channels` (for GroupNorm)."""
    for g in range(min(max_groups, channels), 0, -1):
        if channels % g == 0:
            return g
    return 1


def zero_module(module: nn.Module) -> nn.Module:
    """Set every parameter of `module` to zero and return it."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ResBlock(nn.Module):
    """Residual block with timestep-embedding injection.

    x: (B, C_in, H, W), emb: (B, E) or None -> (B, C_out, H, W).
    The embedding is projected to C_out channels and added to every pixel after the first
    convolution (the DDPM way; `emb_dim=None` gives a plain residual block).
    """

    def __init__(self, in_channels: int, out_channels: int, emb_dim: int | None = None,
                 dropout: float = 0.0, max_groups: int = 8):
        super().__init__()
        self.norm1 = nn.GroupNorm(num_groups(in_channels, max_groups), in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.emb_proj = (nn.Sequential(nn.SiLU(), nn.Linear(emb_dim, out_channels))
                         if emb_dim is not None else None)
        self.norm2 = nn.GroupNorm(num_groups(out_channels, max_groups), out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.skip = (nn.Identity() if in_channels == out_channels
                     else nn.Conv2d(in_channels, out_channels, 1))

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))                       # (B, C_out, H, W)
        if self.emb_proj is not None:
            h = h + self.emb_proj(emb)[:, :, None, None]             # broadcast over H, W
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class AttentionBlock(nn.Module):
    """Multi-head self-attention over pixels, with a residual connection.

    x: (B, C, H, W) -> (B, C, H, W). The H*W pixels are the tokens; C must be divisible by
    `num_heads`.
    """

    def __init__(self, channels: int, num_heads: int = 4, max_groups: int = 8):
        super().__init__()
        if channels % num_heads:
            raise ValueError(f"channels ({channels}) must be divisible by num_heads ({num_heads})")
        self.num_heads = num_heads
        self.norm = nn.GroupNorm(num_groups(channels, max_groups), channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        qkv = self.qkv(self.norm(x)).reshape(B, 3, self.num_heads, C // self.num_heads, H * W)
        q, k, v = qkv.transpose(-1, -2).unbind(1)                    # each (B, heads, H*W, C/heads)
        h = F.scaled_dot_product_attention(q, k, v)                  # (B, heads, H*W, C/heads)
        h = h.transpose(-1, -2).reshape(B, C, H, W)
        return x + self.proj(h)


class Downsample(nn.Module):
    """(B, C, H, W) -> (B, C, H/2, W/2) by a stride-2 3x3 convolution."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x):
        return self.conv(x)


class Upsample(nn.Module):
    """(B, C, H, W) -> (B, C, 2H, 2W) by nearest-neighbour upsampling and a 3x3 convolution."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class EmbedSequential(nn.Sequential):
    """A Sequential that hands the embedding `emb` to the ResBlocks among its layers."""

    def forward(self, x, emb=None):
        for layer in self:
            x = layer(x, emb) if isinstance(layer, ResBlock) else layer(x)
        return x


class UNet(nn.Module):
    """DDPM U-Net, called as `model(x_t, t, cond=None)`.

    x_t: (B, C, H, W) noisy images, H and W divisible by 2 ** (len(channel_mult) - 1).
    t: (B,) integer steps in [0, T) (or real times, or one number for the whole batch).
    cond: (B,) long class labels when `num_classes` is set (the label `num_classes` or
      `None` means "no label" -- the null class of classifier-free guidance); else ignored
      and must be None.
    force_drop_ids: optional (B,) tensor; where it is 1 the label becomes the null label.
    Returns (B, out_channels, H, W), the quantity named by `self.prediction`.

    Args:
      in_channels, out_channels: image channels (out defaults to in).
      base_channels: channels at level 0; level l has base_channels * channel_mult[l].
      num_res_blocks: ResBlocks per level in the encoder (the decoder has one more).
      attention_levels: levels that get self-attention after each ResBlock (the middle block
        always has one). Attention at full resolution is costly; keep it low-res.
      num_classes: number of classes for class conditioning (None: unconditional).
      class_dropout_prob: in training mode, labels are replaced by the null label with this
        probability (classifier-free guidance); > 0 also adds the null row to the table.
    """

    def __init__(self, in_channels: int = 1, out_channels: int | None = None,
                 base_channels: int = 32, channel_mult=(1, 2, 2), num_res_blocks: int = 1,
                 attention_levels=(2,), num_heads: int = 4, dropout: float = 0.0,
                 num_classes: int | None = None, class_dropout_prob: float = 0.1,
                 prediction: str = "eps", max_groups: int = 8):
        super().__init__()
        check_positive_int("in_channels", in_channels)
        check_positive_int("base_channels", base_channels)
        check_positive_int("num_res_blocks", num_res_blocks)
        check_choice("prediction", prediction, PREDICTIONS)
        channel_mult = tuple(channel_mult)
        if not channel_mult or any(not isinstance(m, int) or m < 1 for m in channel_mult):
            raise ValueError(f"channel_mult must be a non-empty tuple of positive ints, got {channel_mult!r}")
        bad = [lvl for lvl in attention_levels if not 0 <= lvl < len(channel_mult)]
        if bad:
            raise ValueError(f"attention_levels {tuple(attention_levels)} must lie in "
                             f"[0, {len(channel_mult) - 1}] (one per entry of channel_mult)")
        if num_classes is not None:
            check_positive_int("num_classes", num_classes)
        if not 0.0 <= class_dropout_prob < 1.0:
            raise ValueError(f"class_dropout_prob must be in [0, 1), got {class_dropout_prob!r}")

        self.in_channels = in_channels
        self.out_channels = out_channels or in_channels
        self.channel_mult = channel_mult
        self.num_classes = num_classes
        self.class_dropout_prob = class_dropout_prob
        self.prediction = prediction
        self.base_channels = base_channels
        emb_dim = 4 * base_channels                                  # E

        # Timestep embedding: sinusoid of width base_channels, then a 2-layer MLP (as DDPM).
        self.time_embed = nn.Sequential(nn.Linear(base_channels, emb_dim), nn.SiLU(),
                                        nn.Linear(emb_dim, emb_dim))
        if num_classes is not None:
            # One extra row, the null label, when labels can be dropped for CFG.
            self.label_embed = nn.Embedding(num_classes + int(class_dropout_prob > 0), emb_dim)

        res = lambda cin, cout: ResBlock(cin, cout, emb_dim, dropout, max_groups)  # noqa: E731
        attn = lambda ch: AttentionBlock(ch, num_heads, max_groups)                 # noqa: E731

        # Encoder: remember the channel count of every tensor pushed onto the skip stack.
        self.input_conv = nn.Conv2d(in_channels, base_channels, 3, padding=1)
        self.down = nn.ModuleList()
        skip_channels, ch = [base_channels], base_channels
        for level, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                layers = [res(ch, base_channels * mult)]
                ch = base_channels * mult
                if level in attention_levels:
                    layers.append(attn(ch))
                self.down.append(EmbedSequential(*layers))
                skip_channels.append(ch)
            if level != len(channel_mult) - 1:
                self.down.append(EmbedSequential(Downsample(ch)))
                skip_channels.append(ch)

        self.middle = EmbedSequential(res(ch, ch), attn(ch), res(ch, ch))

        # Decoder: each block takes [h, skip] concatenated along channels.
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mult))):
            for i in range(num_res_blocks + 1):
                layers = [res(ch + skip_channels.pop(), base_channels * mult)]
                ch = base_channels * mult
                if level in attention_levels:
                    layers.append(attn(ch))
                if level != 0 and i == num_res_blocks:
                    layers.append(Upsample(ch))
                self.up.append(EmbedSequential(*layers))

        self.out = nn.Sequential(nn.GroupNorm(num_groups(ch, max_groups), ch), nn.SiLU(),
                                 nn.Conv2d(ch, self.out_channels, 3, padding=1))
        self.initialize_weights()

    def initialize_weights(self):
        # PyTorch's default init everywhere, except:
        # - the last conv of every ResBlock and the output projection of every attention
        #   block are zeroed, so each residual branch starts at 0 and the block is the
        #   identity (its skip path): a deep U-Net then starts as a shallow, stable one;
        # - the output conv is zeroed, so the untrained net predicts 0 (for eps-prediction
        #   that is the prior mean of the noise, a sensible first guess).
        for m in self.modules():
            if isinstance(m, ResBlock):
                zero_module(m.conv2)
            elif isinstance(m, AttentionBlock):
                zero_module(m.proj)
        zero_module(self.out[-1])
        if self.num_classes is not None:
            nn.init.normal_(self.label_embed.weight, std=0.02)

    @property
    def downsample_factor(self) -> int:
        return 2 ** (len(self.channel_mult) - 1)

    def check_input(self, x: torch.Tensor) -> None:
        """x: (B, in_channels, H, W) on this model's device and dtype, H and W divisible by
        downsample_factor; else a ValueError that says which (shared by the U-Net's wrappers)."""
        check_tensor("x", x, ndim=4)
        check_model_input("x", x, self, self.input_conv.weight)
        _, C, H, W = x.shape
        if C != self.in_channels:
            raise ValueError(f"x has {C} channels, this {type(self).__name__} expects in_channels={self.in_channels}")
        f = self.downsample_factor
        if H % f or W % f:
            raise ValueError(f"image size {H}x{W} must be divisible by {f} "
                             f"(2 ** (len(channel_mult) - 1) = 2 ** {len(self.channel_mult) - 1})")

    def forward(self, x: torch.Tensor, t, cond=None, force_drop_ids=None) -> torch.Tensor:
        self.check_input(x)
        B = x.shape[0]
        t = as_timesteps(t, B, x.device)

        # 1. Embedding of the step (and the class).
        emb = self.time_embed(timestep_embedding(t, self.base_channels))   # (B, E)
        if self.num_classes is not None:
            allow_null = self.class_dropout_prob > 0
            y = as_labels(cond, B, self.num_classes, allow_null, x.device)
            if force_drop_ids is not None and not allow_null:
                raise ValueError("force_drop_ids needs a null class: build the model with class_dropout_prob > 0")
            if allow_null and (self.training or force_drop_ids is not None):
                y = drop_labels(y, self.num_classes, self.class_dropout_prob, force_drop_ids)
            emb = emb + self.label_embed(y)
        elif cond is not None:
            raise ValueError("cond was given but this UNet is unconditional (num_classes=None)")

        # 2. Encoder: keep every intermediate feature map for the skip connections.
        h = self.input_conv(x)                                       # (B, base, H, W)
        skips = [h]
        for block in self.down:
            h = block(h, emb)
            skips.append(h)
        # 3. Middle at the lowest resolution H / f.
        h = self.middle(h, emb)
        # 4. Decoder: concatenate the matching skip, then ResBlocks (+ attention, upsample).
        for block in self.up:
            h = block(torch.cat([h, skips.pop()], dim=1), emb)
        return self.out(h)                                           # (B, out_channels, H, W)

    def features(self, x: torch.Tensor, t, cond=None, layers=None) -> dict:
        """Named activations of one forward pass `self(x, t, cond)` (nets/features.py), in
        forward order; `layers` picks some. With c_l = base_channels * channel_mult[l]:
          "input"   input_conv: (B, base_channels, H, W)
          "down.k"  encoder block self.down[k]: level l's ResBlocks give (B, c_l, H / 2**l,
                    W / 2**l); the Downsample block closing level l < last halves that size
          "mid"     the middle (Res, Attn, Res): (B, c_last, H / f, W / f), f = downsample_factor
          "up.k"    decoder block self.up[k], levels from last to 0, num_res_blocks + 1 each:
                    (B, c_l, H / 2**l, W / 2**l), except that the last block of a level l > 0
                    ends with an Upsample, giving H / 2**(l - 1)
          "out"     the output (B, out_channels, H, W)
        E.g. unet_tiny on (B, 1, 16, 16): input (16, 16x16); down.0..4 (16, 16x16), (16, 8x8),
        (32, 8x8), (32, 4x4), (32, 4x4); mid (32, 4x4); up.0..5 (32, 4x4), (32, 8x8),
        (32, 8x8), (32, 16x16), (16, 16x16), (16, 16x16); out (1, 16x16).
        """
        taps = {"input": (self.input_conv, None),
                **{f"down.{k}": (block, None) for k, block in enumerate(self.down)},
                "mid": (self.middle, None),
                **{f"up.{k}": (block, None) for k, block in enumerate(self.up)},
                "out": (None, None)}
        return record_features(taps, layers, lambda: self(x, t, cond))


# ----------------------------------------------------------------------------- configs

def unet_tiny(**kwargs) -> UNet:
    """0.28M parameters: for tests and second-long demos (16x16 or 32x32)."""
    return UNet(**{**dict(base_channels=16, channel_mult=(1, 2, 2), num_res_blocks=1), **kwargs})


def unet_small(**kwargs) -> UNet:
    """1.1M parameters: trains on 16x16 / 32x32 digits or shapes on a CPU in minutes."""
    return UNet(**{**dict(base_channels=32, channel_mult=(1, 2, 2), num_res_blocks=1), **kwargs})


def unet_base(**kwargs) -> UNet:
    """6.8M parameters, the 32x32 layout of DDPM scaled down (GPU recommended)."""
    return UNet(**{**dict(base_channels=64, channel_mult=(1, 2, 2), num_res_blocks=2,
                          attention_levels=(1, 2)), **kwargs})


UNET_MODELS = {"unet_tiny": unet_tiny, "unet_small": unet_small, "unet_base": unet_base}
