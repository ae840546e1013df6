"""A patch prior for images larger than it was trained on (survey section 5.1).

Scope: a denoiser trained on p x p patches is applied to an H x W image by cutting the noisy
image into overlapping patches, denoising each at the same step t, and averaging the
overlapping x0 predictions (the patch-averaging of Ozdenizci & Legenstein 2023 and the
"patch-based diffusion" priors for CT, e.g. Hu et al. 2024, in their plainest form).
    random_patches(x, p, n, generator)   training crops (n, C, p, p) of images x (N, C, H, W)
    patch_denoiser(D, patch, stride)     a PatchDenoiser: the averaged prediction as a Denoiser
    activation_bytes(fn)                 bytes of every module output during fn(): the memory an
                                         autograd graph through the network holds (DPS needs it)

The contract holds: a PatchDenoiser is a Denoiser over whole images (B, C, H, W) at the patch
prior's integer steps. Averaging x0 predictions of overlapping patches is not the posterior mean
of the whole image (each patch sees only its window; the average is a product-of-experts-like
heuristic), so the whole-image prior is the reference it is graded against.

Notation: p the patch size, s the stride, P = ((H - p)/s + 1) ((W - p)/s + 1) patches per image.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .._validate import check_int, check_positive_int, check_tensor
from ..denoiser import Denoiser, as_denoiser, t_batch

__all__ = ["random_patches", "patch_denoiser", "PatchDenoiser", "activation_bytes", "patch_count"]


def random_patches(x: torch.Tensor, p: int, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """n random p x p crops of random images of x: (N, C, H, W) -> (n, C, p, p)."""
    check_tensor("x", x, ndim=4, nonempty=True)
    p, n = check_positive_int("p", p), check_positive_int("n", n)
    N, C, H, W = x.shape
    if p > min(H, W):
        raise ValueError(f"p must be at most the image size {min(H, W)}, got {p}")
    i = torch.randint(0, N, (n,), generator=generator)
    r = torch.randint(0, H - p + 1, (n,), generator=generator)
    c = torch.randint(0, W - p + 1, (n,), generator=generator)
    ar = torch.arange(p)
    rows = (r[:, None] + ar)[:, :, None].expand(n, p, p)                  # (n, p, p)
    cols = (c[:, None] + ar)[:, None, :].expand(n, p, p)
    return x[i[:, None, None], :, rows, cols].permute(0, 3, 1, 2).contiguous()   # (n, C, p, p)


def patch_count(size: int, patch: int, stride: int) -> int:
    """Patches per image side: (size - patch) / stride + 1 (stride must tile the side exactly)."""
    size, patch, stride = check_positive_int("size", size), check_positive_int("patch", patch), \
        check_positive_int("stride", stride)
    if patch > size or (size - patch) % stride:
        raise ValueError(f"patches of {patch} with stride {stride} must tile a side of {size} exactly: need "
                         f"patch <= size and (size - patch) % stride == 0")
    return (size - patch) // stride + 1


class PatchDenoiser(Denoiser):
    """The patch-averaged denoiser (module doc): x: (B, C, H, W) -> x0_hat (B, C, H, W), the mean
    of the overlapping patch predictions of `denoiser` at each pixel. Build it with `patch_denoiser`."""

    def __init__(self, denoiser: Denoiser, patch: int, stride: int, chunk: int):
        self.denoiser, self.patch, self.stride, self.chunk = denoiser, patch, stride, chunk
        self.schedule = denoiser.schedule

    def x0_eps(self, x: torch.Tensor, t, cond=None, alpha_bar=None):
        check_tensor("x", x, ndim=4)
        t = t_batch(t, x)
        B, C, H, W = x.shape
        p, s = self.patch, self.stride
        ny, nx = patch_count(H, p, s), patch_count(W, p, s)
        # 1. cut: (B, C p p, P) -> (B P, C, p, p), one row of t per patch
        cols = F.unfold(x, p, stride=s)
        P = cols.shape[-1]
        patches = cols.transpose(1, 2).reshape(B * P, C, p, p)
        tp = t.repeat_interleave(P)
        if alpha_bar is None:
            alpha_bar = self._alpha_bar(t, x)
        ab = alpha_bar if not isinstance(alpha_bar, torch.Tensor) or alpha_bar.numel() == 1 else \
            alpha_bar.reshape(B, 1).repeat_interleave(P, 0).reshape(B * P, 1, 1, 1)
        # 2. denoise the patches in chunks (memory: one chunk's activations without a graph)
        outs = []
        for k in range(0, B * P, self.chunk):
            abk = ab if not isinstance(ab, torch.Tensor) or ab.numel() == 1 else ab[k:k + self.chunk]
            outs.append(self.denoiser.x0_eps(patches[k:k + self.chunk], tp[k:k + self.chunk], cond, abk)[0])
        x0p = torch.cat(outs)
        # 3. paste back and divide by the number of patches covering each pixel
        summed = F.fold(x0p.reshape(B, P, C * p * p).transpose(1, 2), (H, W), p, stride=s)
        count = F.fold(torch.ones_like(cols[:1]), (H, W), p, stride=s)
        assert P == ny * nx
        x0 = summed / count
        ab_x = alpha_bar if not isinstance(alpha_bar, torch.Tensor) or alpha_bar.numel() == 1 else \
            alpha_bar.reshape(B, 1, 1, 1)
        return x0, (x - ab_x ** 0.5 * x0) / (1 - ab_x) ** 0.5


def patch_denoiser(denoiser, patch: int = 16, stride: int = 8, chunk: int = 256) -> PatchDenoiser:
    """A Denoiser over whole images from a denoiser of patch x patch images (module doc): patches
    every `stride` pixels (stride < patch overlaps; the image side must be tiled exactly),
    denoised `chunk` patches at a time. x: (B, C, H, W)."""
    D = as_denoiser(denoiser)
    if D.schedule is None:
        raise ValueError("denoiser must carry its schedule (a NetworkDenoiser, or as_denoiser(fn, schedule))")
    patch, stride = check_positive_int("patch", patch), check_positive_int("stride", stride)
    if stride > patch:
        raise ValueError(f"stride must be at most patch ({patch}) so that the patches cover the image, got {stride}")
    return PatchDenoiser(D, patch, stride, check_int("chunk", chunk, lo=1))


def activation_bytes(fn) -> int:
    """Bytes of every tensor output by a leaf module of a network during fn() (register hooks on
    the modules of torch.nn.Module instances created before; they are found through the global
    module hook): the activations an autograd graph through the network keeps for backward."""
    total = [0]

    def hook(module, inputs, output):
        if len(list(module.children())) == 0 and isinstance(output, torch.Tensor):
            total[0] += output.numel() * output.element_size()
    handle = torch.nn.modules.module.register_module_forward_hook(hook)
    try:
        fn()
    finally:
        handle.remove()
    return total[0]
