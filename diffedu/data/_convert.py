"""Pixel conversions shared by the image sets: [0, 1] -> [-1, 1], and resizing."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .._validate import check_positive_int


def to_unit_range(x01: torch.Tensor) -> torch.Tensor:
    """[0, 1] -> [-1, 1], clamped."""
    return (x01 * 2 - 1).clamp(-1, 1)


def resize(images: torch.Tensor, size) -> torch.Tensor:
    """(N, C, h, w) -> (N, C, size, size), bilinear (no-op when size is None or equal)."""
    if size is None or tuple(images.shape[-2:]) == (size, size):
        return images
    check_positive_int("size", size)
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False).clamp(-1, 1)
