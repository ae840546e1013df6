"""A small convolutional autoencoder for latent diffusion (Rombach et al. 2022, "LDM").

Scope: encoder (B, C, H, W) -> latent z (B, c, H/f, W/f), f = 2 ** (len(channel_mult) - 1)
(f = 4 by default), and decoder back. With `kl=True` it is a VAE in the LDM style: the
encoder outputs the mean and log-variance of a diagonal Gaussian q(z | x), z is drawn by
the reparameterisation z = mean + exp(logvar / 2) * eps, and the loss adds a small
beta * KL(q(z | x) || N(0, I)) to the reconstruction error, which keeps the latent space
smooth and of bounded scale for the diffusion model that lives in it.

Notation: B batch, C image channels, c latent channels, f the downsampling factor.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .._validate import check_model_input, check_nonneg, check_positive_int, check_tensor
from .unet import Downsample, ResBlock, Upsample, num_groups


def kl_divergence(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) || N(0, I)) per sample, summed over the latent: (B,).
    mean, logvar: (B, c, h, w)."""
    return 0.5 * (mean ** 2 + logvar.exp() - 1.0 - logvar).flatten(1).sum(dim=1)


class Autoencoder(nn.Module):
    """Convolutional (variational) autoencoder.

    encode(x): x (B, C, H, W) -> z (B, c, H/f, W/f), or (mean, logvar) when kl=True.
    decode(z): (B, c, H/f, W/f) -> (B, C, H, W).
    forward(x): a dict with "x_rec" (B, C, H, W), "z", and with kl also "mean", "logvar",
      "kl" (B,); the VAE's z is a sample in training mode and the mean in eval mode.
    """

    def __init__(self, in_channels: int = 1, latent_channels: int = 4, base_channels: int = 32,
                 channel_mult=(1, 2, 2), num_res_blocks: int = 1, kl: bool = False):
        super().__init__()
        for name, v in [("in_channels", in_channels), ("latent_channels", latent_channels),
                        ("base_channels", base_channels), ("num_res_blocks", num_res_blocks)]:
            check_positive_int(name, v)
        self.in_channels, self.latent_channels, self.kl = in_channels, latent_channels, kl
        self.channel_mult = tuple(channel_mult)
        chs = [base_channels * m for m in self.channel_mult]

        # Encoder: conv, then per level ResBlocks (no timestep) and a downsample between levels.
        enc, ch = [nn.Conv2d(in_channels, chs[0], 3, padding=1)], chs[0]
        for level, out_ch in enumerate(chs):
            for _ in range(num_res_blocks):
                enc.append(ResBlock(ch, out_ch))
                ch = out_ch
            if level != len(chs) - 1:
                enc.append(Downsample(ch))
        # The head outputs mean and logvar (2c channels) for the VAE, z (c channels) otherwise.
        enc += [nn.GroupNorm(num_groups(ch), ch), nn.SiLU(),
                nn.Conv2d(ch, (2 if kl else 1) * latent_channels, 3, padding=1)]
        self.encoder = nn.Sequential(*enc)

        # Decoder: the mirror image.
        dec = [nn.Conv2d(latent_channels, ch, 3, padding=1)]
        for level, out_ch in reversed(list(enumerate(chs))):
            for _ in range(num_res_blocks):
                dec.append(ResBlock(ch, out_ch))
                ch = out_ch
            if level != 0:
                dec.append(Upsample(ch))
        dec += [nn.GroupNorm(num_groups(ch), ch), nn.SiLU(), nn.Conv2d(ch, in_channels, 3, padding=1)]
        self.decoder = nn.Sequential(*dec)

    @property
    def downsample_factor(self) -> int:
        return 2 ** (len(self.channel_mult) - 1)

    def _check_x(self, x):
        check_tensor("x", x, ndim=4)
        check_model_input("x", x, self)
        if x.shape[1] != self.in_channels:
            raise ValueError(f"x has {x.shape[1]} channels, this autoencoder expects in_channels={self.in_channels}")
        f = self.downsample_factor
        if x.shape[2] % f or x.shape[3] % f:
            raise ValueError(f"image size {x.shape[2]}x{x.shape[3]} must be divisible by {f}")

    def encode(self, x: torch.Tensor):
        """x: (B, C, H, W) -> z (B, c, H/f, W/f); with kl=True -> (mean, logvar), each that shape."""
        self._check_x(x)
        h = self.encoder(x)
        if not self.kl:
            return h
        mean, logvar = h.chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)        # keep exp(logvar) finite

    @staticmethod
    def sample(mean: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None):
        """Reparameterised draw z = mean + exp(logvar / 2) * eps, eps ~ N(0, I)."""
        eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return mean + torch.exp(0.5 * logvar) * eps

    def encode_latent(self, x: torch.Tensor, sample: bool = False,
                      generator: torch.Generator | None = None) -> torch.Tensor:
        """x -> z (B, c, H/f, W/f) for latent diffusion: the code itself, or for the VAE its
        mean (or a sample when `sample`)."""
        if not self.kl:
            return self.encode(x)
        mean, logvar = self.encode(x)
        return self.sample(mean, logvar, generator) if sample else mean

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z: (B, c, h, w) -> (B, C, f h, f w)."""
        check_tensor("z", z, ndim=4)
        check_model_input("z", z, self)
        if z.shape[1] != self.latent_channels:
            raise ValueError(f"z has {z.shape[1]} channels, this autoencoder has latent_channels={self.latent_channels}")
        return self.decoder(z)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> dict:
        if not self.kl:
            z = self.encode(x)
            return {"x_rec": self.decode(z), "z": z}
        mean, logvar = self.encode(x)
        z = self.sample(mean, logvar, generator) if self.training else mean
        return {"x_rec": self.decode(z), "z": z, "mean": mean, "logvar": logvar,
                "kl": kl_divergence(mean, logvar)}

    def loss(self, x: torch.Tensor, beta: float = 1e-4, generator: torch.Generator | None = None):
        """Mean squared reconstruction error (+ beta * mean KL per pixel for the VAE): a scalar.
        x must be finite: one NaN image would make the batch's loss NaN."""
        check_tensor("x", x, ndim=4, nonempty=True, finite=True)
        beta = check_nonneg("beta", beta)
        out = self(x, generator)
        loss = F.mse_loss(out["x_rec"], x)
        if self.kl:
            loss = loss + beta * out["kl"].mean() / x[0].numel()
        return loss


def autoencoder_tiny(**kwargs) -> Autoencoder:
    """f = 4, 4 latent channels, base 16 channels."""
    return Autoencoder(**{**dict(base_channels=16), **kwargs})


def autoencoder_small(**kwargs) -> Autoencoder:
    """f = 4, 4 latent channels, base 32 channels."""
    return Autoencoder(**{**dict(base_channels=32), **kwargs})


AUTOENCODER_MODELS = {"autoencoder_tiny": autoencoder_tiny, "autoencoder_small": autoencoder_small}
