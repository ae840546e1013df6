"""BIRD (Chihaoui, Lemkhenter & Favaro, CVPR 2024, "Blind image restoration via fast
diffusion inversion"): restoration as an optimisation over the *initial noise* of a short
deterministic DDIM, so every iterate is an image the prior can generate.

Scope: y = A(x) + n with A known (non-blind) or A = A_k with the kernel unknown (blind: a
small kernel generator optimised jointly). The DDIM map x_T -> x_0 runs `steps` (about 10)
entries of the prior's schedule, eta = 0 (`samplers.ddim_step`'s arithmetic).

Notation (BIRD, section 3; D = C H W the image dimension)
    z               the initial noise x_T, kept on the sphere ||z|| = sqrt(D)  (paper eq. 8)
    G(z)            deterministic DDIM from x_T = z: x_{i-1} = sqrt(ab_prev) x0_hat + sqrt(1 - ab_prev) eps_hat
    L(z, phi)       ||y - A_{k_phi}(G(z))||^2, k_phi = g_phi(c) the kernel generator's kernel
    1. gradient step on (z, phi) (Adam);  2. z <- sqrt(D) z / ||z||  (project back to the sphere)
The sphere: a Gaussian x_T in high dimension lies near the sphere of radius sqrt(D), and the
prior only generates good images from noise that looks like its training noise; without the
projection the optimiser drifts into noise the network never saw (exercise 1).

The cheap Jacobian (BIRD's "fast" inversion). Full backpropagation through G costs a
forward and a backward pass of the network per DDIM step, and stores every activation.
BIRD instead treats the network's output as a constant: eps_hat = eps(x_i, t_i) is computed
under no_grad, and the gradient flows only through DDIM's linear coefficients,
    x_{i-1} = sqrt(ab_prev / ab_i) x_i + (sqrt(1 - ab_prev) - sqrt(ab_prev (1 - ab_i) / ab_i)) eps_hat
so dx_{i-1}/dx_i = sqrt(ab_prev / ab_i) and the whole chain telescopes to
dG/dz = 1 / sqrt(ab_T) I: the gradient in z is the image-space gradient, rescaled
(`cheap_gradient_factor`, tested). One forward pass per step, no graph through the network.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from ..._validate import check_int, check_real, check_schedule, check_tensor, rows
from ...denoiser import as_denoiser
from ...schedules import NoiseSchedule
from .blind_dps import blind_forward
from .kernels import check_kernel_size, gaussian_kernel2d

__all__ = ["project_sphere", "ddim_map", "cheap_gradient_factor", "KernelGenerator", "bird", "gradient_check"]


def project_sphere(z: torch.Tensor) -> torch.Tensor:
    """Each row of z: (B, ...) scaled to norm sqrt(D), D = the number of entries per row
    (BIRD eq. 8). A zero row is refused (it has no direction)."""
    check_tensor("z", z, min_ndim=2)
    n = rows(z).norm(dim=1)
    if bool((n == 0).any()):
        raise ValueError("z has a zero row: the sphere projection needs a direction")
    D = rows(z).shape[1]
    return z * (math.sqrt(D) / n).reshape((-1,) + (1,) * (z.ndim - 1))


def ddim_map(z: torch.Tensor, denoiser, schedule: NoiseSchedule, steps: int = 10, cheap: bool = False,
             cond=None) -> torch.Tensor:
    """G(z): deterministic DDIM (eta = 0) from x_T = z: (B, ...) over `steps` entries of the
    respaced schedule. cheap=False: differentiable end to end (full backprop); cheap=True:
    the network runs under no_grad and the graph holds only DDIM's linear coefficients
    (module doc). Returns x_0: (B, ...)."""
    check_schedule(schedule)
    D = as_denoiser(denoiser, schedule)
    sched = schedule.respace(check_int("steps", steps, lo=1, hi=len(schedule)))
    ab, ts = sched.alpha_bar.tolist(), sched.timesteps.tolist()
    x = z
    for i in reversed(range(len(sched))):
        ab_t, ab_prev = ab[i], (ab[i - 1] if i > 0 else 1.0)
        t = torch.full((len(x),), ts[i], dtype=torch.long, device=x.device)
        if cheap:
            with torch.no_grad():
                eps = D.x0_eps(x.detach(), t, cond, alpha_bar=ab_t)[1]
            x0 = (x - (1 - ab_t) ** 0.5 * eps) / ab_t ** 0.5          # linear in x: the only graph
        else:
            x0, eps = D.x0_eps(x, t, cond, alpha_bar=ab_t)
        x = ab_prev ** 0.5 * x0 + (1 - ab_prev) ** 0.5 * eps
    return x


def cheap_gradient_factor(schedule: NoiseSchedule, steps: int = 10) -> float:
    """dG/dz under the cheap Jacobian: prod_i sqrt(ab_prev / ab_i) = 1 / sqrt(ab_T) (module doc)."""
    sched = schedule.respace(check_int("steps", steps, lo=1, hi=len(schedule)))
    return 1 / float(sched.alpha_bar[-1]) ** 0.5


class KernelGenerator(nn.Module):
    """g_phi: a fixed random code c (B, code) -> an MLP -> softmax -> kernels (B, k, k) that
    are >= 0 and sum to 1 (BIRD's blind variant). One generator per image of a batch (the
    layers are batched: weights (B, ...)). The output layer starts at zero with its bias at
    log of a Gaussian of std 1 px, so the first kernel is that mild Gaussian."""

    def __init__(self, batch: int, kernel_size: int = 7, code: int = 16, hidden: int = 64,
                 generator: torch.Generator | None = None):
        super().__init__()
        k = self.kernel_size = check_kernel_size(kernel_size)
        B = check_int("batch", batch, lo=1)
        self.register_buffer("c", torch.randn(B, code, generator=generator))
        self.W1 = nn.Parameter(torch.randn(B, code, hidden, generator=generator) / code ** 0.5)
        self.b1 = nn.Parameter(torch.zeros(B, hidden))
        self.W2 = nn.Parameter(torch.zeros(B, hidden, k * k))
        self.b2 = nn.Parameter(gaussian_kernel2d(k, 1.0).log().reshape(1, -1).repeat(B, 1))

    def forward(self) -> torch.Tensor:
        h = torch.nn.functional.silu(torch.einsum("bc,bch->bh", self.c, self.W1) + self.b1)
        logits = torch.einsum("bh,bhk->bk", h, self.W2) + self.b2
        k = self.kernel_size
        return torch.softmax(logits, dim=1).reshape(-1, k, k)


def bird(y: torch.Tensor, denoiser, schedule: NoiseSchedule, *, operator=None, kernel_size: int | None = None,
         factor: int = 1, mode: str = "bicubic", image_shape=None, steps: int = 10, iters: int = 40, lr: float = 0.05,
         lr_kernel: float = 0.01, cheap: bool = True, project: bool = True, cond=None,
         generator: torch.Generator | None = None, callback=None):
    """BIRD (module doc): minimise ||y - A(G(z))||^2 over the initial noise z (and the kernel
    generator when blind), z projected to the sphere after each Adam step.

    y: (B, C, h, w); denoiser: the prior (a Denoiser or plain callable of the original steps of
    `schedule`); operator: a known forward model (anything with A(x), e.g. an Operator), or None
    for the blind model A_k(x) = down_factor(k * x) with k (kernel_size x kernel_size) from a
    KernelGenerator; steps: DDIM steps of G; iters: optimiser steps; cheap: the cheap Jacobian;
    project: the sphere projection (False only to see why it is there). callback gets
    {'i', 'loss' (B,), 'x', 'kernel'} per iteration. Returns (x: (B, C, H, W), kernel: (B, k, k)
    or None)."""
    check_tensor("y", y, ndim=4, nonempty=True, finite=True)
    check_schedule(schedule)
    D = as_denoiser(denoiser, schedule)
    iters = check_int("iters", iters, lo=0)
    lr, lr_kernel = check_real("lr", lr, lo=0, lo_open=True), check_real("lr_kernel", lr_kernel, lo=0)
    B, C, h, w = y.shape
    if operator is None:
        if kernel_size is None:
            raise ValueError("pass an operator (non-blind) or a kernel_size (blind)")
        gen = KernelGenerator(B, kernel_size, generator=generator).to(y.device)
        shape = image_shape or (C, h * factor, w * factor)
        forward = lambda x: blind_forward(x, gen(), factor, mode)           # noqa: E731
    else:
        if not callable(getattr(operator, "A", None)):
            raise TypeError(f"operator must have a forward model A(x), got {type(operator).__name__}")
        gen, forward = None, operator.A
        shape = image_shape or tuple(operator.in_shape)
    z = project_sphere(torch.randn((B, *shape), generator=generator, dtype=y.dtype).to(y.device))
    z.requires_grad_(True)
    groups = [{"params": [z], "lr": lr}] + ([{"params": gen.parameters(), "lr": lr_kernel}] if gen else [])
    opt = torch.optim.Adam(groups)
    for i in range(iters):
        x = ddim_map(z, D, schedule, steps, cheap, cond)
        loss = rows(y - forward(x)).pow(2).sum(1)
        opt.zero_grad()
        loss.sum().backward()
        opt.step()
        if project:
            with torch.no_grad():
                z.copy_(project_sphere(z))
        if callback is not None:
            callback({"i": i, "loss": loss.detach(), "x": x.detach(), "kernel": gen().detach() if gen else None})
    with torch.no_grad():
        x = ddim_map(z.detach(), D, schedule, steps, True, cond)
        return x, (gen() if gen else None)


def gradient_check(y: torch.Tensor, forward, denoiser, schedule: NoiseSchedule, z: torch.Tensor, steps: int = 10,
                   cond=None):
    """The cheap Jacobian against full backprop at one z: (B, C, H, W): returns (cosine (B,)
    between the two gradients of ||y - forward(G(z))||^2 in z, full gradient (B, C, H, W),
    cheap gradient). forward: a callable x -> A(x)."""
    grads = []
    for cheap in (False, True):
        zz = z.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            loss = rows(y - forward(ddim_map(zz, denoiser, schedule, steps, cheap, cond))).pow(2).sum()
            (g,) = torch.autograd.grad(loss, zz)
        grads.append(g)
    cos = torch.nn.functional.cosine_similarity(rows(grads[0]), rows(grads[1]), dim=1)
    return cos, grads[0], grads[1]
