"""A diffusion model used as a prior for inverse problems, without sampling.

Scope: Graikos et al.'s optimisation, which puts a trained diffusion denoiser
D(x_t, t) = E[x_0 | x_t] to work on y = A x + sigma_y n through the one denoiser contract.
(The other way, plugging D into plug-and-play methods as the Gaussian denoiser
D_sigma(v, sigma) of `pnp.py`'s noise-level convention, is not here: that adapter lives in
diffedu/denoiser.py as `dd.sigma_denoiser(D, schedule)`, and reaches the schedule by the one
level rule, `NoiseSchedule.locate` / `nearest` (the entry nearest in log-SNR). Pass its
result to `pnp_hqs`.)

`diffusion_prior_map`: "Diffusion models as plug-and-play priors" (Graikos, Malkin, Jojic
& Samaras, NeurIPS 2022, Algorithm 1 and section 3.1): optimise x itself, by gradient steps,
on the data fidelity plus the diffusion training loss used as -log p(x):
    E(x) = ||y - A x||^2 / (2 sigma_y^2) + lam || eps - eps_hat(sqrt(ab_t) x + sqrt(1 - ab_t) eps, t) ||^2,
with a fresh eps ~ N(0, I) every step and t drawn from a range that shrinks from t_max to
t_min as the optimisation goes on (their annealing: coarse structure first, detail last).
The noise prediction eps_hat is the denoiser's own (`Denoiser.x0_eps`), which for a plain
callable D is eps_hat = (x_t - sqrt(ab_t) D(x_t, t)) / sqrt(1 - ab_t).

Notation
    x : (B, *in_shape)    the unknown (an image (B, C, H, W) or a point (B, D))
    y : (B, *out_shape)   the measurement
    ab_t                  alpha_bar of the schedule at timestep t (`schedule.alpha_bar_of(t)`)
    jacobian=True         the gradient of the prior term goes through the network (Graikos)
    jacobian=False        it does not: grad = 2 lam sqrt(ab_t) (eps_hat - eps), the "score
                          distillation" gradient (DreamFusion, Poole et al. 2023). Averaged
                          over eps it is -2 lam sqrt(ab_t (1 - ab_t)) E[grad log p_t(x_t)],
                          so the iteration climbs the smoothed density: a mode seeker.
"""
from __future__ import annotations

import math

import torch

from .._validate import (check_callable, check_int, check_nonneg, check_operator, check_positive_int, check_real,
                         check_schedule, check_tensor)
from ..denoiser import as_denoiser
from ..schedules import NoiseSchedule
from .operators import LinearOperator, Operator

__all__ = ["diffusion_prior_loss", "diffusion_prior_map", "annealed_timesteps"]


# ----------------------------------------------------------------------------- Graikos et al.

def annealed_timesteps(iters: int, t_min: int, t_max: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """(iters,) long timesteps decreasing from about t_max to t_min: step k draws t uniformly
    in the k-th of `iters` equal slices of [t_min, t_max], top slice first (Graikos et al.'s
    shrinking range, stratified so that the whole range is covered once)."""
    check_positive_int("iters", iters)
    t_min, t_max = check_int("t_min", t_min, lo=0), check_int("t_max", t_max, lo=0)
    if not t_min <= t_max:
        raise ValueError(f"need integers 0 <= t_min <= t_max, got t_min={t_min!r}, t_max={t_max!r}")
    u = (torch.arange(iters, dtype=torch.float64) + torch.rand(iters, generator=generator, dtype=torch.float64)) / iters
    return (t_max - u * (t_max - t_min)).round().long().clamp(t_min, t_max)


def diffusion_prior_loss(denoiser, schedule: NoiseSchedule, x: torch.Tensor, t, eps: torch.Tensor) -> torch.Tensor:
    """The denoising loss as a prior, per sample: ||eps - eps_hat(x_t, t)||^2 summed over
    coordinates, x_t = sqrt(ab_t) x + sqrt(1 - ab_t) eps (Graikos et al. eq. 4).
    x, eps: (B, ...); t: an original timestep of `schedule` (int). Returns (B,)."""
    check_schedule(schedule)
    D = as_denoiser(denoiser, schedule)
    check_tensor("x", x, min_ndim=1)
    if check_tensor("eps", eps).shape != x.shape:
        raise ValueError(f"eps must have the shape of x {tuple(x.shape)}, got {tuple(eps.shape)}")
    t = check_int("t", t)
    ab = float(schedule.alpha_bar_of(t))
    xt = math.sqrt(ab) * x + math.sqrt(1 - ab) * eps
    eps_hat = D.x0_eps(xt, t, alpha_bar=ab)[1]
    return (eps - eps_hat).pow(2).flatten(1).sum(1)


def _snap(schedule: NoiseSchedule, ts: torch.Tensor) -> torch.Tensor:
    """Each timestep of ts: (K,) moved to the nearest original timestep that the (possibly
    respaced) schedule holds, the lower one on a tie."""
    held = schedule.timesteps                                          # (N,) increasing
    if len(held) == 1:
        return held.expand(len(ts))
    hi = torch.searchsorted(held, ts).clamp(1, len(held) - 1)
    lo = hi - 1
    return torch.where(ts - held[lo] <= held[hi] - ts, held[lo], held[hi])


def diffusion_prior_map(y: torch.Tensor, operator: Operator, denoiser, schedule: NoiseSchedule, *, sigma_y: float,
                        lam: float = 1.0, iters: int = 200, lr: float = 0.05, t_min: int | None = None,
                        t_max: int | None = None, jacobian: bool = True, x_init: torch.Tensor | None = None,
                        generator: torch.Generator | None = None, callback=None) -> torch.Tensor:
    """Diffusion model as a plug-and-play prior (Graikos et al. 2022, Algorithm 1): a point
    estimate of x from y = A(x) + sigma_y n. y: (B, *out_shape) -> x: (B, *in_shape).

    denoiser: D(x_t, t) over the original timesteps of `schedule` (a `Denoiser` or a plain
    callable, see `dd.as_denoiser`); operator: any differentiable operator (linear or not);
    sigma_y > 0: the noise std weighting the data term; lam >= 0: the weight of the prior
    term; iters Adam steps of learning rate lr on x (Graikos et al. optimise x with Adam as
    well); timesteps annealed from t_max (default 40% of the schedule) to t_min (default 2%
    of it) by `annealed_timesteps`, each moved to the nearest timestep a respaced schedule
    holds; jacobian: differentiate through the denoiser (True, the paper) or not (False, the
    score-distillation gradient, cheaper and mode-seeking, see the module doc). x_init: the
    start (default A^T y when A maps images to images of the same shape, else A^+ y, as
    `pnp_hqs`; required for a nonlinear A).

    For k = 1..iters:
        1. t_k from the annealed schedule, eps_k ~ N(0, I)
        2. x_t = sqrt(ab) x + sqrt(1 - ab) eps_k;  eps_hat = D.x0_eps(x_t, t_k)[1]
           (= (x_t - sqrt(ab) D(x_t, t_k)) / sqrt(1 - ab) for a plain callable D)
        3. E = ||y - A x||^2 / (2 sigma_y^2) + lam ||eps_k - eps_hat||^2   (summed per sample)
        4. x <- Adam step along grad_x E  (without the denoiser's Jacobian if jacobian=False)
    `callback({'i', 't', 'x', 'data', 'prior'})` after each step (per-sample terms (B,)).
    Returns the final x (detached).
    """
    check_operator(operator, who="diffusion_prior_map")
    y = check_tensor("y", operator._check_y(y), nonempty=True, finite=True)
    check_schedule(schedule)
    D = as_denoiser(denoiser, schedule)
    sigma_y = check_real("sigma_y", sigma_y, lo=0, lo_open=True)
    lam = check_nonneg("lam", lam)
    lr = check_real("lr", lr, lo=0, lo_open=True)
    check_positive_int("iters", iters)
    T = int(schedule.timesteps[-1]) + 1
    t_max = int(0.4 * T) if t_max is None else check_int("t_max", t_max)
    t_min = max(int(0.02 * T), int(schedule.timesteps[0])) if t_min is None else check_int("t_min", t_min)
    if callback is not None:
        check_callable("callback", callback, "callback(info: dict)")
    if not 0 <= t_min <= t_max < T:
        raise ValueError(f"need integers 0 <= t_min <= t_max < T = {T}, got t_min={t_min!r}, t_max={t_max!r}")
    ts = _snap(schedule, annealed_timesteps(iters, t_min, t_max, generator))
    abs_ = schedule.alpha_bar_of(ts)                                   # the schedule's own lookup
    if x_init is not None:
        x = check_tensor("x_init", operator._check_x(x_init, "x_init"), finite=True).detach().clone()
        if len(x) != len(y):
            raise ValueError(f"x_init must have one row per row of y ({len(y)}), got {len(x)}")
    elif isinstance(operator, LinearOperator):  # as pnp_hqs: A^T y for square A (blur: A^+ y is all noise)
        square = operator.in_shape == operator.out_shape
        x = (operator.A_adjoint(y) if square else operator.A_dagger(y)).detach().clone()
    else:
        raise ValueError(f"x_init is required for the nonlinear {type(operator).__name__} "
                         f"(there is no A^+ y to start from)")
    x.requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr)
    for k in range(iters):
        t, ab = int(ts[k]), float(abs_[k])
        a, s = math.sqrt(ab), math.sqrt(1 - ab)
        eps = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)        # 1.
        with torch.enable_grad():
            data = (y - operator.A(x)).pow(2).flatten(1).sum(1) / (2 * sigma_y**2)
            tt = torch.full((len(x),), t, dtype=torch.long, device=x.device)
            if jacobian:
                xt = a * x + s * eps                                                        # 2.
                eps_hat = D.x0_eps(xt, tt, alpha_bar=ab)[1]
                prior = (eps - eps_hat).pow(2).flatten(1).sum(1)                            # 3.
                (grad,) = torch.autograd.grad((data + lam * prior).sum(), x)
            else:
                with torch.no_grad():
                    xt = a * x.detach() + s * eps
                    eps_hat = D.x0_eps(xt, tt, alpha_bar=ab)[1]
                    prior = (eps - eps_hat).pow(2).flatten(1).sum(1)
                (grad,) = torch.autograd.grad(data.sum(), x)
                grad = grad + 2 * lam * a * (eps_hat - eps)
        x.grad = grad.detach()                                                              # 4.
        opt.step()
        if callback is not None:
            callback({"i": k, "t": t, "x": x.detach().clone(), "data": data.detach(), "prior": prior.detach()})
    if not bool(torch.isfinite(x).all()):          # one check at the end, naming the likely cause
        raise ValueError("diffusion_prior_map produced NaN or inf: check the denoiser (its output must be "
                         "finite), lr and sigma_y")
    return x.detach()
