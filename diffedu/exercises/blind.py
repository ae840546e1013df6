"""Exercises of chapter 10 (blind and real-world restoration), each graded on fixed random inputs.

    bird_sphere_projection   BIRD's projection of the initial noise back to the sphere of radius sqrt(D)
    region_adaptive_weight   DiffBIR's region weight 1 - tanh(|grad z| / s) from Sobel gradients
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from . import Exercise


def _rand(*shape, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(*shape, generator=g, dtype=torch.float64)


# -- reference solutions (kept short: they are what `solution` prints) --------------------
def bird_sphere_projection(z):
    """Each row of z (B, ...) rescaled to norm sqrt(D), D = entries per row: z sqrt(D) / ||z||."""
    flat = z.reshape(len(z), -1)
    D = flat.shape[1]
    return z * (D ** 0.5 / flat.norm(dim=1)).reshape((-1,) + (1,) * (z.ndim - 1))


def region_adaptive_weight(z, scale):
    """W = 1 - tanh(|grad z| / scale), grad by Sobel filters / 8 with replicate padding. z: (B, 1, H, W)."""
    sobel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=z.dtype) / 8
    zp = F.pad(z, (1, 1, 1, 1), mode="replicate")
    gx, gy = F.conv2d(zp, sobel[None, None]), F.conv2d(zp, sobel.T[None, None])
    return 1 - torch.tanh((gx ** 2 + gy ** 2).sqrt() / scale)


EXERCISES = [
    Exercise("bird_sphere_projection", "10",
             "project BIRD's initial noise z (B, C, H, W) back to the sphere of radius sqrt(D), per image",
             bird_sphere_projection,
             lambda: [{"z": _rand(*shape, seed=k, scale=s)} for k, (shape, s) in
                      enumerate([((3, 1, 4, 4), 1.0), ((2, 2, 3, 5), 7.0), ((4, 1, 16, 16), 0.1)])],
             "D is the number of entries of ONE image (C H W), not of the batch; the norm is per image, "
             "so flatten each row before taking it (BIRD eq. 8)."),
    Exercise("region_adaptive_weight", "10",
             "write DiffBIR's region weight 1 - tanh(edge magnitude / scale) with Sobel gradients (divided by 8)",
             region_adaptive_weight,
             lambda: [{"z": _rand(2, 1, 8, 8, seed=k).tanh(), "scale": s} for k, s in enumerate([0.25, 0.1, 1.0])],
             "Sobel x = [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]] / 8 and its transpose; pad by replicating the border "
             "(F.pad mode='replicate') so the output keeps the size; the magnitude is sqrt(gx^2 + gy^2)."),
]


def _self_check():
    """The references agree with the package (the exercises cannot drift from diffedu.inverse.blind)."""
    from ..inverse.blind import bird, diffbir
    z = _rand(3, 1, 6, 6, seed=3, scale=4.0)
    torch.testing.assert_close(bird_sphere_projection(z), bird.project_sphere(z))
    torch.testing.assert_close(region_adaptive_weight(z.tanh(), 0.3), diffbir.region_weight(z.tanh(), 0.3))
