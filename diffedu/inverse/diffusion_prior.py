"""A diffusion model used as a prior for inverse problems, without sampling.

Scope: two ways to put a trained diffusion denoiser D(x_t, t) = E[x_0 | x_t] to work on
y = A x + sigma_y n, both through the one denoiser interface:

1. `diffusion_denoiser(denoiser, schedule)`: the adapter that turns D into the Gaussian
   denoiser of plug-and-play methods (noise-level convention, `pnp.py`): an estimate of
   x from x + sigma n. Since x_t / sqrt(alpha_bar) = x_0 + sigma_t n with
   sigma_t^2 = (1 - alpha_bar) / alpha_bar, the two are the same problem up to a scale:
       alpha_bar = 1 / (1 + sigma^2),   x_t = sqrt(alpha_bar) x,   t = argmin_t |alpha_bar_t - alpha_bar|,
       E[x_0 | x_0 + sigma n = x] = E[x_0 | x_t = sqrt(alpha_bar) x] = D(x_t, t)
   (exact when the schedule contains alpha_bar, as the tests check on Gaussian mixtures).

2. `diffusion_prior_map`: "Diffusion models as plug-and-play priors" (Graikos, Malkin, Jojic
   & Samaras, NeurIPS 2022, Algorithm 1 and section 3.1): optimise x itself, by gradient
   steps, on the data fidelity plus the diffusion training loss used as -log p(x):
       E(x) = ||y - A x||^2 / (2 sigma_y^2) + lam || eps - eps_hat(sqrt(ab_t) x + sqrt(1 - ab_t) eps, t) ||^2,
   with a fresh eps ~ N(0, I) every step and t drawn from a range that shrinks from t_max
   to t_min as the optimisation goes on (their annealing: coarse structure first, detail
   last). The noise prediction is eps_hat = (x_t - sqrt(ab_t) D(x_t, t)) / sqrt(1 - ab_t),
   i.e. `param.Denoiser.eps` for a network.

Notation
    x : (B, *in_shape)    the unknown (an image (B, C, H, W) or a point (B, D))
    y : (B, *out_shape)   the measurement
    ab_t                  alpha_bar of the schedule at timestep t
    jacobian=True         the gradient of the prior term goes through the network (Graikos)
    jacobian=False        it does not: grad = 2 lam sqrt(ab_t) (eps_hat - eps), the "score
                          distillation" gradient (DreamFusion, Poole et al. 2023). Averaged
                          over eps it is -2 lam sqrt(ab_t (1 - ab_t)) E[grad log p_t(x_t)],
                          so the iteration climbs the smoothed density: a mode seeker.
"""
from __future__ import annotations

import math
import numbers

import torch

from .._validate import check_positive_int, check_tensor
from ..schedules import NoiseSchedule
from .operators import LinearOperator, Operator

__all__ = ["diffusion_denoiser", "diffusion_prior_loss", "diffusion_prior_map", "annealed_timesteps"]


def _check_schedule(schedule):
    if not isinstance(schedule, NoiseSchedule):
        raise TypeError(f"schedule must be a diffedu NoiseSchedule (the one the denoiser was "
                        f"trained on), got {type(schedule).__name__}")
    return schedule


def _check_denoiser(denoiser):
    if not callable(denoiser):
        raise TypeError(f"denoiser must be callable as D(x_t, t) -> x0_hat (e.g. dd.to_denoiser(model, "
                        f"schedule) or gmm.as_denoiser(schedule)), got {type(denoiser).__name__}")
    return denoiser


def _number(name, v, lo=None, lo_open=False):
    if isinstance(v, torch.Tensor) and v.numel() == 1:
        v = v.item()
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or math.isnan(v) or math.isinf(v):
        raise ValueError(f"{name} must be a finite number, got {v!r}")
    if lo is not None and (v < lo or (lo_open and v == lo)):
        raise ValueError(f"{name} must be {'>' if lo_open else '>='} {lo}, got {v!r}")
    return float(v)


# ----------------------------------------------------------------------------- the adapter

def diffusion_denoiser(denoiser, schedule: NoiseSchedule):
    """A Gaussian denoiser `D_sigma(x, sigma)` (noise-level convention of `pnp_hqs`) from a
    diffusion denoiser `denoiser(x_t, t)` over the timesteps of `schedule`.

    x: (B, ...) = x_0 + sigma n; sigma: a number >= 0 or a (B,) tensor. For each sample
        1. alpha_bar = 1 / (1 + sigma^2)                     (so sigma^2 = (1 - ab) / ab)
        2. t = the timestep of `schedule` whose alpha_bar_t is nearest alpha_bar
        3. x_t = sqrt(alpha_bar) x                            (= sqrt(ab) x_0 + sqrt(1 - ab) n)
        4. return denoiser(x_t, t)                            (Tweedie: E[x_0 | x_t])
    sigma = 0 returns x unchanged (nothing to remove). Noise levels beyond the schedule's
    range use its end points; the exact answer needs alpha_bar in the schedule.
    The returned function has `.timestep(sigma)` (the t it would use) for inspection.
    """
    _check_denoiser(denoiser)
    schedule = _check_schedule(schedule)
    ab_grid = schedule.alpha_bar                                         # (N,) float64

    def timestep(sigma) -> torch.Tensor:
        s = torch.as_tensor(sigma, dtype=torch.float64).reshape(-1).cpu()
        ab = 1.0 / (1.0 + s**2)                                          # 1.
        idx = (ab_grid[None, :] - ab[:, None]).abs().argmin(1)          # 2.
        return schedule.timesteps[idx]

    def D(x: torch.Tensor, sigma) -> torch.Tensor:
        check_tensor("x", x, min_ndim=2)
        s = torch.as_tensor(sigma, dtype=torch.float64).detach().cpu()
        if s.numel() != 1 and s.shape != (len(x),):
            raise ValueError(f"sigma must be a number or a ({len(x)},) tensor, got shape {tuple(s.shape)}")
        if bool(torch.isnan(s).any()) or bool((s < 0).any()) or bool(torch.isinf(s).any()):
            raise ValueError(f"sigma must be finite and >= 0, got {s.tolist()}")
        s = s.reshape(-1).expand(len(x))
        if bool((s == 0).all()):
            return x
        ab = (1.0 / (1.0 + s**2))
        t = timestep(s).to(x.device)
        xt = ab.sqrt().to(x).reshape((-1,) + (1,) * (x.ndim - 1)) * x    # 3.
        # no graph through the network's weights unless a gradient w.r.t. x is wanted
        with torch.set_grad_enabled(torch.is_grad_enabled() and x.requires_grad):
            if bool((t == t[0]).all()):                                  # one call per noise level
                out = denoiser(xt, t)                                    # 4.
            else:
                out = torch.cat([denoiser(xt[j:j + 1], t[j:j + 1]) for j in range(len(x))])
        return torch.where((s == 0).to(x.device).reshape((-1,) + (1,) * (x.ndim - 1)), x, out)

    D.timestep = timestep
    return D


# ----------------------------------------------------------------------------- Graikos et al.

def annealed_timesteps(iters: int, t_min: int, t_max: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """(iters,) long timesteps decreasing from about t_max to t_min: step k draws t uniformly
    in the k-th of `iters` equal slices of [t_min, t_max], top slice first (Graikos et al.'s
    shrinking range, stratified so that the whole range is covered once)."""
    check_positive_int("iters", iters)
    if not (isinstance(t_min, int) and isinstance(t_max, int)) or not 0 <= t_min <= t_max:
        raise ValueError(f"need integers 0 <= t_min <= t_max, got t_min={t_min!r}, t_max={t_max!r}")
    u = (torch.arange(iters, dtype=torch.float64) + torch.rand(iters, generator=generator, dtype=torch.float64)) / iters
    return (t_max - u * (t_max - t_min)).round().long().clamp(t_min, t_max)


def diffusion_prior_loss(denoiser, schedule: NoiseSchedule, x: torch.Tensor, t, eps: torch.Tensor) -> torch.Tensor:
    """The denoising loss as a prior, per sample: ||eps - eps_hat(x_t, t)||^2 summed over
    coordinates, x_t = sqrt(ab_t) x + sqrt(1 - ab_t) eps (Graikos et al. eq. 4).
    x, eps: (B, ...); t: an original timestep of `schedule` (int). Returns (B,)."""
    _check_denoiser(denoiser)
    schedule = _check_schedule(schedule)
    ab = float(schedule.alpha_bar[schedule.index_of(torch.as_tensor([int(t)]))][0])
    xt = math.sqrt(ab) * x + math.sqrt(1 - ab) * eps
    tt = torch.full((len(x),), int(t), dtype=torch.long, device=x.device)
    x0 = denoiser(xt, tt)
    eps_hat = (xt - math.sqrt(ab) * x0) / math.sqrt(1 - ab)
    return (eps - eps_hat).pow(2).flatten(1).sum(1)


def diffusion_prior_map(y: torch.Tensor, op: Operator, denoiser, schedule: NoiseSchedule, *, sigma_y: float,
                        lam: float = 1.0, iters: int = 200, lr: float = 0.05, t_min: int | None = None,
                        t_max: int | None = None, jacobian: bool = True, x_init: torch.Tensor | None = None,
                        generator: torch.Generator | None = None, callback=None) -> torch.Tensor:
    """Diffusion model as a plug-and-play prior (Graikos et al. 2022, Algorithm 1): a point
    estimate of x from y = A(x) + sigma_y n. y: (B, *out_shape) -> x: (B, *in_shape).

    denoiser: D(x_t, t) over the original timesteps of `schedule`; op: any differentiable
    operator (linear or not); sigma_y > 0: the noise std weighting the data term; lam >= 0:
    the weight of the prior term; iters Adam steps of learning rate lr on x (Graikos et al.
    optimise x with Adam as well); timesteps annealed from t_max (default 40% of the schedule)
    to t_min (default 2% of it) by `annealed_timesteps`; jacobian: differentiate through the
    denoiser (True, the paper) or not (False, the score-distillation gradient, cheaper and
    mode-seeking, see the module doc). x_init: the start (default A^T y when A maps images
    to images of the same shape, else A^+ y, as `pnp_hqs`; required for a nonlinear A).

    For k = 1..iters:
        1. t_k from the annealed schedule, eps_k ~ N(0, I)
        2. x_t = sqrt(ab) x + sqrt(1 - ab) eps_k;  eps_hat = (x_t - sqrt(ab) D(x_t, t_k)) / sqrt(1 - ab)
        3. E = ||y - A x||^2 / (2 sigma_y^2) + lam ||eps_k - eps_hat||^2   (summed per sample)
        4. x <- Adam step along grad_x E  (without the denoiser's Jacobian if jacobian=False)
    `callback({'i', 't', 'x', 'data', 'prior'})` after each step (per-sample terms (B,)).
    Returns the final x (detached).
    """
    if not isinstance(op, Operator):
        raise TypeError(f"op must be a diffedu.inverse Operator, got {type(op).__name__}")
    y = op._check_y(y)
    _check_denoiser(denoiser)
    schedule = _check_schedule(schedule)
    sigma_y = _number("sigma_y", sigma_y, 0.0, lo_open=True)
    lam = _number("lam", lam, 0.0)
    lr = _number("lr", lr, 0.0, lo_open=True)
    check_positive_int("iters", iters)
    T = int(schedule.timesteps[-1]) + 1
    t_max = int(0.4 * T) if t_max is None else t_max
    t_min = max(int(0.02 * T), int(schedule.timesteps[0])) if t_min is None else t_min
    if not isinstance(t_max, int) or not isinstance(t_min, int) or not 0 <= t_min <= t_max < T:
        raise ValueError(f"need integers 0 <= t_min <= t_max < T = {T}, got t_min={t_min!r}, t_max={t_max!r}")
    ts = annealed_timesteps(iters, t_min, t_max, generator)
    # snap to timesteps present in a (possibly respaced) schedule
    pos = (schedule.timesteps[None, :] - ts[:, None]).abs().argmin(1)
    ts, abs_ = schedule.timesteps[pos], schedule.alpha_bar[pos]
    if x_init is not None:
        x = op._check_x(x_init, "x_init").detach().clone()
    elif isinstance(op, LinearOperator):       # as pnp_hqs: A^T y for square A (blur: A^+ y is all noise)
        x = (op.A_adjoint(y) if op.in_shape == op.out_shape else op.A_dagger(y)).detach().clone()
    else:
        raise ValueError(f"x_init is required for the nonlinear {type(op).__name__} (there is no A^+ y to start from)")
    x.requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr)
    for k in range(iters):
        t, ab = int(ts[k]), float(abs_[k])
        a, s = math.sqrt(ab), math.sqrt(1 - ab)
        eps = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)        # 1.
        with torch.enable_grad():
            data = (y - op.A(x)).pow(2).flatten(1).sum(1) / (2 * sigma_y**2)
            tt = torch.full((len(x),), t, dtype=torch.long, device=x.device)
            if jacobian:
                xt = a * x + s * eps                                                        # 2.
                eps_hat = (xt - a * denoiser(xt, tt)) / s
                prior = (eps - eps_hat).pow(2).flatten(1).sum(1)                            # 3.
                (grad,) = torch.autograd.grad((data + lam * prior).sum(), x)
            else:
                with torch.no_grad():
                    xt = a * x.detach() + s * eps
                    eps_hat = (xt - a * denoiser(xt, tt)) / s
                    prior = (eps - eps_hat).pow(2).flatten(1).sum(1)
                (grad,) = torch.autograd.grad(data.sum(), x)
                grad = grad + 2 * lam * a * (eps_hat - eps)
        x.grad = grad.detach()                                                              # 4.
        opt.step()
        if callback is not None:
            callback({"i": k, "t": t, "x": x.detach().clone(), "data": data.detach(), "prior": prior.detach()})
    return x.detach()
