"""Blind-DPS (Chung, Kim, Kim & Ye, CVPR 2023, "Parallel diffusion models of operator and
image for blind inverse problems"): blind deblurring (and blind SR) with two diffusion priors
run in parallel, one for the image and one for the blur kernel.

Scope: y = down_f(k * x) + n with the kernel k unknown. Each reverse step updates both
chains with DPS's gradient of the same residual (chapter 09, `posterior/dps.py`, whose
pieces are reused: the DDPM step, the per-sample step size zeta / ||r||). The kernel chain
lives in "kernel image" space (`kernels.kernel_to_image`): (B, k * k) vectors in [-1, 1],
the input of the kernel prior (an MLP denoiser trained on `kernels.kernel_dataset`).

Where the contract ends: the two chains are two denoisers of the one contract (both at the
same integer steps of one NoiseSchedule), but the sampler's state is a pair (x_i, k_i), so it
runs its own loop over the schedule's entries instead of `samplers.reverse_loop` (whose state
is one tensor); `dps_step`'s arithmetic is reused, not re-derived.

Notation (BlindDPS, Algorithm 1; entries i = N-1 .. 0 of a respaced schedule)
    x_i, k_i            image (B, C, H, W) and kernel image (B, k * k) at entry i
    x0_hat, k0_hat      D_x(x_i, t_i), D_k(k_i, t_i)  (Tweedie, paper eq. 7)
    K(k0_hat)           image_to_kernel: clamp at 0, normalise to sum 1  (the estimate, (B, k, k))
    r                   y - down_f(K(k0_hat) * x0_hat)          (paper eq. 10)
    x'_{i-1}, k'_{i-1}  DDPM ancestral steps of each chain
    x_{i-1} = x'_{i-1} - zeta_x / ||r|| grad_{x_i} ||r||^2               (eq. 11)
    k_{i-1} = k'_{i-1} - zeta_k / ||r|| grad_{k_i} (||r||^2 + lam ||(k0_hat + 1) / 2||_1)
The paper's sparsity prior is an l0 penalty on the kernel; its gradient is zero almost
everywhere, so (as is usual) its convex surrogate l1 is used, on the kernel image shifted to
[0, 1] (its entries are the kernel's values relative to its peak).
"""
from __future__ import annotations

import torch

from ..._validate import check_int, check_nonneg, check_schedule, check_tensor, rows
from ...denoiser import as_denoiser
from ...samplers import ddpm_step
from ...schedules import NoiseSchedule
from ..posterior.dps import _per_sample
from .degrade import blur, downsample
from .kernels import check_kernel_size, image_to_kernel

__all__ = ["blind_forward", "kernel_prior", "blind_dps_step", "blind_dps"]


def blind_forward(x: torch.Tensor, kernel: torch.Tensor, factor: int = 1, mode: str = "bicubic") -> torch.Tensor:
    """The blind model's A_k(x) = down_f(k * x). x: (B, C, H, W); kernel: (B, k, k) or (k, k).
    Returns (B, C, H / f, W / f); differentiable in x and kernel."""
    return downsample(blur(x, kernel), factor, mode)


def kernel_prior(name: str = "blind/kernel_prior_7"):
    """The shipped kernel prior: a denoiser (diffedu contract) of kernel images (B, k * k) on
    the linear 1000-step schedule (the digits prior's), trained by `scripts/train_blind.sh`."""
    from ...train import pretrained_denoiser
    return pretrained_denoiser(name, clip=1.0)


def blind_dps_step(x, kimg, t, ab_t: float, ab_prev: float, y, Dx, Dk, *, zeta: float, zeta_k: float,
                   lam: float, factor: int = 1, mode: str = "bicubic", noise_x=None, noise_k=None):
    """One Blind-DPS update (module doc, steps 1-4). x: (B, C, H, W), kimg: (B, k * k) at
    timesteps t: (B,); y: (B, C, H / f, W / f). Returns (x_prev, k_prev, x0_hat, kernel
    estimate (B, k, k), ||r||: (B,))."""
    k = int(round(kimg.shape[1] ** 0.5))
    with torch.enable_grad():
        xi, ki = x.detach().requires_grad_(True), kimg.detach().requires_grad_(True)
        # 1. both denoisers, with the graph kept (x0_hat depends on x_i, k0_hat on k_i)
        x0 = Dx.x0_eps(xi, t, alpha_bar=ab_t)[0]
        k0 = Dk.x0_eps(ki, t, alpha_bar=ab_t)[0]
        kernel = image_to_kernel(k0.reshape(-1, k, k))
        # 2. the residual of the joint estimate (eq. 10) and the kernel's l1 penalty
        r2 = rows(y - blind_forward(x0, kernel, factor, mode)).pow(2).sum(1)
        l1 = ((k0 + 1) / 2).clamp_min(0).sum(1)
        # (a denoiser may ignore its input, e.g. a fixed kernel: its gradient is then 0)
        gx, gk_data = torch.autograd.grad(r2.sum(), (xi, ki), retain_graph=True, allow_unused=True,
                                          materialize_grads=True)
        gk_l1 = (torch.autograd.grad(l1.sum(), ki, allow_unused=True, materialize_grads=True)[0]
                 if l1.requires_grad else torch.zeros_like(ki))
    rnorm = r2.detach().sqrt().clamp_min(1e-12)
    # 3. the DDPM ancestral step of each chain from its own x0_hat
    x_prev = ddpm_step(x.detach(), x0.detach(), ab_t, ab_prev, noise_x)
    k_prev = ddpm_step(kimg.detach(), k0.detach(), ab_t, ab_prev, noise_k)
    # 4. DPS steps with zeta / ||r|| (eq. 11), the l1 penalty on the kernel chain
    x_prev = x_prev - _per_sample(zeta / rnorm, x).to(x.dtype) * gx
    k_prev = k_prev - _per_sample(zeta_k / rnorm, kimg).to(x.dtype) * gk_data - lam * gk_l1
    return x_prev, k_prev, x0.detach(), kernel.detach(), rnorm


def blind_dps(y: torch.Tensor, image_denoiser, kernel_denoiser, schedule: NoiseSchedule, *, kernel_size: int = 7,
              image_shape=None, factor: int = 1, mode: str = "bicubic", steps: int = 50, zeta: float = 1.0,
              zeta_k: float = 0.3, lam: float = 0.02, generator: torch.Generator | None = None,
              return_trajectory: bool = False, callback=None):
    """Blind-DPS (Chung et al. 2023, Algorithm 1): restore x and estimate k from y.

    y: (B, C, h, w) measurements of y = down_f(k * x) + n; image_denoiser, kernel_denoiser:
    Denoisers (or plain callables D(x_t, t)) of images (B, C, H, W) and kernel images
    (B, kernel_size ** 2), both for the integer steps of `schedule`; image_shape: (C, H, W)
    (default (C, f h, f w)); steps: entries of the respaced schedule; zeta, zeta_k: the two
    chains' step sizes; lam: weight of the kernel's l1 penalty. Returns (x0: (B, C, H, W),
    kernel: (B, k, k)); with return_trajectory also the kernel estimates (S, B, k, k) and the
    x0_hats (S, B, C, H, W). callback gets {'x', 'i', 't', 'denoised', 'kernel', 'residual'}.
    """
    check_tensor("y", y, ndim=4, nonempty=True, finite=True)
    check_schedule(schedule)
    Dx, Dk = as_denoiser(image_denoiser, schedule), as_denoiser(kernel_denoiser, schedule)
    kernel_size = check_kernel_size(kernel_size)
    factor = check_int("factor", factor, lo=1, hi=4)
    steps = check_int("steps", steps, lo=1, hi=len(schedule))
    zeta, zeta_k, lam = check_nonneg("zeta", zeta), check_nonneg("zeta_k", zeta_k), check_nonneg("lam", lam)
    B, C, h, w = y.shape
    C, H, W = image_shape if image_shape is not None else (C, h * factor, w * factor)
    sched = schedule.respace(steps)
    ab, ts = sched.alpha_bar.tolist(), sched.timesteps.tolist()
    draw = lambda *shape: torch.randn(shape, generator=generator, dtype=y.dtype).to(y.device)  # noqa: E731
    x, kimg = draw(B, C, H, W), draw(B, kernel_size ** 2)
    kernels, x0s = [], []
    for i in reversed(range(len(sched))):
        t = torch.full((B,), ts[i], dtype=torch.long, device=y.device)
        nx, nk = (draw(B, C, H, W), draw(B, kernel_size ** 2)) if i > 0 else (None, None)
        x, kimg, x0, kernel, rnorm = blind_dps_step(x, kimg, t, ab[i], ab[i - 1] if i > 0 else 1.0, y, Dx, Dk,
                                                    zeta=zeta, zeta_k=zeta_k, lam=lam, factor=factor, mode=mode,
                                                    noise_x=nx, noise_k=nk)
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"Blind-DPS diverged at step i={i} (t={ts[i]}): lower zeta / zeta_k")
        if callback is not None:
            callback({"x": x, "i": i, "t": ts[i], "denoised": x0, "kernel": kernel, "residual": rnorm})
        if return_trajectory:
            kernels.append(kernel)
            x0s.append(x0)
    kernel = image_to_kernel(kimg.reshape(B, kernel_size, kernel_size))
    if return_trajectory:
        return x, kernel, torch.stack(kernels), torch.stack(x0s)
    return x, kernel
