"""ReSample: inverse problems with a latent diffusion prior via hard data consistency
(Song, Kwon, Zhang, Hu, Qu & Shen, ICLR 2024; the survey's reference [29], sections 4.2-4.3 and 5.2).

Scope: their Algorithm 1 on any differentiable operator A acting on decoded images, with the
consistency step solved in latent space (their "latent optimisation", the variant their CT
experiments use) or, as an option, in pixel space followed by re-encoding (their "pixel
optimisation"; linear A only here, solved by conjugate gradients).
    resample_variance(ab_t, ab_next, gamma)   sigma_t^2 of the stochastic resampling (their Sec. 3.2)
    stochastic_resample(z0_y, z_prime, ab_t, sigma2, noise)   one draw of the resampling
    latent_consistency(y, operator, decode, z_init, ...)      argmin_z ||y - A(decode(z))||^2 by Adam
    resample(y, operator, ldm, ...)          the whole sampler (latent DPS + hard data consistency)

Notation (ReSample, Algorithm 1; entries i = N-1 .. 0 of a respaced schedule, latents z)
    ab_i, ab_prev       alpha_bar of entry i and of the entry the step goes to (1 after the last)
    z0_hat(z_i)         Tweedie: the latent prior's D(z_i, t_i) = E[z_0 | z_i]
    z'_prev             the DDIM step (eta) from z_i with (z0_hat, eps_hat)     (Alg. 1, lines 3-5)
    z'_prev -= zeta_i grad_{z_i} ||y - A(Dec(z0_hat(z_i)))||^2, zeta_i = zeta / ||r||
                        the latent DPS step                                     (Alg. 1, line 6)
    at the entries of C (every `every` steps, after the first `skip` fraction):
      z0_hat(z'_prev)   Tweedie at the new level (one more network call)
      z0_hat(y)         = argmin_z ||y - A(Dec(z))||^2 from z0_hat(z'_prev): hard data consistency
                                                                                (Alg. 1, line 9; their eq. 8)
      z_prev ~ N(mu, v I)  the stochastic resampling of their Sec. 3.2, the product of the two
                        Gaussians N(sqrt(ab) z0_hat(y), (1 - ab) I) and N(z'_prev, sigma^2 I):
          mu = (sigma^2 sqrt(ab) z0_hat(y) + (1 - ab) z'_prev) / (sigma^2 + 1 - ab)
          v  = sigma^2 (1 - ab) / (sigma^2 + 1 - ab),    ab = ab_prev           (Alg. 1, line 10)
          sigma^2 = gamma (1 - ab_next) / ab_prev (1 - ab_prev / ab_next), ab_next the level after
        ab_prev (a DDPM posterior variance scaled by gamma; they use gamma = 40).
The final image is Dec(z_0). The latent DPS step differentiates through the prior AND the
decoder; `stats` counts both kinds of calls.
"""
from __future__ import annotations

import torch

from .._validate import check_choice, check_int, check_nonneg, check_operator, check_real, check_tensor, rows
from ..samplers import ddim_step, reverse_loop

__all__ = ["resample_variance", "stochastic_resample", "latent_consistency", "pixel_consistency", "resample"]


def resample_variance(ab_t: float, ab_next: float, gamma: float) -> float:
    """sigma_t^2 = gamma (1 - ab_next) / ab_t (1 - ab_t / ab_next) (module doc), ab_t <= ab_next <= 1."""
    ab_t = check_real("ab_t", ab_t, lo=0, lo_open=True, hi=1)
    ab_next = check_real("ab_next", ab_next, lo=ab_t, hi=1)
    gamma = check_nonneg("gamma", gamma)
    return gamma * (1 - ab_next) / ab_t * (1 - ab_t / ab_next)


def stochastic_resample(z0_y: torch.Tensor, z_prime: torch.Tensor, ab_t: float, sigma2: float,
                        noise: torch.Tensor | None) -> torch.Tensor:
    """One draw of N(mu, v I) (module doc): z0_y, z_prime, noise: (B, ...) -> z_t (B, ...).
    sigma2 = 0 returns z_prime; ab_t = 1 returns z0_y."""
    check_tensor("z0_y", z0_y)
    check_tensor("z_prime", z_prime)
    if z0_y.shape != z_prime.shape:
        raise ValueError(f"z0_y and z_prime must have one shape, got {tuple(z0_y.shape)} and {tuple(z_prime.shape)}")
    ab_t = check_real("ab_t", ab_t, lo=0, lo_open=True, hi=1)
    sigma2 = check_nonneg("sigma2", sigma2)
    if sigma2 == 0 or ab_t == 1:
        return z_prime.clone() if sigma2 == 0 else z0_y.clone()
    mu = (sigma2 * ab_t ** 0.5 * z0_y + (1 - ab_t) * z_prime) / (sigma2 + 1 - ab_t)
    v = sigma2 * (1 - ab_t) / (sigma2 + 1 - ab_t)
    if noise is None:
        raise ValueError("stochastic_resample needs a noise tensor (N(0, I), z0_y's shape)")
    return mu + v ** 0.5 * noise


def latent_consistency(y: torch.Tensor, operator, decode, z_init: torch.Tensor, iters: int = 30, lr: float = 0.05,
                       sigma_y: float = 0.0, stats: dict | None = None) -> torch.Tensor:
    """Hard data consistency in latent space: argmin_z sum_b ||y_b - A(decode(z_b))||^2 by `iters` Adam
    steps of size lr from z_init: (B, c, h, w); it stops early once every sample's residual is at
    the noise level (||r||^2 <= m sigma_y^2, m measurements per sample), which keeps the solution
    from fitting the noise (their early stopping). Returns z: (B, c, h, w), detached."""
    iters, lr = check_int("iters", iters, lo=0), check_real("lr", lr, lo=0, lo_open=True)
    z = z_init.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    m = rows(y).shape[1]
    with torch.enable_grad():
        for _ in range(iters):
            r2 = rows(y - operator.A(decode(z))).pow(2).sum(1)                  # (B,)
            if stats is not None:
                stats["decoder_calls"] = stats.get("decoder_calls", 0) + 1
            if bool((r2 <= m * sigma_y ** 2).all()):
                break
            opt.zero_grad(set_to_none=True)
            r2.sum().backward()
            opt.step()
    return z.detach()


def pixel_consistency(y: torch.Tensor, operator, decode, encode, z_init: torch.Tensor, lam: float = 0.1,
                      iters: int = 20, stats: dict | None = None) -> torch.Tensor:
    """Hard data consistency in pixel space, then back to the latent: x = argmin ||y - A x||^2 +
    lam ||x - decode(z_init)||^2 by conjugate gradients on (A^T A + lam I) x = A^T y + lam x_init
    (their eq. 9 with a quadratic proximity term), z = encode(x). Linear A only. z_init: (B, c, h, w)."""
    from ..inverse.operators import conjugate_gradient
    check_operator(operator, linear=True, who="pixel_consistency")
    lam = check_real("lam", lam, lo=0, lo_open=True)
    with torch.no_grad():
        x_init = decode(z_init)
        x = conjugate_gradient(lambda v: operator.A_adjoint(operator.A(v)) + lam * v,
                               operator.A_adjoint(y) + lam * x_init, x0=x_init, iters=iters)
        if stats is not None:
            stats["decoder_calls"] = stats.get("decoder_calls", 0) + 1
            stats["encoder_calls"] = stats.get("encoder_calls", 0) + 1
        return encode(x.clamp(-1, 1))


def _consistency_entries(n: int, every: int, skip: float) -> set:
    """The entries C of the respaced schedule (n entries, i = n-1 .. 0) where hard data
    consistency runs: every `every`-th entry, after the first `skip` fraction of the steps, not at
    the last step (i = 0, where the sample is z_0 itself)."""
    if every == 0:
        return set()
    first = int(round((1 - skip) * n))                    # entries i < first are past the skipped part
    return {i for i in range(1, min(first, n)) if i % every == 0}


def resample(y: torch.Tensor, operator, ldm, *, steps: int = 50, zeta: float = 1.0, eta: float = 0.0,
             every: int = 5, skip: float = 0.3, gamma: float = 40.0, space: str = "latent",
             opt_iters: int = 30, opt_lr: float = 0.05, sigma_y: float = 0.0, lam: float = 0.1,
             z_T: torch.Tensor | None = None, generator: torch.Generator | None = None,
             return_trajectory: bool = False, callback=None, stats: dict | None = None):
    """ReSample (Song et al. 2024, Algorithm 1; module doc) with a LatentDiffusion `ldm`
    (diffedu.medical.latent: .prior a Denoiser over latents, .decode, .encode, .latent_shape).

    y: (B, *out_shape) measurements of images (B, C, H, W) = ldm.decode(z)'s shape; operator: any
    diffedu.inverse Operator, differentiable in its input (linear for space="pixel").
    steps: DDIM steps of the prior's schedule; eta: DDIM's eta; zeta: latent DPS step scale
    (zeta_i = zeta / ||r||; 0 switches it off); every: hard data consistency every `every` entries
    (0: never, which leaves latent DPS) after the first `skip` fraction; gamma: the resampling
    variance scale; space: "latent" (Adam on z, opt_iters steps of opt_lr, early stop at sigma_y)
    or "pixel" (CG with proximity weight lam, then encode). z_T: (B, c, h, w) start.
    Returns the images x: (B, C, H, W) = decode(z_0), or (x, zs (S+1, B, c, h, w), z0_hats (S, ...))
    with return_trajectory. `stats`, a dict, receives the counts 'prior_calls', 'decoder_calls'
    ('encoder_calls' for pixel space) and 'consistency_steps'.
    """
    check_operator(operator, linear=space == "pixel", who="ReSample")
    check_choice("space", space, ("latent", "pixel"))
    zeta, eta = check_nonneg("zeta", zeta), check_nonneg("eta", eta, upper=1.0)
    every, steps = check_int("every", every, lo=0), check_int("steps", steps, lo=1)
    skip = check_real("skip", skip, lo=0, hi=1)
    gamma = check_nonneg("gamma", gamma)
    sigma_y = check_nonneg("sigma_y", sigma_y)
    y = check_tensor("y", operator._check_y(y), nonempty=True, finite=True)
    D = ldm.prior
    sched = D.schedule.respace(steps)
    ab, ts = sched.alpha_bar.tolist(), sched.timesteps.tolist()
    if z_T is None:
        z_T = torch.randn((len(y), *ldm.latent_shape), generator=generator)
    check_tensor("z_T", z_T, ndim=4, finite=True)
    if len(z_T) != len(y):
        raise ValueError(f"z_T and y must have the same batch size, got {len(z_T)} and {len(y)}")
    C = _consistency_entries(len(sched), every, skip)
    st = stats if stats is not None else {}
    for k in ("prior_calls", "decoder_calls", "consistency_steps"):
        st[k] = 0

    def step(z, i, t, ab_t, ab_prev, noise):
        # 1. Tweedie with the graph through the prior and the decoder (Alg. 1, lines 3-4)
        with torch.enable_grad():
            zi = z.detach().requires_grad_(True)
            z0, eps = D.x0_eps(zi, t, alpha_bar=ab_t)
            r2 = rows(y - operator.A(ldm.decode(z0))).pow(2).sum(1)                 # (B,)
            grad = torch.autograd.grad(r2.sum(), zi)[0] if zeta > 0 else None
        st["prior_calls"] += 1
        st["decoder_calls"] += 1
        z0, eps = z0.detach(), eps.detach()
        # 2. unconditional DDIM step to the next level (Alg. 1, line 5)
        z_prev = ddim_step(z, z0, eps, ab_t, ab_prev, eta, noise if eta > 0 else None)
        # 3. latent DPS step, zeta_i = zeta / ||r|| (Alg. 1, line 6)
        rnorm = r2.detach().sqrt()
        if grad is not None:
            z_prev = z_prev - (zeta / rnorm.clamp_min(1e-12)).reshape(-1, 1, 1, 1).to(z.dtype) * grad
        if i in C:
            # 4. Tweedie at the new level, then hard data consistency (Alg. 1, lines 8-9)
            t_prev = torch.full_like(t, ts[i - 1])
            with torch.no_grad():
                z0p = D.x0_eps(z_prev, t_prev, alpha_bar=ab_prev)[0]
            st["prior_calls"] += 1
            if space == "latent":
                z0y = latent_consistency(y, operator, ldm.decode, z0p, opt_iters, opt_lr, sigma_y, st)
            else:
                z0y = pixel_consistency(y, operator, ldm.decode, ldm.encode, z0p, lam, opt_iters, st)
            # 5. stochastic resampling back to the level ab_prev (Alg. 1, line 10; their Sec. 3.2)
            ab_next = ab[i - 2] if i >= 2 else 1.0
            sigma2 = resample_variance(ab_prev, ab_next, gamma)
            noise2 = torch.randn(z.shape, generator=generator, dtype=z.dtype).to(z.device)
            z_prev = stochastic_resample(z0y, z_prev, ab_prev, sigma2, noise2)
            st["consistency_steps"] += 1
        return z_prev.detach(), z0, {"residual": rnorm}

    out = reverse_loop(step, z_T, sched, generator=generator, return_trajectory=return_trajectory,
                       callback=callback, needs_noise=eta > 0)
    with torch.no_grad():
        if return_trajectory:
            z, zs, z0s = out
            return ldm.decode(z), zs, z0s
        st["decoder_calls"] += 1
        return ldm.decode(out)
