"""StableSR-style conditioning (Wang, Yue, Zhou, Chan & Loy, IJCV 2024, "Exploiting diffusion
prior for real-world image super-resolution"): a frozen diffusion prior steered by a small
time-aware encoder of the degraded image, whose features modulate the prior's blocks.

Scope: diffedu's digits U-Net (nets/unet.py) stays frozen and unedited; forward hooks on its
blocks apply the modulation, so `nets/unet.py` knows nothing of it. Pieces:
    TimeAwareEncoder   y: (B, C, h, w), t -> one (scale, shift) pair per U-Net block
    modulated(unet, encoder, y, w)   a context manager: inside it, unet(x_t, t, cond) is modulated
    ModulatedUNet      a module whose forward runs the U-Net inside `modulated` (for to_denoiser)
    stablesr(y, prior, encoder, w)   sampling with the modulated prior (DDPM)

Notation (StableSR, section 3.1, "time-aware guidance", and the SFT layers it uses):
    F_b                 the output of U-Net block b (B, C_b, H_b, W_b)
    (gamma_b, beta_b)   = head_b(E(up(y), t))  the encoder's features at block b's resolution,
                        through a 1x1 convolution that starts at zero (SPADE / SFT)
    F_b <- F_b (1 + w gamma_b) + w beta_b      (paper eq. 2, with the fidelity-realism weight w)
The encoder is time-aware: its ResBlocks read an embedding of t (the paper's point: the
guidance must change as the sample gets less noisy). Its heads start at zero, so at
initialisation, and at w = 0, the prior is exactly the unmodulated prior (tested).

The weight w. StableSR's controllable feature wrapping (CFW, its section 3.2) mixes encoder
features into its VAE decoder with a weight w: w = 0 keeps the diffusion output (realism),
w = 1 leans on the degraded input (fidelity). diffedu's prior is a pixel model with no decoder,
so w scales the encoder path itself (the equation above): w = 0 samples the unconditional
prior (realistic digits that ignore y), w = 1 the modulation it was trained with, w > 1
exaggerates it. Chapter 10 measures what that does to distortion and perceptual distance.
Where the contract ends: the encoder is not a denoiser; `ModulatedUNet` is a network
model(x_t, t, cond) that `dd.to_denoiser` turns into one.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn as nn

from ..._validate import check_int, check_real, check_tensor
from ...nets.embeddings import as_timesteps, timestep_embedding
from ...nets.unet import Downsample, ResBlock, UNet
from .diffbir import bicubic_up

__all__ = ["ENCODER_KW", "block_specs", "TimeAwareEncoder", "modulated", "ModulatedUNet", "stablesr"]

ENCODER_KW = dict(base_channels=16, channel_mult=[1, 2, 2], num_res_blocks=1, width=16, factor=2)


def block_specs(base_channels: int, channel_mult, num_res_blocks: int):
    """[(name, channels, level)] of every block of a `nets.unet.UNet` with that layout, in
    forward order ("down.k", "mid", "up.k"); level l is the resolution H / 2**l of its output.
    The same bookkeeping as UNet.__init__ (tested against UNet.features)."""
    mult = list(channel_mult)
    out, k = [], 0
    for level, m in enumerate(mult):
        for _ in range(num_res_blocks):
            out.append((f"down.{k}", base_channels * m, level))
            k += 1
        if level != len(mult) - 1:
            out.append((f"down.{k}", base_channels * m, level + 1))
            k += 1
    out.append(("mid", base_channels * mult[-1], len(mult) - 1))
    k = 0
    for level in reversed(range(len(mult))):
        for i in range(num_res_blocks + 1):
            up = level != 0 and i == num_res_blocks
            out.append((f"up.{k}", base_channels * mult[level], level - 1 if up else level))
            k += 1
    return out


class TimeAwareEncoder(nn.Module):
    """E(y, t): features of the degraded image y: (B, C, h, w) (upsampled bicubically by
    `factor` to the prior's size H x W) at each resolution level of the prior's U-Net, read by
    zero-initialised 1x1 heads into one (gamma, beta) pair per block (`block_specs` of the
    prior's base_channels, channel_mult, num_res_blocks). forward(y, t) -> {name: (gamma,
    beta)}, each (B, C_b, H_b, W_b)."""

    def __init__(self, base_channels: int = 16, channel_mult=(1, 2, 2), num_res_blocks: int = 1,
                 width: int = 16, factor: int = 2, in_channels: int = 1):
        super().__init__()
        self.width, self.factor = check_int("width", width, lo=1), check_int("factor", factor, lo=1, hi=4)
        self.specs = block_specs(base_channels, channel_mult, num_res_blocks)
        levels = len(list(channel_mult))
        self.time_embed = nn.Sequential(nn.Linear(width, 4 * width), nn.SiLU(), nn.Linear(4 * width, 4 * width))
        self.inp = nn.Conv2d(in_channels, width, 3, padding=1)
        self.levels = nn.ModuleList([ResBlock(width, width, 4 * width, 0.0, 4) for _ in range(levels)])
        self.downs = nn.ModuleList([Downsample(width) for _ in range(levels - 1)])
        self.heads = nn.ModuleDict({name.replace(".", "_"): nn.Conv2d(width, 2 * ch, 1) for name, ch, _ in self.specs})
        for head in self.heads.values():        # zero: the prior starts unmodulated (gamma = beta = 0)
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)

    def forward(self, y: torch.Tensor, t) -> dict:
        check_tensor("y", y, ndim=4)
        emb = self.time_embed(timestep_embedding(as_timesteps(t, len(y), y.device), self.width))
        h = self.inp(bicubic_up(y, self.factor))
        feats = []
        for level, block in enumerate(self.levels):
            h = block(h, emb)
            feats.append(h)
            if level < len(self.downs):
                h = self.downs[level](h)
        out = {}
        for name, ch, level in self.specs:
            g, b = self.heads[name.replace(".", "_")](feats[level]).chunk(2, dim=1)
            out[name] = (g, b)
        return out


def _blocks(unet: UNet) -> dict:
    return {**{f"down.{k}": b for k, b in enumerate(unet.down)}, "mid": unet.middle,
            **{f"up.{k}": b for k, b in enumerate(unet.up)}}


@contextmanager
def modulated(unet: UNet, encoder: TimeAwareEncoder, y: torch.Tensor, w: float = 1.0):
    """Inside the block, unet(x_t, t, cond) runs with every block's output F_b replaced by
    F_b (1 + w gamma_b) + w beta_b (module doc), (gamma, beta) = encoder(y, t) computed at each
    call from that call's t. y: (b, C, h, w); x_t may hold k b rows (y tiles). Hooks are
    removed on exit, also after an error."""
    if not isinstance(unet, UNet):
        raise TypeError(f"unet must be a diffedu UNet, got {type(unet).__name__}")
    check_tensor("y", y, ndim=4)
    w = check_real("w", w, lo=0)
    blocks = _blocks(unet)
    if {n for n, _, _ in encoder.specs} != set(blocks):
        raise ValueError("encoder was built for a U-Net of another layout (block_specs differ)")
    state = {}

    def pre(module, args, kwargs):
        x, t = args[0], args[1] if len(args) > 1 else kwargs["t"]
        reps = len(x) // len(y)
        if reps * len(y) != len(x):
            raise ValueError(f"x_t has {len(x)} rows, not a multiple of y's {len(y)}")
        state["mod"] = encoder(y.repeat(reps, 1, 1, 1), t)

    def post(name):
        def hook(module, args, out):
            g, b = state["mod"][name]
            return out * (1 + w * g) + w * b
        return hook

    handles = [unet.register_forward_pre_hook(pre, with_kwargs=True)]
    if w > 0:
        handles += [blk.register_forward_hook(post(name)) for name, blk in blocks.items()]
    try:
        yield unet
    finally:
        for h in handles:
            h.remove()
        state.clear()


class ModulatedUNet(nn.Module):
    """model(x_t, t, cond=None): the frozen U-Net run inside `modulated(unet, encoder, y, w)`,
    so that `dd.to_denoiser(ModulatedUNet(...), schedule)` is a denoiser. y: (b, C, h, w)."""

    def __init__(self, unet: UNet, encoder: TimeAwareEncoder, y: torch.Tensor, w: float = 1.0):
        super().__init__()
        self.unet, self.encoder, self.w = unet, encoder, check_real("w", w, lo=0)
        self.register_buffer("y", check_tensor("y", y, ndim=4), persistent=False)
        self.prediction = unet.prediction

    def forward(self, x, t, cond=None):
        with modulated(self.unet, self.encoder, self.y, self.w) as net:
            return net(x, t, cond)


def stablesr(y: torch.Tensor, prior, encoder: TimeAwareEncoder, *, w: float = 1.0, steps: int = 25,
             null_label: int = 10, generator: torch.Generator | None = None) -> torch.Tensor:
    """Restore y: (B, C, h, w) by DDPM sampling (`steps` entries) of the frozen prior (a
    `pretrained_denoiser`, here unet_digits, run unconditionally with `null_label`) modulated by
    `encoder` with weight w >= 0 (module doc). Returns x: (B, C, factor h, factor w)."""
    from ...denoiser import to_denoiser
    from ...samplers import ddpm
    check_tensor("y", y, ndim=4, nonempty=True, finite=True)
    steps = check_int("steps", steps, lo=1)
    D = to_denoiser(ModulatedUNet(prior.model, encoder, y, w), prior.schedule,
                    cond=torch.full((len(y),), null_label), clip=1.0)
    B, C, h, wd = y.shape
    x_T = torch.randn((B, C, h * encoder.factor, wd * encoder.factor), generator=generator, dtype=y.dtype).to(y.device)
    with torch.no_grad():
        return ddpm(D, x_T, prior.schedule, steps, generator=generator)
