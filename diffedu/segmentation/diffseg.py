"""Segmentation by diffusion: the mask is generated, the image is the condition (chapter 12b,
survey sections 6.2 and 6.3).

Where the denoiser contract holds and where it ends. The mask, written as a real-valued code
x_0 in {-1, +1}^(K x H x W), is diffused as an image is, and the network is an ordinary
diffedu UNet whose input is [x_t, image] concatenated along channels: `ConcatConditioned`
turns it into `model(x_t, t, cond=image)`, so `dd.to_denoiser(..., cond=image)` gives a
Denoiser and every sampler of the book (DDIM, DDPM) segments. The contract ends at the
decoding: a code is turned back into a label map by argmax (one-hot) or by thresholding bits
(analog bits), which is not a denoiser's job and lives here.

Methods (notation: image y (B, 1, H, W); labels m (B, H, W) in {0..C-1}; code x_0 = enc(m)
(B, K, H, W); T schedule entries; D(x_t, t, y) the x0-predicting network):

  Wolleb et al. 2022 (survey reference [35], "implicit segmentation ensembles"):
    1. train: t ~ U{0..T-1}, x_t = sqrt(ab_t) x_0 + sqrt(1 - ab_t) eps, loss ||D(x_t, t, y) - x_0||^2
       (the paper's network predicts eps; we predict x0, one of the equivalent parameterizations
       of diffedu/param.py, because the single step below needs x0 directly);
    2. sample K masks from K independent x_T ~ N(0, I) with the reverse process;
    3. ensemble: the pixel-wise mean of the K decoded one-hot masks is the class probability
       p (B, C, H, W), argmax p the prediction, and the variance sum_c p_c (1 - p_c) the
       uncertainty map (the per-class variance of K one-hot samples is p_c (1 - p_c)).
  Multi-class codes (survey 6.2): one-hot, K = C channels, enc(m)_c = 2 [m = c] - 1, decoded by
    argmax; analog bits (Chen et al. 2023, "Analog Bits"), K = ceil(log2 C) channels, enc(m)_k
    = 2 bit_k(m) - 1, decoded by thresholding each channel at 0 (a code above C - 1 falls back to
    the nearest valid class, C - 1).
  Recursive noise diffusion (Kolbeinsson & Mikolajczyk 2024, survey reference [16]): the
    network is trained on its own previous predictions, as it is used at inference:
    1. draw t and the previous (noisier) entry t' = t + T / S of an S-step sampler;
    2. x0_hat = D(q(x_t' | x_0), t', y), without gradient (the model's own prediction);
    3. x_t = sqrt(ab_t) x0_hat + sqrt(1 - ab_t) eps: the input is built from x0_hat, not x_0;
    4. loss ||D(x_t, t, y) - x_0||^2 (the target stays the ground truth).
    Half of each batch uses steps 2-3, the other half the plain input (step 1 of Wolleb).
    Its sampler re-noises each prediction: x_{t_next} = q(x_t_next | x0_hat), fresh noise.
  Single step (SDSeg, Lin et al. 2024, survey reference [18]): one network call from pure
    noise at the noisiest entry, x0_hat = D(x_T, T - 1, y), decoded once. At that level x_T
    carries almost no information, so x0_hat is close to E[x_0 | y]: the mean of the mask
    distribution, a deterministic answer (SDSeg works in a VAE latent; here, pixel space).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .._validate import check_choice, check_int, check_positive_int, check_schedule, check_tensor
from ..denoiser import to_denoiser
from ..forward import q_sample
from ..samplers import ddim, ddpm
from .metrics import check_labels

__all__ = ["ENCODINGS", "code_channels", "encode", "decode", "ConcatConditioned", "segmentation_denoiser",
           "seg_loss", "rnd_loss", "sample_masks", "rnd_sample", "single_step", "ensemble_stats",
           "supervised_loss", "supervised_probs", "code_to_probs"]

ENCODINGS = ("onehot", "bits")


def code_channels(num_classes: int, encoding: str = "onehot") -> int:
    """K, the channels of a mask's code: C for one-hot, ceil(log2 C) (at least 1) for bits."""
    num_classes = check_positive_int("num_classes", num_classes)
    check_choice("encoding", encoding, ENCODINGS)
    return num_classes if encoding == "onehot" else max(1, math.ceil(math.log2(num_classes)))


def encode(labels: torch.Tensor, num_classes: int, encoding: str = "onehot") -> torch.Tensor:
    """labels: (B, H, W) in {0..C-1} -> code (B, K, H, W) float32 in {-1, +1} (module doc)."""
    labels = check_labels("labels", labels, num_classes)
    K = code_channels(num_classes, encoding)
    if encoding == "onehot":
        bits = F.one_hot(labels, num_classes).permute(0, 3, 1, 2)
    else:                                                   # bit k of the class index, k = 0 the lowest
        bits = (labels[:, None] >> torch.arange(K, device=labels.device)[None, :, None, None]) & 1
    return bits.float() * 2 - 1


def decode(code: torch.Tensor, num_classes: int, encoding: str = "onehot") -> torch.Tensor:
    """code: (B, K, H, W) real -> labels (B, H, W) long: argmax (one-hot) or bits > 0."""
    check_tensor("code", code, ndim=4)
    K = code_channels(num_classes, encoding)
    if code.shape[1] != K:
        raise ValueError(f"code has {code.shape[1]} channels; a {encoding} code of {num_classes} classes has {K}")
    if encoding == "onehot":
        return code.argmax(1)
    weights = (2 ** torch.arange(K, device=code.device))[None, :, None, None]
    return ((code > 0).long() * weights).sum(1).clamp_max(num_classes - 1)


class ConcatConditioned(nn.Module):
    """`model(x_t, t, cond=image)` from a network taking [x_t, image] along channels.
    x_t: (B, K, H, W); cond: (B, 1, H, W) -> (B, K, H, W). Not saved on its own: checkpoints
    hold the inner UNet (an allow-listed network), wrapped again after loading."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        self.prediction = getattr(net, "prediction", "x0")

    def forward(self, x_t, t, cond=None):
        if cond is None:
            raise ValueError("cond (the image, (B, 1, H, W)) is required: the mask is generated conditionally")
        check_tensor("cond", cond, ndim=4)
        if cond.shape[0] != x_t.shape[0] or cond.shape[2:] != x_t.shape[2:]:
            raise ValueError(f"cond {tuple(cond.shape)} must match x_t {tuple(x_t.shape)} in batch and size")
        return self.net(torch.cat([x_t, cond], 1), t)


def segmentation_denoiser(net: nn.Module, schedule, images: torch.Tensor, clip: float | None = 1.0):
    """The Denoiser D(x_t, t) of a mask given `images` (B, 1, H, W), bound as the condition."""
    check_schedule(schedule)
    check_tensor("images", images, ndim=4, finite=True)
    return to_denoiser(ConcatConditioned(net), schedule, cond=images, clip=clip)


def _pairs(images, labels, num_classes, encoding):
    check_tensor("images", images, ndim=4, nonempty=True, finite=True)
    x0 = encode(labels, num_classes, encoding)
    if x0.shape[0] != images.shape[0] or x0.shape[2:] != images.shape[2:]:
        raise ValueError(f"labels {tuple(labels.shape)} and images {tuple(images.shape)} must match")
    return x0


def seg_loss(net, images, labels, schedule, num_classes: int = 4, encoding: str = "onehot", generator=None):
    """Wolleb et al.'s loss (module doc, step 1) on one batch: images (B, 1, H, W), labels (B, H, W)."""
    x0 = _pairs(images, labels, num_classes, encoding)
    i = torch.randint(0, len(schedule), (len(x0),), generator=generator)
    xt = q_sample(x0, i, schedule, generator=generator)
    out = net(torch.cat([xt, images], 1), schedule.timesteps[i])
    return ((out - x0) ** 2).mean()


def rnd_loss(net, images, labels, schedule, num_classes: int = 4, encoding: str = "onehot",
             sample_steps: int = 10, generator=None):
    """Recursive noise diffusion's loss (module doc, steps 1-4) on one batch."""
    x0 = _pairs(images, labels, num_classes, encoding)
    sample_steps = check_int("sample_steps", sample_steps, lo=1)
    B, N = len(x0), len(schedule)
    i = torch.randint(0, N, (B,), generator=generator)                       # 1. t, and t' one sampler step earlier
    i_prev = (i + max(1, N // sample_steps)).clamp_max(N - 1)
    recursive = torch.rand(B, generator=generator) < 0.5
    with torch.no_grad():                                                    # 2. the model's own x0_hat at t'
        x_prev = q_sample(x0, i_prev, schedule, generator=generator)
        x0_hat = net(torch.cat([x_prev, images], 1), schedule.timesteps[i_prev]).clamp(-1, 1)
    start = torch.where(recursive[:, None, None, None], x0_hat, x0)          # 3. renoise x0_hat (half the batch)
    xt = q_sample(start, i, schedule, generator=generator)
    out = net(torch.cat([xt, images], 1), schedule.timesteps[i])
    return ((out - x0) ** 2).mean()                                          # 4. target: the ground truth


def _repeat(images, K):
    check_tensor("images", images, ndim=4, nonempty=True, finite=True)
    return images.repeat_interleave(K, 0)                                   # (B K, 1, H, W), sample k of image b at b K + k


def sample_masks(net, images, schedule, K: int = 5, steps: int = 10, num_classes: int = 4, encoding: str = "onehot",
                 sampler: str = "ddim", eta: float = 1.0, generator=None):
    """K masks per image by the reverse process (Wolleb et al., step 2).
    images: (B, 1, H, W) -> (labels (B, K, H, W), codes (B, K, Kc, H, W)).
    sampler "ddim" (with eta; eta = 1 is DDPM's variance) or "ddpm"."""
    K = check_positive_int("K", K)
    check_choice("sampler", sampler, ("ddim", "ddpm"))
    cond = _repeat(images, K)
    Kc = code_channels(num_classes, encoding)
    D = segmentation_denoiser(net, schedule, cond)
    xT = torch.randn(len(cond), Kc, *images.shape[2:], generator=generator)
    with torch.no_grad():
        if sampler == "ddim":
            x = ddim(D, xT, schedule, steps, eta=eta, generator=generator)
        else:
            x = ddpm(D, xT, schedule, steps, generator=generator)
    codes = x.reshape(len(images), K, Kc, *images.shape[2:])
    return decode(x, num_classes, encoding).reshape(len(images), K, *images.shape[2:]), codes


def rnd_sample(net, images, schedule, K: int = 5, steps: int = 10, num_classes: int = 4, encoding: str = "onehot",
               generator=None):
    """Recursive noise diffusion's sampler: x0_hat at each entry, re-noised to the next entry
    with fresh noise. images: (B, 1, H, W) -> labels (B, K, H, W), codes (B, K, Kc, H, W)."""
    K = check_positive_int("K", K)
    cond = _repeat(images, K)
    Kc = code_channels(num_classes, encoding)
    sched = schedule.respace(check_positive_int("steps", steps))
    x = torch.randn(len(cond), Kc, *images.shape[2:], generator=generator)
    with torch.no_grad():
        for j in reversed(range(len(sched))):
            t = torch.full((len(x),), int(sched.timesteps[j]), dtype=torch.long)
            x0_hat = net(torch.cat([x, cond], 1), t).clamp(-1, 1)
            x = q_sample(x0_hat, j - 1, sched, generator=generator) if j > 0 else x0_hat
    codes = x.reshape(len(images), K, Kc, *images.shape[2:])
    return decode(x, num_classes, encoding).reshape(len(images), K, *images.shape[2:]), codes


def single_step(net, images, schedule, num_classes: int = 4, encoding: str = "onehot", generator=None):
    """SDSeg-style one call (module doc): images (B, 1, H, W) -> (labels (B, H, W), x0_hat (B, Kc, H, W))."""
    check_tensor("images", images, ndim=4, nonempty=True, finite=True)
    Kc = code_channels(num_classes, encoding)
    xT = torch.randn(len(images), Kc, *images.shape[2:], generator=generator)
    t = torch.full((len(images),), int(schedule.timesteps[-1]), dtype=torch.long)
    with torch.no_grad():
        x0_hat = net(torch.cat([xT, images], 1), t).clamp(-1, 1)
    return decode(x0_hat, num_classes, encoding), x0_hat


def code_to_probs(x0_hat: torch.Tensor) -> torch.Tensor:
    """Class probabilities (B, C, H, W) float64 from an x0 prediction of a one-hot code
    (B, C, H, W). Tweedie: at the noisiest level x0_hat ~ E[x_0 | y] = 2 p - 1, so p = (x0_hat + 1) / 2,
    clipped at 0 and renormalised over the classes (a network's estimate need not sum exactly)."""
    check_tensor("x0_hat", x0_hat, ndim=4, finite=True)
    p = ((x0_hat.double() + 1) / 2).clamp_min(0) + 1e-6
    return p / p.sum(1, keepdim=True)


def ensemble_stats(samples: torch.Tensor, num_classes: int = 4):
    """The implicit ensemble (Wolleb et al., step 3). samples: (B, K, H, W) label maps ->
    (probs (B, C, H, W), prediction (B, H, W) = argmax of the mean, variance (B, H, W))."""
    samples = check_labels("samples", samples, num_classes, ndim=4)
    probs = F.one_hot(samples, num_classes).double().mean(1).permute(0, 3, 1, 2)   # mean of the one-hot samples
    variance = (probs * (1 - probs)).sum(1)
    return probs, probs.argmax(1), variance


def supervised_loss(net, images, labels, num_classes: int = 4):
    """The baseline: cross-entropy of a UNet's logits, called at t = 0 (its time input unused).
    images: (B, 1, H, W), labels (B, H, W)."""
    check_tensor("images", images, ndim=4, nonempty=True, finite=True)
    labels = check_labels("labels", labels, num_classes)
    return F.cross_entropy(net(images, 0), labels)


def supervised_probs(net, images) -> torch.Tensor:
    """Softmax class probabilities (B, C, H, W) of the supervised baseline. images: (B, 1, H, W)."""
    check_tensor("images", images, ndim=4, nonempty=True, finite=True)
    with torch.no_grad():
        return net(images, 0).double().softmax(1)
