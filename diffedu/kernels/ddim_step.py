"""One DDIM / DDPM step from a model's output, in torch, and the fused-kernel dispatcher.

Scope: the plain-torch reference `ddim_step_torch` and the public `ddim_step_fused`. The
Triton kernel beside it (`ddim_step_triton.py`) reads xt, the model output and (optionally)
noise once and writes x_prev and x0_hat once: one pass over memory, where the torch
reference makes a dozen passes (one per elementwise operation).

Notation (Song et al. 2021, "Denoising Diffusion Implicit Models", DDIM):
    xt         : (B, ...) current sample, xt = a x0 + s eps
    alpha_bar_t, alpha_bar_prev : noise levels of this step and of the one it moves to
                 (floats, or (B,) tensors: one level per sample)
    a, s       = sqrt(alpha_bar_t), sqrt(1 - alpha_bar_t)
    model_out  : what the network predicts, `prediction`:
                   "eps": eps            -> x0_hat = (xt - s eps) / a
                   "x0" : x0             -> eps_hat = (xt - a x0) / s
                   "v"  : v = a eps - s x0 -> x0_hat = a xt - s v,  eps_hat = s xt + a v
    clip       : optional, x0_hat <- clamp(x0_hat, -clip, clip), then eps_hat is recomputed
                 from the clipped x0_hat so that xt = a x0_hat + s eps_hat still holds
    sigma      = eta sqrt((1 - alpha_bar_prev) / (1 - alpha_bar_t))
                     * sqrt(1 - alpha_bar_t / alpha_bar_prev)          (eq. 16)
                 eta = 0: deterministic DDIM; eta = 1: DDPM ancestral sampling
    x_prev     = sqrt(alpha_bar_prev) x0_hat + sqrt(1 - alpha_bar_prev - sigma^2) eps_hat + sigma z
                 (eq. 12), z ~ N(0, I)

Randomness: z is the `noise` tensor if given (then the kernel and the reference agree to
round-off), else drawn from `seed` (torch: a torch.Generator; Triton: tl.randn, a different
generator, so the two agree in distribution only), else from torch's global generator.
With eta = 0 no noise is drawn. With eta = 0, alpha_bar_prev < alpha_bar_t is allowed
(DDIM inversion: the same update run towards more noise).
"""
from __future__ import annotations

import torch

from .._validate import check_choice, check_tensor
from ._dispatch import resolve_backend, same_device

__all__ = ["ddim_step_fused", "ddim_step_torch", "PREDICTIONS"]

PREDICTIONS = ("eps", "x0", "v")


def _level(name, value, B, device):
    """A noise level as a (B,) float64 tensor; raises on a bad type or shape."""
    if isinstance(value, torch.Tensor):
        check_tensor(name, value, ndim=(0, 1))
        if value.ndim == 1 and value.shape[0] != B:
            raise ValueError(f"{name} must be a float or a (B,) = ({B},) tensor (one level per "
                             f"sample), got shape {tuple(value.shape)}")
        return value.to(device=device, dtype=torch.float64).expand(B)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return torch.full((B,), float(value), dtype=torch.float64, device=device)
    raise TypeError(f"{name} must be a float or a (B,) tensor, got {type(value).__name__}")


def _check_inputs(xt, model_out, alpha_bar_t, alpha_bar_prev, eta, prediction, noise, seed, clip):
    """Validate; return (alpha_bar_t, alpha_bar_prev) as (B,) float64 tensors and eta, clip."""
    check_tensor("xt", xt)
    check_tensor("model_out", model_out)
    if model_out.shape != xt.shape:
        raise ValueError(f"model_out must have the shape of xt {tuple(xt.shape)}, "
                         f"got {tuple(model_out.shape)}")
    same_device(xt=xt, model_out=model_out)
    check_choice("prediction", prediction, set(PREDICTIONS))
    if isinstance(eta, bool) or not isinstance(eta, (int, float)) or not eta >= 0:
        raise ValueError(f"eta must be a number >= 0 (0: DDIM, 1: DDPM), got {eta!r}")
    if clip is not None and (isinstance(clip, bool) or not isinstance(clip, (int, float))
                             or not clip > 0):
        raise ValueError(f"clip must be None or a number > 0, got {clip!r}")
    if noise is not None:
        check_tensor("noise", noise)
        if noise.shape != xt.shape:
            raise ValueError(f"noise must have the shape of xt {tuple(xt.shape)}, "
                             f"got {tuple(noise.shape)}")
        same_device(xt=xt, noise=noise)
        if seed is not None:
            raise ValueError("give either noise or seed, not both")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)
                             or not 0 <= seed < 2**31):
        raise ValueError(f"seed must be None or an integer in [0, 2**31), got {seed!r}")
    B = xt.shape[0] if xt.ndim > 0 else 1
    ab_t = _level("alpha_bar_t", alpha_bar_t, B, xt.device)
    ab_prev = _level("alpha_bar_prev", alpha_bar_prev, B, xt.device)
    if B > 0:
        if not bool(((ab_t > 0) & (ab_t < 1)).all()):
            raise ValueError(f"alpha_bar_t must lie in (0, 1), got values in "
                             f"[{ab_t.min().item():.4g}, {ab_t.max().item():.4g}]")
        if not bool(((ab_prev > 0) & (ab_prev <= 1)).all()):
            raise ValueError(f"alpha_bar_prev must lie in (0, 1], got values in "
                             f"[{ab_prev.min().item():.4g}, {ab_prev.max().item():.4g}]")
        if eta > 0 and not bool((ab_prev >= ab_t).all()):
            raise ValueError("with eta > 0, alpha_bar_prev must be >= alpha_bar_t (the step goes "
                             "towards less noise); only eta = 0 can run backwards (inversion)")
    return ab_t, ab_prev, float(eta), (None if clip is None else float(clip))


def ddim_step_torch(xt, model_out, alpha_bar_t, alpha_bar_prev, eta=0.0, prediction="eps",
                    noise=None, seed=None, clip=None):
    """One DDIM(eta) step in plain torch; returns (x_prev, x0_hat), each shaped like xt.

    xt, model_out, noise: (B, ...); alpha_bar_t, alpha_bar_prev: float or (B,).
    Arguments and math: see the module docstring. Computes in float32 (float64 for float64
    inputs) and returns xt's dtype.
    """
    ab_t, ab_prev, eta, clip = _check_inputs(xt, model_out, alpha_bar_t, alpha_bar_prev, eta,
                                             prediction, noise, seed, clip)
    dt = torch.float64 if xt.dtype == torch.float64 else torch.float32
    per_sample = (-1,) + (1,) * max(xt.ndim - 1, 0)   # (B, 1, 1, ...) broadcasts over a sample
    ab_t = ab_t.to(dt).reshape(per_sample if xt.ndim else ())
    ab_prev = ab_prev.to(dt).reshape(per_sample if xt.ndim else ())
    x, out = xt.to(dt), model_out.to(dt)
    z = None
    if eta > 0:
        if noise is not None:
            z = noise.to(dt)
        else:
            gen = None
            if seed is not None:
                gen = torch.Generator(device=xt.device).manual_seed(seed)
            z = torch.randn(xt.shape, generator=gen, dtype=dt, device=xt.device)
    x_prev, x0 = _ddim_core(x, out, ab_t, ab_prev, eta, prediction, clip, z)
    return x_prev.to(xt.dtype), x0.to(xt.dtype)


def _ddim_core(x, out, ab_t, ab_prev, eta, prediction, clip, z):
    """The math of `ddim_step_torch` on checked tensors of one float dtype.

    x, out, z: (B, ...) (z None: no noise); ab_t, ab_prev: broadcastable to x, e.g.
    (B, 1, ..., 1); eta: float; prediction: "eps" | "x0" | "v"; clip: float or None.
    """
    # 1. signal and noise scales of xt
    a, s = ab_t.sqrt(), (1 - ab_t).sqrt()
    # 2. x0_hat and eps_hat from whatever the model predicts
    if prediction == "eps":
        eps = out
        x0 = (x - s * eps) / a
    elif prediction == "x0":
        x0 = out
        eps = (x - a * x0) / s
    else:  # "v"
        x0 = a * x - s * out
        eps = s * x + a * out
    # 3. optional clipping of x0_hat; eps_hat follows so that xt = a x0_hat + s eps_hat
    if clip is not None:
        x0 = x0.clamp(-clip, clip)
        eps = (x - a * x0) / s
    # 4. noise scale of the step (DDIM eq. 16); clamp guards round-off at ab_prev == ab_t
    sigma = eta * ((1 - ab_prev) / (1 - ab_t)).sqrt() * (1 - ab_t / ab_prev).clamp_min(0).sqrt()
    # 5. the update (DDIM eq. 12): predicted x0, "direction pointing to xt", fresh noise z
    x_prev = ab_prev.sqrt() * x0 + (1 - ab_prev - sigma ** 2).clamp_min(0).sqrt() * eps
    if z is not None:
        x_prev = x_prev + sigma * z
    return x_prev, x0


def ddim_step_fused(xt, model_out, alpha_bar_t, alpha_bar_prev, eta=0.0, prediction="eps",
                    noise=None, seed=None, clip=None, backend="auto"):
    """One DDIM(eta) / DDPM (eta = 1) step in one fused kernel; returns (x_prev, x0_hat).

    xt, model_out: (B, ...) any shape (flattened inside); alpha_bar_t, alpha_bar_prev: floats
    or (B,) tensors; prediction: "eps" | "x0" | "v"; noise: (B, ...) or None; seed: int or
    None (used when noise is None and eta > 0); clip: None or c > 0 to clamp x0_hat to [-c, c].
    backend: "auto" | "torch" | "triton" (see `diffedu.kernels`).
    """
    _check_inputs(xt, model_out, alpha_bar_t, alpha_bar_prev, eta, prediction, noise, seed, clip)
    tensors = [xt, model_out] + ([noise] if noise is not None else [])
    if resolve_backend(backend, *tensors) == "triton":
        from .ddim_step_triton import ddim_step_triton
        return ddim_step_triton(xt, model_out, alpha_bar_t, alpha_bar_prev, eta, prediction,
                                noise, seed, clip)
    return ddim_step_torch(xt, model_out, alpha_bar_t, alpha_bar_prev, eta, prediction,
                           noise, seed, clip)
