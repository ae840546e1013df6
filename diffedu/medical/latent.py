"""Latent diffusion on head phantoms (Rombach et al. 2022, "LDM"; survey section 5.2).

Scope: the pieces ReSample needs, small enough for a CPU.
    latent_scale(autoencoder, x)     LDM's scale factor: 1 / std of the latents of x, so the prior
                                     sees latents of unit variance (the noise schedule assumes it)
    LatentDiffusion                  an autoencoder (diffedu.nets.autoencoder, KL-regularised), that
                                     scale, and a prior Denoiser over the scaled latents; encode,
                                     decode, sample
    load_latent_diffusion(...)       the shipped pair medical/latent_ae32 + medical/latent_prior32
    latent_denoiser(...)             its prior: a Denoiser over latents z: (B, c, h, w)

Where the denoiser contract ends. `latent_denoiser()` is an ordinary Denoiser: D(z_t, t) =
E[z_0 | z_t] for scaled latents z (B, 4, 8, 8) of 32 x 32 images, so every sampler of diffedu
runs on it unchanged. The image is not a state of the sampler: it appears only when a latent
is decoded, x = decoder(z / scale). decoder(E[z_0 | z_t]) is NOT E[x_0 | z_t] (the decoder is
nonlinear), which is why latent posterior samplers (ReSample) differentiate through the decoder
and why a latent x0-estimate can look sharper than a pixel Tweedie mean.

Notation: x (B, 1, H, W) an image in [-1, 1]; z (B, c, H/f, W/f) a scaled latent, f the
autoencoder's downsampling factor (4), c its latent channels (4); s the scale factor.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .._validate import check_int, check_real, check_tensor
from ..denoiser import Denoiser

__all__ = ["latent_scale", "LatentDiffusion", "load_latent_diffusion", "latent_denoiser", "AE_NAME", "PRIOR_NAME"]

AE_NAME, PRIOR_NAME = "medical/latent_ae32", "medical/latent_prior32"


def latent_scale(autoencoder, x: torch.Tensor, batch: int = 256) -> float:
    """s = 1 / std(z) over the latent means z of the images x: (N, C, H, W) (LDM, Sec. 4.3.2 and
    App. G: "we rescale the latents ... to unit standard deviation")."""
    check_tensor("x", x, ndim=4, nonempty=True, finite=True)
    with torch.no_grad():
        z = torch.cat([autoencoder.encode_latent(x[i:i + batch]) for i in range(0, len(x), batch)])
    return float(1.0 / z.std())


@dataclass
class LatentDiffusion:
    """An autoencoder, the scale s of its latents and a prior over the scaled latents.

    encode(x: (B, C, H, W)) -> z = s * mean of q(z | x): (B, c, H/f, W/f)
    decode(z) -> x = decoder(z / s): (B, C, H, W); differentiable (ReSample needs its gradient)
    sample(n, steps) -> images (n, C, H, W): DDIM in latent space, then decode
    prior: the Denoiser over scaled latents (contract: module doc); latent_shape (c, h, w).
    """
    autoencoder: torch.nn.Module
    scale: float
    prior: Denoiser
    latent_shape: tuple

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * self.autoencoder.encode_latent(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        check_tensor("z", z, ndim=4)
        if tuple(z.shape[1:]) != tuple(self.latent_shape):
            raise ValueError(f"z must have shape (B, {', '.join(map(str, self.latent_shape))}), got {tuple(z.shape)}")
        return self.autoencoder.decode(z / self.scale)

    def sample(self, n: int, steps: int = 50, eta: float = 0.0, generator: torch.Generator | None = None):
        """n images (n, C, H, W): DDIM (eta) with `steps` steps on the latent prior, then decode."""
        from ..samplers import ddim
        n = check_int("n", n, lo=1)
        z_T = torch.randn((n, *self.latent_shape), generator=generator)
        with torch.no_grad():
            z0 = ddim(self.prior, z_T, self.prior.schedule, steps, eta=eta, generator=generator)
            return self.decode(z0).clamp(-1, 1)


def load_latent_diffusion(ae: str = AE_NAME, prior: str = PRIOR_NAME, device=None) -> LatentDiffusion:
    """The shipped latent diffusion model: autoencoder checkpoint `ae`, prior checkpoint `prior`
    (its manifest holds the scale s and the latent shape)."""
    from ..train.checkpoints import pretrained, pretrained_denoiser
    autoencoder = pretrained(ae, device).requires_grad_(False)
    D = pretrained_denoiser(prior, device, clip=None)        # latents are not confined to [-1, 1]
    scale = check_real("the prior's latent_scale", D.manifest.get("latent_scale"), lo=0, lo_open=True)
    shape = tuple(D.manifest.get("latent_shape", ()))
    if len(shape) != 3:
        raise ValueError(f"{prior}: the manifest must record latent_shape [c, h, w], got {shape}")
    return LatentDiffusion(autoencoder, scale, D, shape)


def latent_denoiser(ae: str = AE_NAME, prior: str = PRIOR_NAME, device=None) -> Denoiser:
    """The latent prior of the shipped latent diffusion model: a Denoiser over scaled latents
    z: (B, c, h, w) (module doc); `.ldm` is the whole LatentDiffusion (encode / decode)."""
    ldm = load_latent_diffusion(ae, prior, device)
    ldm.prior.ldm = ldm
    return ldm.prior
