"""Adversarial diffusion distillation (Sauer, Lorenz, Blattmann & Rombach 2023; survey section 7.2),
on 2D points: a one-step student trained by a discriminator AND by the teacher's denoiser.

Notation (ADD, section 3; cosine time of progressive.py for the student, z ~ N(0, I) at SNR = 0):
    x_theta = student(z)                                one step from pure noise
    distillation  x_s = alpha_s x_theta + sigma_s eps (re-noised), target D_teacher(x_s, s) (no grad)
                  L_distill = c(s) || x_theta - D_teacher(x_s, s) ||^2,  c(s) = alpha_bar_s (ADD's
                  "exponential" weighting: trust the teacher more at low noise), lambda = 2.5
    discriminator frozen feature network F (a random MLP here, DINO in the paper) with trainable
                  linear heads h_k on each feature layer; hinge loss
                  L_D = E max(0, 1 - h(F(x_real))) + E max(0, 1 + h(F(x_theta))) + gamma R1,
                  R1 = E || grad_{x_real} h(F(x_real)) ||^2  (w.r.t. the real INPUTS, not the weights)
    generator     L_G = -E h(F(x_theta)) + lambda L_distill
The teaching contrast: regression alone (lambda only, no adversary) pulls each noise draw to the
teacher's average answer, so the modes blur towards their means; the adversarial term restores them.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from .._validate import check_int, check_positive_int, check_real
from .common import LevelMLP, cosine_alpha_sigma, level_teacher
from .progressive import _col, student_x0

__all__ = ["FeatureDiscriminator", "r1_penalty", "add_losses", "disc_loss", "adversarial_distill", "one_step",
           "mode_coverage"]


class FeatureDiscriminator(nn.Module):
    """Frozen random feature MLP (dim -> width -> width) with a trainable linear head per layer;
    forward(x) -> (B,) the sum of the heads' logits."""

    def __init__(self, dim: int = 2, width: int = 128, depth: int = 3, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        dims = [dim] + [width] * depth
        self.features = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        for layer in self.features:                    # frozen: only the heads learn
            nn.init.normal_(layer.weight, 0, 2.0 / layer.in_features ** 0.5, generator=g)
            nn.init.uniform_(layer.bias, -2.0, 2.0, generator=g)
            layer.requires_grad_(False)
        self.heads = nn.ModuleList(nn.Linear(width, 1) for _ in range(depth))

    def forward(self, x):
        out, h = 0.0, x
        for layer, head in zip(self.features, self.heads):
            h = torch.sin(layer(h))                    # random Fourier-like features of the points
            out = out + head(h)[:, 0]
        return out


def r1_penalty(disc, x_real):
    """E || grad_x disc(x) ||^2 at the real inputs x_real (B, D) (Mescheder et al. 2018)."""
    x = x_real.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(disc(x).sum(), x, create_graph=True)
    return (grad ** 2).flatten(1).sum(1).mean()


def one_step(student, z):
    """The student's one-step sample from z (B, D) at SNR = 0."""
    return student_x0(student, z, torch.ones(len(z), dtype=torch.float64))


def add_losses(student, disc, teacher, z, lam: float = 2.5, adversarial: bool = True, generator=None):
    """The student's loss of one ADD step: -E h(F(x_theta)) + lam c(s) ||x_theta - D_teacher(x_s, s)||^2;
    teacher: a level teacher (x, alpha_bar) -> x0. adversarial=False: the distillation term alone."""
    x_theta = one_step(student, z)
    s = torch.rand(len(z), generator=generator, dtype=torch.float64).clamp(0.02, 0.98)
    a, sg = cosine_alpha_sigma(s)
    x_s = _col(a, x_theta) * x_theta.detach() + _col(sg, x_theta) * torch.randn(x_theta.shape, generator=generator)
    with torch.no_grad():
        target = teacher(x_s, a ** 2)
    distill = (_col(a ** 2, x_theta) * (x_theta - target) ** 2).sum(1).mean()
    return lam * distill - (disc(x_theta).mean() if adversarial else 0.0)


def disc_loss(disc, x_real, x_fake, gamma: float = 0.1):
    """Hinge loss of the discriminator plus gamma R1 at the real inputs."""
    return (torch.relu(1 - disc(x_real)).mean() + torch.relu(1 + disc(x_fake.detach())).mean()
            + gamma * r1_penalty(disc, x_real))


def adversarial_distill(teacher, data, student: LevelMLP, steps: int = 2000, batch_size: int = 256, lr: float = 2e-4,
                        lam: float = 2.5, gamma: float = 0.1, adversarial: bool = True, seed: int = 0):
    """ADD from `teacher` (GaussianMixture or Denoiser) on `data` (a GaussianMixture or (M, D) tensor),
    starting from `student` (copied: ADD initialises the student from a pretrained network). Alternates
    one discriminator and one student Adam step (betas (0, 0.99), as GAN practice): two players, two
    optimisers, so this is the one trainer of the package that does not run train.fit (one optimiser).
    Returns (student, losses)."""
    check_positive_int("steps", steps)
    lam = check_real("lam", lam, lo=0)
    g = torch.Generator().manual_seed(check_int("seed", seed, lo=0))
    lt = level_teacher(teacher)
    sample = (lambda n: data.sample(n, g)) if hasattr(data, "sample") else \
        (lambda n: data[torch.randint(0, len(data), (n,), generator=g)])
    st = copy.deepcopy(student).train().requires_grad_(True)
    torch.manual_seed(seed)                                # the heads' initialisation
    disc = FeatureDiscriminator(st.dim, seed=seed)
    opt_g = torch.optim.Adam(st.parameters(), lr=lr, betas=(0.0, 0.99))
    opt_d = torch.optim.Adam([p for p in disc.parameters() if p.requires_grad], lr=4 * lr, betas=(0.0, 0.99))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    losses = []
    try:
        for _ in range(steps):
            z = torch.randn(batch_size, st.dim, generator=g)
            if adversarial:                                       # 1. the discriminator's step
                with torch.no_grad():
                    fake = one_step(st, z)
                opt_d.zero_grad(set_to_none=True)
                disc_loss(disc, sample(batch_size), fake, gamma).backward()
                opt_d.step()
            g_loss = add_losses(st, disc, lt, z, lam, adversarial, g)   # 2. the student's step
            opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            opt_g.step()
            losses.append(float(g_loss.detach()))
    finally:
        torch.set_num_threads(threads)
    return st.eval().requires_grad_(False), losses


def mode_coverage(x, gmm) -> list[float]:
    """Fraction of the samples x (N, D) whose most responsible mixture component is k, for each k
    (compare with gmm.weights: a collapsed mode shows as a fraction near 0)."""
    k = gmm.responsibilities(x.detach().double().cpu()).argmax(1)
    return (torch.bincount(k, minlength=gmm.K).double() / len(x)).tolist()
