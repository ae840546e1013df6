"""A perceptual distance for 16 x 16 digits, and the scores of chapter 10's table.

Scope: LPIPS compares images in the features of a network trained on natural images; there
is none for 16 x 16 digits, so this is a *proxy* of the same kind: the features of a small
digit classifier (`nets.classifier.ImageClassifier`, trained on clean train digits at t = 0,
shipped as "blind/classifier_digits"), pooled after its last block and normalised to unit
length. Two digits are perceptually close when the classifier "sees" the same thing.

    features(x)                 (B, F) unit-length features of x: (B, 1, 16, 16)
    perceptual_distance(x, ref) ||f(x) - f(ref)||^2 per image, in [0, 4]: (B,)
    realism_distance(x, ref)    how far each image is from the nearest clean image, in features
                                (mean over x of min_j ||f(x_i) - f(ref_j)||^2): a no-reference
                                realism score that works for 8 images (Blau & Michaeli's
                                "perceptual quality" is a divergence between distributions; this
                                is its support side: does the output look like *some* real digit)
    frechet_distance(x, ref)    the Frechet distance between Gaussian fits of the two feature
                                sets: the distribution divergence itself (needs many images)
    scores(x, truth)            {psnr, ssim, perceptual} means, the columns of the table
"""
from __future__ import annotations

import functools

import torch

from ..._validate import check_tensor

__all__ = ["classifier", "features", "perceptual_distance", "realism_distance", "frechet_distance", "scores"]


@functools.lru_cache(maxsize=1)
def classifier(name: str = "blind/classifier_digits"):
    """The shipped clean-digit classifier (eval mode, frozen)."""
    from ...train import pretrained
    return pretrained(name).requires_grad_(False)


def features(x: torch.Tensor, net=None) -> torch.Tensor:
    """(B, F) unit-length pooled features of the classifier's last block. x: (B, 1, H, W) in [-1, 1]."""
    check_tensor("x", x, ndim=4)
    net = classifier() if net is None else net
    from ...nets.embeddings import timestep_embedding
    emb = net.time_embed(timestep_embedding(torch.zeros(len(x), dtype=torch.long), net.base_channels))
    h = net.encoder(net.input_conv(x.clamp(-1, 1)), emb)
    f = net.head[:-1](h)                                           # GroupNorm, SiLU, pool, flatten
    return f / f.norm(dim=1, keepdim=True).clamp_min(1e-8)


def perceptual_distance(x: torch.Tensor, ref: torch.Tensor, net=None) -> torch.Tensor:
    """||f(x) - f(ref)||^2 per image (0: same features; 4: opposite). x, ref: (B, 1, H, W) -> (B,)."""
    if x.shape != ref.shape:
        raise ValueError(f"x has shape {tuple(x.shape)} but ref has {tuple(ref.shape)}")
    with torch.no_grad():
        return (features(x, net) - features(ref, net)).pow(2).sum(1)


def _sqrtm_psd(M: torch.Tensor) -> torch.Tensor:
    e, V = torch.linalg.eigh((M + M.T) / 2)
    return V @ torch.diag(e.clamp_min(0).sqrt()) @ V.T


def realism_distance(x: torch.Tensor, ref: torch.Tensor, net=None) -> float:
    """Mean over x: (N, 1, H, W) of the squared feature distance to the nearest image of ref:
    (M, 1, H, W), or of ref's features (M, F) computed once with `features` (module doc); 0 when
    every image of x is in ref."""
    check_tensor("x", x, ndim=4)
    check_tensor("ref", ref, ndim=(2, 4))
    with torch.no_grad():
        fr = ref if ref.ndim == 2 else features(ref, net)
        d = torch.cdist(features(x, net), fr) ** 2                                # (N, M)
    return d.min(1).values.mean().item()


def frechet_distance(x: torch.Tensor, ref: torch.Tensor, net=None) -> float:
    """Frechet distance ||m_x - m_r||^2 + tr(S_x + S_r - 2 (S_r^1/2 S_x S_r^1/2)^1/2) between
    Gaussians fitted to the features of the sets x: (N, 1, H, W) and ref: (M, 1, H, W)."""
    with torch.no_grad():
        fx, fr = features(x, net).double(), features(ref, net).double()
    mx, mr = fx.mean(0), fr.mean(0)
    Sx, Sr = torch.cov(fx.T), torch.cov(fr.T)
    r = _sqrtm_psd(Sr)
    return float((mx - mr).pow(2).sum() + torch.trace(Sx + Sr - 2 * _sqrtm_psd(r @ Sx @ r)))


def scores(x: torch.Tensor, truth: torch.Tensor, net=None) -> dict:
    """{'psnr', 'ssim', 'perceptual'}: means over the batch (x clamped to [-1, 1]).
    x, truth: (B, 1, H, W)."""
    from ...metrics import psnr, ssim
    x = x.clamp(-1, 1)
    return {"psnr": psnr(x, truth).mean().item(), "ssim": ssim(x, truth).mean().item(),
            "perceptual": perceptual_distance(x, truth, net).mean().item()}
