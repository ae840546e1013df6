"""Transformer layers shared by DiT and MMDiT, named as in timm and the official DiT code
(`proj`, `qkv`, `fc1`, `fc2`, `mlp`, `embedding_table`), so official state dicts load unrenamed.

  PatchEmbed        (B, C, H, W) -> (B, T, D): one linear map per p x p patch
  TimestepEmbedder  t: (B,) -> (B, D): sinusoidal features, then Linear-SiLU-Linear
  LabelEmbedder     y: (B,) -> (B, D): a table, with the null label of classifier-free guidance
  attention         softmax(q k^T / sqrt(d)) v, optionally returning the weights
  Attention, CrossAttention, Mlp   the blocks' sublayers

Notation: B batch, T tokens, D hidden size, p patch size.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .embeddings import drop_labels, timestep_embedding

__all__ = ["PatchEmbed", "TimestepEmbedder", "LabelEmbedder", "attention", "Attention", "CrossAttention", "Mlp"]


# ----------------------------------------------------------------- embedding layers

class PatchEmbed(nn.Module):
    """(B, C, H, W) -> (B, T, D): a stride-p convolution, i.e. one linear map per patch.
    Named like timm's PatchEmbed (`proj`)."""

    def __init__(self, input_size: int, patch_size: int, in_channels: int, hidden_size: int):
        super().__init__()
        self.patch_size = patch_size
        self.grid_size = input_size // patch_size
        self.num_patches = self.grid_size ** 2
        self.proj = nn.Conv2d(in_channels, hidden_size, patch_size, stride=patch_size)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)               # (B, T, D)


class TimestepEmbedder(nn.Module):
    """t: (B,) -> (B, D): sinusoidal features of width 256, then Linear-SiLU-Linear."""

    def __init__(self, hidden_size: int, frequency_embedding_size: int = 256):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(frequency_embedding_size, hidden_size), nn.SiLU(),
                                 nn.Linear(hidden_size, hidden_size))
        self.frequency_embedding_size = frequency_embedding_size

    def forward(self, t):
        return self.mlp(timestep_embedding(t, self.frequency_embedding_size))


class LabelEmbedder(nn.Module):
    """y: (B,) -> (B, D), a table lookup. With dropout_prob > 0 the table has one extra row,
    the null label `num_classes`, and labels are dropped to it in training (for CFG)."""

    def __init__(self, num_classes: int, hidden_size: int, dropout_prob: float):
        super().__init__()
        self.embedding_table = nn.Embedding(num_classes + int(dropout_prob > 0), hidden_size)
        self.num_classes = num_classes
        self.dropout_prob = dropout_prob

    def forward(self, labels, train: bool, force_drop_ids=None):
        if (train and self.dropout_prob > 0) or force_drop_ids is not None:
            labels = drop_labels(labels, self.num_classes, self.dropout_prob, force_drop_ids)
        return self.embedding_table(labels)


# ----------------------------------------------------------------- transformer layers

def attention(q, k, v, return_weights: bool = False):
    """q: (B, heads, Tq, d), k, v: (B, heads, Tk, d) -> (B, heads, Tq, d)
    [and the weights softmax(q k^T / sqrt(d)): (B, heads, Tq, Tk)]."""
    if not return_weights:
        return F.scaled_dot_product_attention(q, k, v), None
    w = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1)
    return w @ v, w


class Attention(nn.Module):
    """Multi-head self-attention, (B, T, D) -> (B, T, D); timm's names `qkv`, `proj`.

    The qkv output is laid out as [q | k | v], each split into heads of D / heads channels.
    """

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, return_weights: bool = False):
        B, T, D = x.shape
        qkv = self.qkv(x).reshape(B, T, 3, self.num_heads, D // self.num_heads).permute(2, 0, 3, 1, 4)
        h, w = attention(*qkv.unbind(0), return_weights)              # (B, heads, T, D/heads)
        h = self.proj(h.transpose(1, 2).reshape(B, T, D))
        return (h, w) if return_weights else h


class CrossAttention(nn.Module):
    """Multi-head cross-attention: queries from x (B, T, D), keys/values from a context
    (B, L, D) -> (B, T, D)."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, context):
        B, T, D = x.shape
        L, d = context.shape[1], D // self.num_heads
        q = self.q(x).reshape(B, T, self.num_heads, d).transpose(1, 2)          # (B, heads, T, d)
        k, v = self.kv(context).reshape(B, L, 2, self.num_heads, d).permute(2, 0, 3, 1, 4)
        h, _ = attention(q, k, v)
        return self.proj(h.transpose(1, 2).reshape(B, T, D))


class Mlp(nn.Module):
    """(B, T, D) -> (B, T, D): fc1 -> GELU (tanh approximation, as DiT) -> fc2; timm's names."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU(approximate="tanh")
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))
