"""DiffBIR-style two-stage restoration (Lin et al., ECCV 2024, "DiffBIR: towards blind image
restoration with generative diffusion prior"), on diffedu's small digits prior.

Scope: stage 1 removes the degradation by regression (a small network trained with MSE on
pairs from `degrade.degrade`: its output is the blurry, "average" answer); stage 2 generates
the details with the frozen diffusion prior, conditioned on the stage-1 output through a
ControlNet (`nets/control.py`, shared with the control chapter: a trainable copy of the
U-Net's encoder joined by zero-initialised convolutions, identity at initialisation), and
pulled towards the stage-1 output by region-adaptive guidance.

    Stage1Restorer       y: (B, C, h, w) -> bicubic x factor + a UNet residual: (B, C, H, W)
    edge_magnitude(z)    Sobel gradient magnitude |grad z|: (B, C, H, W)
    region_weight(z, s)  W = 1 - tanh(|grad z| / s): 1 on flat regions, -> 0 on edges (paper sec. 3.3)
    region_guided(D, z, scale, weight)   the guided denoiser (diffedu contract)
    diffbir(y, ...)      the two stages, sampled with DDPM

Notation (DiffBIR, section 3.3, "restoration guidance"): z the stage-1 output, x0_hat the
prior's (ControlNet-conditioned) estimate at step t, W the region weight. The paper steps x_t
along the gradient of the weighted loss ||W (x0_hat - z)||^2 (through the decoder of its
latent model). In pixel space, with no decoder, one step of size `scale` on that loss taken
in x0_hat itself is
    x0_guided = x0_hat + scale W (z - x0_hat)              (scale in [0, 1])
so flat regions (W ~ 1) are pulled to the stage-1 output and edges (W ~ 0) stay free for the
generative prior. Written as a denoiser wrapper it stays inside the contract (eps follows).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..._validate import check_int, check_real, check_schedule, check_tensor
from ...denoiser import Denoiser, as_denoiser, t_batch
from ...nets.unet import UNet

__all__ = ["STAGE1_KW", "Stage1Restorer", "bicubic_up", "edge_magnitude", "region_weight", "RegionGuided",
           "region_guided", "controlled_prior", "diffbir"]

STAGE1_KW = dict(factor=2, base_channels=12)


def bicubic_up(y: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """Bicubic upsampling (B, C, h, w) -> (B, C, f h, f w) (the "bicubic" baseline)."""
    check_tensor("y", y, ndim=4)
    factor = check_int("factor", factor, lo=1, hi=4)
    return y if factor == 1 else F.interpolate(y, scale_factor=factor, mode="bicubic", align_corners=False)


class Stage1Restorer(nn.Module):
    """DiffBIR's stage 1: x_reg = up(y) + UNet(up(y), 0), up = bicubic x factor.
    y: (B, C, h, w) -> (B, C, factor h, factor w). The UNet's output conv starts at zero, so
    the untrained restorer is bicubic upsampling."""

    def __init__(self, factor: int = 2, base_channels: int = 12, in_channels: int = 1):
        super().__init__()
        self.factor = check_int("factor", factor, lo=1, hi=4)
        self.net = UNet(in_channels=in_channels, base_channels=base_channels, channel_mult=(1, 2, 2),
                        attention_levels=(), prediction="x0", max_groups=4)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        up = bicubic_up(y, self.factor)
        return up + self.net(up, torch.zeros(len(y), dtype=torch.long, device=y.device))


def edge_magnitude(z: torch.Tensor) -> torch.Tensor:
    """|grad z| by Sobel filters divided by 8 (so a ramp of slope 1 per pixel gives 1, and a unit
    step gives 1/2 on the pixels either side of it), replicate padding. z: (B, C, H, W) -> same."""
    check_tensor("z", z, ndim=4)
    sx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=z.dtype, device=z.device) / 8
    C = z.shape[1]
    kx, ky = sx.expand(C, 1, 3, 3), sx.T.expand(C, 1, 3, 3)
    zp = F.pad(z, (1, 1, 1, 1), mode="replicate")
    gx, gy = F.conv2d(zp, kx, groups=C), F.conv2d(zp, ky, groups=C)
    return (gx ** 2 + gy ** 2).sqrt()


def region_weight(z: torch.Tensor, scale: float = 0.25) -> torch.Tensor:
    """W = 1 - tanh(|grad z| / scale) in (0, 1]: 1 where z is flat, near 0 on strong edges.
    z: (B, C, H, W); scale > 0 (the edge magnitude at which W = 1 - tanh(1) = 0.24)."""
    scale = check_real("scale", scale, lo=0, lo_open=True)
    return 1 - torch.tanh(edge_magnitude(z) / scale)


class RegionGuided(Denoiser):
    """x0_eps(x, t) = (x0_hat + scale W (z - x0_hat), the matching eps), module doc.
    z, W: (B, C, H, W) (a batch of b tiles to k b rows)."""

    def __init__(self, denoiser: Denoiser, z: torch.Tensor, scale: float, weight: torch.Tensor):
        self.denoiser, self.z, self.scale, self.weight = denoiser, z, scale, weight
        self.schedule = denoiser.schedule

    def x0_eps(self, x, t, cond=None, alpha_bar=None):
        t = t_batch(t, x)
        x0 = self.denoiser.x0_eps(x, t, cond, alpha_bar)[0]
        reps = len(x) // len(self.z)
        z, W = self.z.repeat(reps, 1, 1, 1), self.weight.repeat(reps, 1, 1, 1)
        x0 = x0 + self.scale * W * (z - x0)
        ab = self._alpha_bar(t, x) if alpha_bar is None else alpha_bar
        return x0, (x - ab ** 0.5 * x0) / (1 - ab) ** 0.5


def region_guided(denoiser, z: torch.Tensor, scale: float = 0.5, edge_scale: float = 0.25, weight=None) -> RegionGuided:
    """The region-adaptively guided denoiser (module doc). denoiser: a Denoiser with a
    schedule; z: (B, C, H, W) the stage-1 output; scale in [0, 1]; weight: W (default
    region_weight(z, edge_scale)); pass torch.ones_like(z) for uniform guidance."""
    D = as_denoiser(denoiser)
    check_tensor("z", z, ndim=4, finite=True)
    scale = check_real("scale", scale, lo=0, hi=1)
    W = region_weight(z, edge_scale) if weight is None else check_tensor("weight", weight, ndim=4)
    if W.shape != z.shape:
        raise ValueError(f"weight must have z's shape {tuple(z.shape)}, got {tuple(W.shape)}")
    return RegionGuided(D, z, scale, W)


def controlled_prior(prior, controlnet, hint: torch.Tensor, null_label: int = 10):
    """The frozen prior steered by a ControlNet with `hint` (B, C, H, W) bound: a denoiser
    (contract) on the prior's schedule, unconditional (the null label), x0 clipped to [-1, 1]."""
    from ...denoiser import to_denoiser
    from ...nets.control import ControlledUNet
    model = ControlledUNet(prior.model, controlnet).eval().with_hint(hint)
    return to_denoiser(model, prior.schedule, cond=torch.full((len(hint),), null_label), clip=1.0)


def diffbir(y: torch.Tensor, prior, controlnet, stage1: nn.Module, *, steps: int = 25, scale: float = 0.5,
            edge_scale: float = 0.25, generator: torch.Generator | None = None, return_stage1: bool = False):
    """DiffBIR-style restoration of y: (B, C, h, w): z = stage1(y) (stage 1), then DDPM
    sampling (`steps` entries) of the ControlNet-conditioned prior guided towards z with the
    region weight (stage 2). prior: the digits denoiser (`pretrained_denoiser("unet_digits")`);
    controlnet: a trained `nets.control.ControlNet` of it. Returns x: (B, C, H, W) (and z)."""
    from ...samplers import ddpm
    check_tensor("y", y, ndim=4, nonempty=True, finite=True)
    check_schedule(prior.schedule)
    with torch.no_grad():
        z = stage1(y).clamp(-1, 1)                                                      # stage 1
        D = region_guided(controlled_prior(prior, controlnet, z), z, scale, edge_scale)  # stage 2
        x_T = torch.randn(z.shape, generator=generator, dtype=z.dtype).to(z.device)
        x = ddpm(D, x_T, prior.schedule, steps, generator=generator)
    return (x, z) if return_stage1 else x
