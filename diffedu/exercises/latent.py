"""Exercises of chapter 11b (latent diffusion, ReSample, cross-modality), each graded on fixed random inputs.

    resample_mean_var      the mean and variance of ReSample's stochastic resampling (a product of two Gaussians)
    patch_average          the whole-image x0 from overlapping patch predictions (average where they overlap)
    interval_coverage      the fraction of truth pixels inside the samples' Gaussian prediction interval
"""
from __future__ import annotations

import torch

from . import Exercise


def _rand(*shape, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(*shape, generator=g, dtype=torch.float64)


# -- reference solutions (kept short: they are what `solution` prints) --------------------
def resample_mean_var(z0_y, z_prime, ab_t, sigma2):
    """N(sqrt(ab) z0_y, (1 - ab) I) times N(z_prime, sigma2 I): precisions add, means are
    precision-weighted. Returns (mean, variance)."""
    var = sigma2 * (1 - ab_t) / (sigma2 + 1 - ab_t)
    mean = (sigma2 * ab_t ** 0.5 * z0_y + (1 - ab_t) * z_prime) / (sigma2 + 1 - ab_t)
    return mean, torch.full_like(z0_y, var)


def patch_average(patches, size, stride):
    """patches: (B, ny, nx, C, p, p), the x0 predictions of the patches at rows / columns
    0, stride, 2 stride, ...; returns (B, C, size, size): their sum at each pixel over their count."""
    B, ny, nx, C, p, _ = patches.shape
    total = patches.new_zeros(B, C, size, size)
    count = patches.new_zeros(1, 1, size, size)
    for i in range(ny):
        for j in range(nx):
            total[:, :, i * stride:i * stride + p, j * stride:j * stride + p] += patches[:, i, j]
            count[:, :, i * stride:i * stride + p, j * stride:j * stride + p] += 1
    return total / count


def interval_coverage(samples, truth, q):
    """samples: (S, N), truth: (N,); q the Student-t quantile. The interval is mean +- q std
    sqrt(1 + 1/S) (std with S - 1 in the denominator); returns the fraction of truths inside."""
    S = samples.shape[0]
    half = q * samples.std(0) * (1 + 1 / S) ** 0.5
    return ((truth - samples.mean(0)).abs() <= half).double().mean()


def _patch_case(k):
    size, p, s = [(8, 4, 2), (8, 4, 4), (12, 6, 3)][k]
    n = (size - p) // s + 1
    return {"patches": _rand(2, n, n, 1, p, p, seed=k), "size": size, "stride": s}


EXERCISES = [
    Exercise("resample_mean_var", "11b",
             "write the mean and variance of ReSample's stochastic resampling from z0(y), z'_t, alpha_bar_t and sigma_t^2",
             resample_mean_var,
             lambda: [{"z0_y": _rand(4, 3, seed=k), "z_prime": _rand(4, 3, seed=10 + k), "ab_t": ab, "sigma2": s2}
                      for k, (ab, s2) in enumerate([(0.5, 1.0), (0.9, 0.01), (0.05, 40.0)])],
             "Multiply N(z; sqrt(ab) z0_y, (1 - ab) I) by N(z; z', sigma^2 I): the precisions 1/(1 - ab) and "
             "1/sigma^2 add, and the mean weighs each centre by its precision. Return (mean, variance), the "
             "variance as a tensor shaped like z0_y (ReSample, Sec. 3.2)."),
    Exercise("patch_average", "11b",
             "paste overlapping patch predictions (B, ny, nx, C, p, p) into one image and average where they overlap",
             patch_average, lambda: [_patch_case(k) for k in range(3)],
             "Keep two arrays of the image's size: the running sum of the patches and the number of patches that "
             "cover each pixel; patch (i, j) starts at row i * stride, column j * stride. Divide at the end."),
    Exercise("interval_coverage", "11b",
             "the fraction of truth values inside mean +- q std sqrt(1 + 1/S) of S samples",
             interval_coverage,
             lambda: [{"samples": _rand(8, 500, seed=k), "truth": _rand(500, seed=20 + k) * sc, "q": q}
                      for k, (sc, q) in enumerate([(1.0, 1.895), (0.5, 1.0), (2.0, 2.365)])],
             "Per column: mean and std of the S samples (torch's std divides by S - 1). The new value of a "
             "Gaussian lies within q std sqrt(1 + 1/S) of the sample mean with the Student-t probability of q."),
]


def _self_check():
    """The references agree with the package (the exercises cannot drift from diffedu.medical)."""
    from ..denoiser import as_denoiser
    from ..medical import cross_modality, patches, resample
    from ..schedules import linear_schedule
    z0, zp = _rand(4, 3), _rand(4, 3, seed=1)
    mean, var = resample_mean_var(z0, zp, 0.3, 0.7)
    torch.testing.assert_close(resample.stochastic_resample(z0, zp, 0.3, 0.7, torch.zeros_like(z0)), mean)
    torch.testing.assert_close(resample.stochastic_resample(z0, zp, 0.3, 0.7, torch.ones_like(z0)), mean + var.sqrt())
    # patch_average = PatchDenoiser on a denoiser that returns each patch's own prediction
    c = _patch_case(2)
    B, n, _, C, p, _ = c["patches"].shape
    flat = c["patches"].reshape(B * n * n, C, p, p)
    D = patches.patch_denoiser(as_denoiser(lambda v, t: flat, linear_schedule(10)), p, c["stride"])
    torch.testing.assert_close(D(torch.zeros(B, C, c["size"], c["size"], dtype=torch.float64), 5),
                               patch_average(**c))
    # interval_coverage = calibration's coverage at the quantile of its level (S = 8: t_7(0.95) = 1.895)
    s, truth = _rand(8, 2, 1, 11, 11, seed=3), _rand(2, 1, 11, 11, seed=4)
    from scipy.stats import t as student_t
    want = cross_modality.calibration(s, truth, level=0.9)["coverage"]
    got = interval_coverage(s.flatten(1), truth.flatten(), float(student_t.ppf(0.95, 7)))
    assert abs(float(got) - want) < 1e-6 and 0 < want < 1
