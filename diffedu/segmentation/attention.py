"""The role of attention in a segmentation U-Net (survey section 6.2): read the attention
weights of a trained network, and run the same network with its attention switched off.

Scope: diffedu's UNet (nets/unet.py) has self-attention blocks at the coarse levels and in its
middle block. Two cheap, honest probes, with no retraining:
    attention_weights   the softmax weights A = softmax(q k^T / sqrt(d)) of one block
                        (B, heads, N, N), N = h * w tokens (pixels of that level): row n says
                        where pixel n looks;
    branch_ratio        ||block(x) - x|| / ||x|| per block during one forward pass: how much the
                        attention branch adds to the features it is given (0 = nothing);
    no_attention        a context manager under which every AttentionBlock returns its input
                        (its residual branch removed: a knock-out ablation of the trained net).
A knock-out measures how much the trained network relies on attention, not how well a network
trained without attention would do (that would need another training run).
"""
from __future__ import annotations

import contextlib

import torch
from torch import nn

from .._validate import check_tensor
from ..nets.unet import AttentionBlock

__all__ = ["attention_blocks", "attention_weights", "branch_ratio", "no_attention"]


def attention_blocks(net: nn.Module) -> dict:
    """{name: AttentionBlock} of a network, in module order (e.g. "middle.1" of a UNet)."""
    if not isinstance(net, nn.Module):
        raise TypeError(f"net must be a torch.nn.Module, got {type(net).__name__}")
    return {name: m for name, m in net.named_modules() if isinstance(m, AttentionBlock)}


def _weights(block: AttentionBlock, x: torch.Tensor) -> torch.Tensor:
    """A = softmax(q k^T / sqrt(d)) of `block` on its input x: (B, C, h, w) -> (B, heads, hw, hw)."""
    B, C, H, W = x.shape
    qkv = block.qkv(block.norm(x)).reshape(B, 3, block.num_heads, C // block.num_heads, H * W)
    q, k, _ = qkv.transpose(-1, -2).unbind(1)                       # each (B, heads, hw, d), d = C / heads
    return (q @ k.transpose(-1, -2) / (C // block.num_heads) ** 0.5).softmax(-1)


def attention_weights(net: nn.Module, inputs: torch.Tensor, t, block: str = "middle.1") -> torch.Tensor:
    """The attention weights of `block` during one forward pass net(inputs, t):
    (B, heads, N, N) with N = h * w, the token grid of that block (6 x 6 for the chapter's
    24 x 24 U-Net). inputs: (B, C_in, H, W) as the network takes them."""
    check_tensor("inputs", inputs, ndim=4)
    blocks = attention_blocks(net)
    if block not in blocks:
        raise ValueError(f"unknown block {block!r}; this network's attention blocks are {list(blocks)}")
    seen = {}
    handle = blocks[block].register_forward_hook(lambda m, args, out: seen.setdefault("x", args[0]))
    try:
        with torch.no_grad():
            net(inputs, t)
            return _weights(blocks[block], seen["x"])
    finally:
        handle.remove()


def branch_ratio(net: nn.Module, inputs: torch.Tensor, t) -> dict:
    """{block name: ||block(x) - x|| / ||x||} over one forward pass net(inputs, t) (module doc).
    inputs: (B, C_in, H, W) as the network takes them."""
    check_tensor("inputs", inputs, ndim=4)
    ratio = {}

    def hook(name):
        return lambda m, args, out: ratio.__setitem__(name, float((out - args[0]).norm() / args[0].norm().clamp_min(1e-12)))
    handles = [b.register_forward_hook(hook(n)) for n, b in attention_blocks(net).items()]
    try:
        with torch.no_grad():
            net(inputs, t)
    finally:
        for h in handles:
            h.remove()
    return ratio


@contextlib.contextmanager
def no_attention(net: nn.Module):
    """Inside the block, every AttentionBlock of `net` is the identity (module doc)."""
    blocks = list(attention_blocks(net).values())
    if not blocks:
        raise ValueError(f"{type(net).__name__} has no AttentionBlock to switch off")
    try:
        for b in blocks:
            b.forward = lambda x: x                     # an instance attribute shadows the class's forward
        yield net
    finally:
        for b in blocks:
            b.__dict__.pop("forward", None)             # the class's forward again
