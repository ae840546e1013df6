"""Exact log-likelihood of a diffusion model through its probability-flow ODE (Song et al.
2021, appendix D.2; the instantaneous change of variables of Chen et al. 2018).

A score function is any score_fn(x, t) of diffedu.sde (an exact Gaussian-mixture score,
`sde.gmm_score_fn`, or a trained denoiser's, `sde.denoiser_score_fn`).
"""
from __future__ import annotations

import torch

from ._validate import check_callable, check_choice, check_positive_int, check_real, check_tensor, checked, rows
from .sde import SDE, _check_sde, pf_ode_drift

__all__ = ["log_likelihood"]


def _drift_div(score_fn, x, t, sde, probes):
    """PF-ODE drift and its divergence at (x, t): exact (probes None, one autograd pass per
    dimension) or Hutchinson's estimate mean_k z_k^T (d drift / dx) z_k."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        d, _ = pf_ode_drift(score_fn, x, t, sde)
        if probes is None:
            flat = rows(d)
            div = sum(rows(torch.autograd.grad(flat[:, j].sum(), x, retain_graph=True)[0])[:, j]
                      for j in range(flat.shape[1]))
        else:
            div = sum(rows(torch.autograd.grad((d * z).sum(), x, retain_graph=True)[0] * z).sum(1)
                      for z in probes) / len(probes)
    return d.detach(), div.detach()


def log_likelihood(score_fn, x0: torch.Tensor, sde: SDE, steps: int = 100, exact_divergence: bool = True,
                   hutchinson_samples: int = 1, generator: torch.Generator | None = None,
                   method: str = "heun", t_min: float = 1e-5, prior_log_prob=None, return_latent: bool = False):
    """log p(x0) by the instantaneous change of variables along the PF-ODE (Song et al. 2021,
    eq. 39; Chen et al. 2018). x0: (B, ...); returns (B,) (and x_1 with return_latent).

    Notation: d(x)/dt = f~(x, t) (the PF-ODE drift), d(log p_t(x_t))/dt = -div f~(x_t, t), so
        log p_{t_min}(x0) = log p_1(x_1) + int_{t_min}^1 div f~(x_t, t) dt,
    integrated forward from x_{t_min} = x0 with `method` ("euler", "heun" or "rk4") in `steps`
    steps. The divergence is exact (autograd, one pass per dimension: for low dimensions) or
    Hutchinson's estimate with `hutchinson_samples` Rademacher probes held fixed along the path
    (for images). log p_1 is sde.prior_log_prob unless `prior_log_prob(z) -> (B,)` is given;
    the two small errors are p_{t_min} != p_0 and p_1 != prior."""
    score_fn = checked(check_callable("score_fn", score_fn, "score_fn(x, t) -> (B, ...) like x"), "score_fn")
    check_tensor("x0", x0, min_ndim=2, nonempty=True, finite=True)
    _check_sde(sde)
    check_positive_int("steps", steps)
    check_positive_int("hutchinson_samples", hutchinson_samples)
    check_choice("method", method, ("euler", "heun", "rk4"))
    t_min = check_real("t_min", t_min)
    if prior_log_prob is not None:
        check_callable("prior_log_prob", prior_log_prob, "prior_log_prob(z) -> (B,)")
    if not 0 <= t_min < 1:
        raise ValueError(f"t_min must lie in [0, 1), got {t_min}")
    probes = None
    if not exact_divergence:
        probes = [(torch.randint(0, 2, x0.shape, generator=generator) * 2 - 1).to(x0.device, x0.dtype)
                  for _ in range(hutchinson_samples)]
    f = lambda x, t: _drift_div(score_fn, x, t, sde, probes)
    ts = torch.linspace(t_min, 1.0, steps + 1, dtype=torch.float64).tolist()
    x, delta = x0.detach(), torch.zeros(len(x0), dtype=x0.dtype, device=x0.device)
    for t, tn in zip(ts[:-1], ts[1:]):
        h = tn - t
        d1, v1 = f(x, t)
        if method == "euler":
            x, delta = x + h * d1, delta + h * v1
        elif method == "heun":
            d2, v2 = f(x + h * d1, tn)
            x, delta = x + 0.5 * h * (d1 + d2), delta + 0.5 * h * (v1 + v2)
        else:
            d2, v2 = f(x + 0.5 * h * d1, t + 0.5 * h)
            d3, v3 = f(x + 0.5 * h * d2, t + 0.5 * h)
            d4, v4 = f(x + h * d3, tn)
            x = x + h / 6 * (d1 + 2 * d2 + 2 * d3 + d4)
            delta = delta + h / 6 * (v1 + 2 * v2 + 2 * v3 + v4)
    prior = sde.prior_log_prob if prior_log_prob is None else prior_log_prob
    logp = prior(x).to(delta.dtype) + delta
    bad = ~torch.isfinite(logp)
    if bool(bad.any()):        # one check at the end: which rows, and the likely cause
        raise ValueError(f"log_likelihood became NaN or inf for rows {bad.nonzero()[:, 0].tolist()[:8]}: "
                         f"check score_fn there (its values must be finite) and steps / t_min")
    return (logp, x) if return_latent else logp
