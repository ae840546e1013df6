"""Cross-modality translation (survey section 5.2): from a CT-like image to an MR-like one.

Scope: one synthetic, paired data set and the two ways of learning the map.
    paired_modalities(n, size, seed)   a CT-like and an MR-like rendering of each phantom of
                                       `diffedu.data.phantoms` (the same anatomy, other physics)
    ImageConditionedUNet               a U-Net denoiser of the MR image whose input is [x_t, CT]
                                       concatenated along channels (the condition as channels)
    regression_unet                    the same U-Net trained once with the MSE loss (no noise)
    translate / regress                samples of p(MR | CT), the regression's single answer
    calibration(samples, truth)        accuracy of the mean and of single samples, and whether the
                                       samples' spread is where the errors are (correlation, coverage)
    denoiser_gain / gaussian_gain      how much of a change of x_t a denoiser passes to x0_hat, measured
                                       and for Gaussian pixel noise in closed form (the collapse test)

The renderings. Each phantom is split into its tissues (diffedu.data.phantoms' geometry):
background, skull ring, brain, the inner structures' deviation d from the brain value, and the
lesion. CT-like: the phantom's attenuation (skull brightest) plus Gaussian noise (std 0.02).
MR-like: another look-up of the same tissues -- skull dark (bone gives little MR signal: a
contrast inversion), brain mid-grey, inner structures inverted (brain value - 1.2 d), and the
lesion bright or dark at random (a tissue property the CT cannot show: each lesion's sign is a
coin flip independent of the CT) -- with Rician noise (the magnitude of complex Gaussian noise,
std 0.03 per channel), the noise of magnitude MR images. So p(MR | CT) is genuinely spread out
at lesions and in the noise, and sharp elsewhere: a conditional diffusion model should put its
samples' spread there; a regression network answers the mean (a grey lesion).

The denoiser contract holds: `to_denoiser(model, schedule, cond=ct)` binds the CT image, and
D(x_t, t) = E[MR | x_t, CT] is an ordinary Denoiser over MR images (B, 1, H, W).

Notation: B batch, S samples per condition, H x W image size; images in [-1, 1].
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .._validate import check_int, check_positive_int, check_real, check_tensor
from ..nets.unet import UNet

__all__ = ["PairedModalities", "paired_modalities", "ImageConditionedUNet", "regression_unet", "translate",
           "regress", "calibration", "denoiser_gain", "gaussian_gain", "CT_NOISE", "MR_NOISE"]

CT_NOISE = 0.02          # std of the CT-like image's Gaussian noise (attenuation units, 0..1)
MR_NOISE = 0.03          # std per channel of the complex Gaussian behind the MR-like Rician noise
MR_LEVELS = {"skull": 0.15, "brain": 0.55, "inner": -1.2, "lesion": 0.3}   # MR intensities (0..1)


def _tissues(ph):
    """Tissue maps of a `Phantoms` (N, 1, H, W) each: skull, brain, inner deviation d, lesion, and the
    CT attenuation (0..1)."""
    att, healthy = (ph.images + 1) / 2, (ph.healthy + 1) / 2
    brain = ph.brain.float()
    skull = (~ph.brain & (att > 0.5)).float()              # the ring of attenuation 1.0 outside the brain
    d = (healthy - 0.3) * brain                             # inner structures' deviation from the brain's 0.3
    return skull, brain, d, ph.masks.float(), att


def _rician(m: torch.Tensor, sigma: float, g: torch.Generator) -> torch.Tensor:
    """|m + sigma (n1 + i n2)|, n1, n2 ~ N(0, 1): the noise of a magnitude MR image."""
    n1, n2 = torch.randn(m.shape, generator=g), torch.randn(m.shape, generator=g)
    return ((m + sigma * n1) ** 2 + (sigma * n2) ** 2).sqrt()


@dataclass(frozen=True)
class PairedModalities:
    """Output of `paired_modalities`. All images (N, 1, H, W) in [-1, 1]; lesion (N, 1, H, W) bool;
    lesion_sign (N,) +1 (bright in MR) or -1 (dark), 0 without a lesion."""
    ct: torch.Tensor
    mr: torch.Tensor
    ct_clean: torch.Tensor
    mr_clean: torch.Tensor
    lesion: torch.Tensor
    lesion_sign: torch.Tensor
    brain: torch.Tensor

    def __len__(self):
        return self.ct.shape[0]


def paired_modalities(n: int, size: int = 32, seed: int = 0, ct_noise: float = CT_NOISE,
                      mr_noise: float = MR_NOISE) -> PairedModalities:
    """A CT-like and an MR-like rendering of each of `n` phantoms `diffedu.data.phantoms(n, size,
    seed)` (module doc). Returns a PairedModalities of (n, 1, size, size) images in [-1, 1]; the
    noise and the lesions' MR signs come from `seed` too, so one seed gives one data set."""
    from ..data import phantoms
    check_positive_int("n", n)
    ct_noise = check_real("ct_noise", ct_noise, lo=0)
    mr_noise = check_real("mr_noise", mr_noise, lo=0)
    ph = phantoms(n, size=size, seed=seed)
    skull, brain, d, lesion, att = _tissues(ph)
    g = torch.Generator().manual_seed(10_000 + seed)
    sign = torch.where(torch.rand(n, generator=g) < 0.5, 1.0, -1.0) * ph.has_lesion.float()   # (N,)
    L = MR_LEVELS
    mr = (L["skull"] * skull + (L["brain"] + L["inner"] * d) * brain
          + L["lesion"] * sign[:, None, None, None] * lesion).clamp(0, 1)
    ct_noisy = att + ct_noise * torch.randn(att.shape, generator=g)
    mr_noisy = _rician(mr, mr_noise, g)
    to_img = lambda v: (2 * v.clamp(0, 1) - 1).float().contiguous()    # noqa: E731
    return PairedModalities(to_img(ct_noisy), to_img(mr_noisy), to_img(att), to_img(mr), ph.masks.clone(),
                            sign, ph.brain.clone())


class ImageConditionedUNet(UNet):
    """A U-Net denoiser conditioned on an image by channel concatenation (SR3, Palette).

    x: (B, C, H, W) the noisy target x_t; t: (B,) integer steps; cond: (B, C_cond, H, W) the
    conditioning image (required). Returns (B, C, H, W), the quantity named by `prediction`.
    It is `UNet(in_channels=C + C_cond, out_channels=C)` run on torch.cat([x, cond], dim=1); class
    labels are not used.
    """

    def __init__(self, channels: int = 1, cond_channels: int = 1, base_channels: int = 8,
                 channel_mult=(1, 2, 2), num_res_blocks: int = 1, attention_levels=(2,), num_heads: int = 4,
                 dropout: float = 0.0, prediction: str = "eps"):
        check_positive_int("channels", channels)
        check_positive_int("cond_channels", cond_channels)
        super().__init__(in_channels=channels + cond_channels, out_channels=channels, base_channels=base_channels,
                         channel_mult=channel_mult, num_res_blocks=num_res_blocks, attention_levels=attention_levels,
                         num_heads=num_heads, dropout=dropout, prediction=prediction)
        self.channels, self.cond_channels = channels, cond_channels

    def forward(self, x: torch.Tensor, t, cond=None) -> torch.Tensor:
        check_tensor("x", x, ndim=4)
        if cond is None:
            raise ValueError("cond is required: the conditioning image (B, C_cond, H, W); bind it with "
                             "dd.to_denoiser(model, schedule, cond=image)")
        check_tensor("cond", cond, ndim=4)
        want = (len(x), self.cond_channels, *x.shape[2:])
        if tuple(cond.shape) != want:
            raise ValueError(f"cond must have shape {want} (one image per row of x, {self.cond_channels} "
                             f"channel(s), x's size), got {tuple(cond.shape)}")
        if x.shape[1] != self.channels:
            raise ValueError(f"x has {x.shape[1]} channels, this model expects channels={self.channels}")
        return super().forward(torch.cat([x, cond.to(x.dtype)], dim=1), t)


def regression_unet(base_channels: int = 8, **kwargs) -> UNet:
    """The regression baseline: a UNet(in_channels=1) of the same layout as the conditional model
    (only its first convolution has one input channel fewer), called at t = 0 by `regress`."""
    return UNet(**{**dict(in_channels=1, base_channels=base_channels, channel_mult=(1, 2, 2), num_res_blocks=1),
                   **kwargs})


def regress(model, ct: torch.Tensor) -> torch.Tensor:
    """The regression network's MR estimate for ct: (B, 1, H, W) -> (B, 1, H, W)."""
    check_tensor("ct", ct, ndim=4, finite=True)
    with torch.no_grad():
        return model(ct, torch.zeros(len(ct), dtype=torch.long, device=ct.device))


def translate(model, ct: torch.Tensor, schedule, samples: int = 8, steps: int = 25, eta: float = 1.0,
              generator: torch.Generator | None = None) -> torch.Tensor:
    """`samples` draws of p(MR | CT) per CT image by DDIM (eta) with `steps` steps of the image-
    conditioned model's denoiser. ct: (B, C_cond, H, W) -> (S, B, C, H, W)."""
    from ..denoiser import to_denoiser
    from ..samplers import ddim
    check_tensor("ct", ct, ndim=4, finite=True)
    samples = check_int("samples", samples, lo=1)
    B = len(ct)
    cond = ct.repeat(samples, 1, 1, 1)                                  # (S B, C_cond, H, W)
    D = to_denoiser(model, schedule, cond=cond, clip=1.0)
    x_T = torch.randn((samples * B, model.channels, *ct.shape[2:]), generator=generator)
    with torch.no_grad():
        x0 = ddim(D, x_T, schedule, steps, eta=eta, generator=generator)
    return x0.reshape(samples, B, *x0.shape[1:])


def gaussian_gain(s: float, alpha_bar: float) -> float:
    """d E[x0 | x_t] / d x_t for a pixel x0 = m + s n, n ~ N(0, 1), m known (here: given the condition),
    and x_t = sqrt(ab) x0 + sqrt(1 - ab) eps: the posterior mean is m + sqrt(ab) s^2 (x_t - sqrt(ab) m) /
    (ab s^2 + 1 - ab), so the gain is sqrt(ab) s^2 / (ab s^2 + 1 - ab) (Tweedie for a Gaussian)."""
    s = check_real("s", s, lo=0)
    ab = check_real("alpha_bar", alpha_bar, lo=0, lo_open=True, hi=1)
    return ab ** 0.5 * s ** 2 / (ab * s ** 2 + 1 - ab)


def denoiser_gain(denoiser, x0: torch.Tensor, t: int, region: torch.Tensor, generator: torch.Generator | None = None,
                  pairs: int = 2) -> float:
    """The least-squares slope of the change of D(x_t, t) against the change of x_t between two noise
    draws eps_a, eps_b of the same x0: x0: (B, C, H, W), region: (B, C, H, W) bool (the pixels to
    average over). An x0-predictor that ignores x_t (a collapsed conditional model) has gain 0; the
    exact denoiser has `gaussian_gain` where the data's pixel noise is the only uncertainty."""
    from ..denoiser import as_denoiser
    D = as_denoiser(denoiser)
    check_tensor("x0", x0, ndim=4, finite=True)
    if not isinstance(region, torch.Tensor) or region.dtype != torch.bool or region.shape != x0.shape:
        raise ValueError(f"region must be a bool tensor of x0's shape {tuple(x0.shape)}")
    t, pairs = check_int("t", t, lo=0), check_positive_int("pairs", pairs)
    ab = float(D.schedule.alpha_bar[t])
    num = den = 0.0
    with torch.no_grad():
        for _ in range(pairs):
            ea, eb = (torch.randn(x0.shape, generator=generator) for _ in range(2))
            xa, xb = ab ** 0.5 * x0 + (1 - ab) ** 0.5 * ea, ab ** 0.5 * x0 + (1 - ab) ** 0.5 * eb
            dx, dd = (xa - xb)[region], (D(xa, t) - D(xb, t))[region]
            num, den = num + float((dx * dd).sum()), den + float((dx * dx).sum())
    return num / den


def calibration(samples: torch.Tensor, truth: torch.Tensor, level: float = 0.9) -> dict:
    """Accuracy and calibrated diversity of samples: (S, B, C, H, W) of p(x | condition) against
    the truth: (B, C, H, W).

    Returns a dict of floats:
      psnr_mean, ssim_mean       of the per-pixel mean of the samples
      psnr_single, ssim_single   of one sample, averaged over the S samples
      std                        the mean per-pixel standard deviation of the samples
      corr_std_error             Pearson correlation, over pixels, of the per-pixel std with the
                                 absolute error of the mean (does the spread sit where the errors are?)
      coverage                   fraction of truth pixels inside the Gaussian prediction interval
                                 mean +- q std sqrt(1 + 1/S), q the two-sided Student-t quantile of
                                 `level` with S - 1 degrees of freedom: exactly `level` when the truth
                                 and the S samples are independent draws of one Gaussian (calibrated)
    """
    from scipy.stats import t as student_t
    from ..metrics import psnr, ssim
    check_tensor("samples", samples, ndim=5, finite=True)
    check_tensor("truth", truth, ndim=4, finite=True)
    if tuple(samples.shape[1:]) != tuple(truth.shape):
        raise ValueError(f"samples must have shape (S, *truth.shape) = (S, {', '.join(map(str, truth.shape))}), "
                         f"got {tuple(samples.shape)}")
    if len(samples) < 2:
        raise ValueError(f"samples must hold at least 2 samples per condition to have a spread, got {len(samples)}")
    level = check_real("level", level, lo=0, lo_open=True, hi=1)
    if level >= 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    mean, std = samples.mean(0), samples.std(0)
    err = (mean - truth).abs()
    S = len(samples)
    half = float(student_t.ppf(0.5 + level / 2, S - 1)) * (1 + 1 / S) ** 0.5 * std    # the interval's half-width
    s, e = std.flatten() - std.mean(), err.flatten() - err.mean()
    corr = float((s * e).sum() / (s.norm() * e.norm()).clamp_min(1e-12))
    single = [(float(psnr(x, truth).mean()), float(ssim(x, truth).mean())) for x in samples]
    return {"psnr_mean": float(psnr(mean, truth).mean()), "ssim_mean": float(ssim(mean, truth).mean()),
            "psnr_single": sum(p for p, _ in single) / len(single),
            "ssim_single": sum(s for _, s in single) / len(single),
            "std": float(std.mean()), "corr_std_error": corr,
            "coverage": float((err <= half).float().mean())}
