"""Noise-conditional classifiers p(y | x_t, t), the ingredient of classifier guidance
(Dhariwal & Nichol 2021): guidance adds s * grad_x log p(y | x_t, t) to the score, so the
classifier must be trained on noisy inputs at every step t, and it must be differentiable in x.

Scope: two small classifiers, both called as `classifier(x_t, t)` and returning logits
(B, num_classes):
  ImageClassifier   (B, C, H, W) images: the encoder half of a U-Net (ResBlocks with the
                    timestep embedding, downsampling), global average pooling, a linear head
  PointClassifier   (B, D) points: an MLP on [x, timestep embedding]
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .._validate import check_index, check_model_input, check_positive_int, check_tensor
from .embeddings import as_timesteps, timestep_embedding
from .unet import AttentionBlock, Downsample, EmbedSequential, ResBlock, num_groups


class ImageClassifier(nn.Module):
    """p(y | x_t, t) for images. x: (B, C, H, W), H and W divisible by
    2 ** (len(channel_mult) - 1); t: (B,) steps or one number. Returns logits (B, num_classes).
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, base_channels: int = 32,
                 channel_mult=(1, 2, 2), num_res_blocks: int = 1, attention: bool = True,
                 num_heads: int = 4, dropout: float = 0.0):
        super().__init__()
        check_positive_int("in_channels", in_channels)
        check_positive_int("num_classes", num_classes)
        check_positive_int("base_channels", base_channels)
        self.in_channels, self.num_classes, self.base_channels = in_channels, num_classes, base_channels
        self.channel_mult = tuple(channel_mult)
        emb_dim = 4 * base_channels
        self.time_embed = nn.Sequential(nn.Linear(base_channels, emb_dim), nn.SiLU(),
                                        nn.Linear(emb_dim, emb_dim))
        self.input_conv = nn.Conv2d(in_channels, base_channels, 3, padding=1)
        layers, ch = [], base_channels
        for level, mult in enumerate(self.channel_mult):
            for _ in range(num_res_blocks):
                layers.append(ResBlock(ch, base_channels * mult, emb_dim, dropout))
                ch = base_channels * mult
            if level != len(self.channel_mult) - 1:
                layers.append(Downsample(ch))
        if attention:                                  # one attention at the lowest resolution
            layers.append(AttentionBlock(ch, num_heads))
        self.encoder = EmbedSequential(*layers)
        self.head = nn.Sequential(nn.GroupNorm(num_groups(ch), ch), nn.SiLU(),
                                  nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(ch, num_classes))

    def forward(self, x: torch.Tensor, t) -> torch.Tensor:
        check_tensor("x", x, ndim=4)
        check_model_input("x", x, self)
        B, C, H, W = x.shape
        if C != self.in_channels:
            raise ValueError(f"x has {C} channels, this classifier expects in_channels={self.in_channels}")
        f = 2 ** (len(self.channel_mult) - 1)
        if H % f or W % f:
            raise ValueError(f"image size {H}x{W} must be divisible by {f}")
        emb = self.time_embed(timestep_embedding(as_timesteps(t, B, x.device), self.base_channels))
        h = self.encoder(self.input_conv(x), emb)      # (B, ch, H/f, W/f)
        return self.head(h)                            # (B, num_classes)


class PointClassifier(nn.Module):
    """p(y | x_t, t) for points. x: (B, dim); t: (B,) steps or one number.
    Returns logits (B, num_classes)."""

    def __init__(self, dim: int = 2, num_classes: int = 2, hidden: int = 128, depth: int = 3,
                 t_dim: int = 32):
        super().__init__()
        for name, v in [("dim", dim), ("num_classes", num_classes), ("hidden", hidden),
                        ("depth", depth), ("t_dim", t_dim)]:
            check_positive_int(name, v)
        self.dim, self.num_classes, self.t_dim = dim, num_classes, t_dim
        layers, width = [], dim + t_dim
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.SiLU()]
            width = hidden
        layers.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, t) -> torch.Tensor:
        check_tensor("x", x, ndim=2)
        check_model_input("x", x, self)
        if x.shape[1] != self.dim:
            raise ValueError(f"x has shape {tuple(x.shape)}, this classifier expects (B, {self.dim})")
        temb = timestep_embedding(as_timesteps(t, x.shape[0], x.device), self.t_dim)  # (B, t_dim)
        return self.net(torch.cat([x, temb], dim=1))


def log_prob(classifier: nn.Module, x: torch.Tensor, t, y: torch.Tensor) -> torch.Tensor:
    """log p(y | x_t, t) for each sample: (B,). y: (B,) long labels."""
    logits = classifier(x, t)
    y = check_index("y", y)
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise ValueError(f"y must have shape (B,) = ({x.shape[0]},), one label per row of x, got {tuple(y.shape)}")
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= logits.shape[1]):
        raise ValueError(f"y holds labels in [{int(y.min())}, {int(y.max())}], allowed [0, {logits.shape[1] - 1}]")
    return F.log_softmax(logits, dim=-1).gather(1, y.long()[:, None]).squeeze(1)
