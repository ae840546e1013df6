"""Consistency models (Song, Dhariwal, Chen & Sutskever 2023, "Consistency models"; and the
improved recipe iCT, Song & Dhariwal 2023, "Improved techniques for training consistency models").

Where this leaves the discrete contract, and why. A consistency function f(x_sigma, sigma) maps
every point of one probability-flow ODE trajectory to its start, for EVERY noise level sigma
in [eps, sigma_max]; its training compares two neighbouring levels of a grid that changes during
training (the N(k) curriculum). So it works in sigma, EDM style (x_sigma = x0 + sigma n, the
variance-exploding view of the same process: x_t = sqrt(alpha_bar) x_sigma, alpha_bar =
1 / (1 + sigma^2)), and reaches a diffedu teacher through common.level_teacher (Denoiser.at_level,
the one rule NoiseSchedule.locate; exact for a Gaussian mixture).

Notation (CM paper, section 3 and Appendix C; sigma_d = std of the data):
    c_skip(sigma) = sigma_d^2 / ((sigma - eps)^2 + sigma_d^2)
    c_out(sigma)  = sigma_d (sigma - eps) / sqrt(sigma_d^2 + sigma^2)
    c_in(sigma)   = 1 / sqrt(sigma^2 + sigma_d^2)
    f(x, sigma)   = c_skip x + c_out F(c_in x, c_noise(sigma)),  so f(x, eps) = x exactly
    Karras grid   sigma_i = (eps^(1/rho) + (i-1)/(N-1) (T^(1/rho) - eps^(1/rho)))^rho, i = 1..N
    PF-ODE        dx / dsigma = (x - D(x, sigma)) / sigma
CD  (Algorithm 2): x_{n+1} = x0 + sigma_{n+1} z; x^_n = Heun(teacher) from sigma_{n+1} to sigma_n;
     L = || f_theta(x_{n+1}, sigma_{n+1}) - f_theta-(x^_n, sigma_n) ||^2, theta- = EMA(theta, mu).
CT  (Algorithm 3): x^_n = x0 + sigma_n z (same z: the teacher's step replaced by the exact one-sample
     estimate); N(k) = ceil(sqrt(k/K ((s1+1)^2 - s0^2) + s0^2) - 1) + 1, mu(k) = exp(s0 log mu0 / N(k)).
iCT: theta- = stopgrad(theta) (no EMA), pseudo-Huber d = sqrt(|a - b|^2 + c^2) - c on the whole
     vector (c = 0.00054 sqrt(D)), weight 1 / (sigma_{n+1} - sigma_n), n drawn from the lognormal
     p(n) ∝ erf((log sigma_{n+1} - P_mean) / (sqrt2 P_std)) - erf((log sigma_n - P_mean) / (sqrt2 P_std)),
     N(k) = min(s0 2^floor(k / K'), s1) + 1, K' = floor(K / (log2(s1 / s0) + 1)).
"""
from __future__ import annotations

import math

import torch

from .._validate import check_int, check_positive_int, check_real
from ..schedules import karras_sigmas
from ..train.fit import ema_update, fit
from .common import LevelMLP, level_teacher

__all__ = ["EPS", "SIGMA_MAX", "boundary", "ConsistencyModel", "karras_grid", "heun_step", "cd_loss", "ct_loss",
           "ict_loss", "ct_schedule", "ict_schedule", "lognormal_index", "pseudo_huber", "sigma_teacher",
           "consistency_distill", "consistency_train", "cm_sample"]

EPS, SIGMA_MAX, RHO = 0.002, 80.0, 7.0          # the CM paper's eps, T and rho (as EDM)


def _col(v, x):
    return torch.as_tensor(v, dtype=x.dtype, device=x.device).reshape(-1, *([1] * (x.ndim - 1)))


def boundary(sigma, sigma_d: float, eps: float = EPS):
    """(c_skip, c_out, c_in) at sigma (tensor or float): f(x, eps) = x since c_skip(eps) = 1, c_out(eps) = 0."""
    sigma = torch.as_tensor(sigma, dtype=torch.float64)
    c_skip = sigma_d ** 2 / ((sigma - eps) ** 2 + sigma_d ** 2)
    c_out = sigma_d * (sigma - eps) / (sigma_d ** 2 + sigma ** 2).sqrt()
    c_in = 1 / (sigma ** 2 + sigma_d ** 2).sqrt()
    return c_skip, c_out, c_in


class ConsistencyModel(torch.nn.Module):
    """f(x, sigma) = c_skip(sigma) x + c_out(sigma) F(c_in(sigma) x, c_noise(sigma)); x: (B, D),
    sigma: (B,) or a float in [eps, sigma_max]. F: a LevelMLP; its level input c_noise maps
    log sigma from [log eps, log sigma_max] onto [0, 1000]."""

    def __init__(self, sigma_d: float = 1.0, dim: int = 2, hidden: int = 128, depth: int = 3):
        super().__init__()
        self.sigma_d = check_real("sigma_d", sigma_d, lo=0, lo_open=True)
        self.net = LevelMLP(dim=dim, hidden=hidden, depth=depth, prediction="x0")

    def forward(self, x, sigma):
        sigma = torch.as_tensor(sigma, dtype=torch.float64).reshape(-1).expand(len(x))
        if bool((sigma < EPS - 1e-12).any()):
            raise ValueError(f"sigma must be >= eps = {EPS}, got {float(sigma.min())}")
        c_skip, c_out, c_in = boundary(sigma, self.sigma_d)
        level = 1000 * (sigma.log() - math.log(EPS)) / (math.log(SIGMA_MAX) - math.log(EPS))
        F = self.net(_col(c_in, x) * x, level.to(x.dtype))
        return _col(c_skip, x) * x + _col(c_out, x) * F


def karras_grid(N: int) -> torch.Tensor:
    """The N Karras levels sigma_1 = eps < ... < sigma_N = T (CM paper's increasing order), float64."""
    return karras_sigmas(check_int("N", N, lo=2), EPS, SIGMA_MAX, RHO).flip(0)


def sigma_teacher(teacher):
    """D(x, sigma (B,)) = E[x0 | x0 + sigma n = x] from any teacher level_teacher accepts:
    alpha_bar = 1 / (1 + sigma^2), x_t = sqrt(alpha_bar) x (denoiser.sigma_denoiser's rule, per row)."""
    lt = level_teacher(teacher)

    def D(x, sigma):
        ab = 1 / (1 + torch.as_tensor(sigma, dtype=torch.float64).reshape(-1) ** 2)
        return lt(x * _col(ab.sqrt(), x), ab)
    return D


def heun_step(D, x, s_from, s_to):
    """One Heun step of dx/dsigma = (x - D(x, sigma)) / sigma from s_from to s_to ((B,) tensors) (EDM, Alg. 1)."""
    h = _col(s_to - s_from, x)
    d1 = (x - D(x, s_from)) / _col(s_from, x)
    x_e = x + h * d1
    d2 = (x_e - D(x_e, s_to)) / _col(s_to, x)
    return x + h * 0.5 * (d1 + d2)


def pseudo_huber(a, b, c: float):
    """sqrt(||a - b||^2 + c^2) - c per row, on the whole vector (iCT, section 3.3). a, b: (B, D) -> (B,)."""
    return (((a - b) ** 2).flatten(1).sum(1) + c ** 2).sqrt() - c


def cd_loss(model, target_model, D, x0, N, generator=None):
    """Consistency distillation (Algorithm 2), squared L2 metric, uniform n."""
    sig = karras_grid(N)
    n = torch.randint(0, N - 1, (len(x0),), generator=generator)
    s_n, s_np1 = sig[n], sig[n + 1]
    x_np1 = x0 + _col(s_np1, x0) * torch.randn(x0.shape, generator=generator).to(x0)
    with torch.no_grad():
        x_n = heun_step(D, x_np1, s_np1, s_n)
        target = target_model(x_n, s_n)
    return ((model(x_np1, s_np1) - target) ** 2).sum(1).mean()


def ct_schedule(k: int, K: int, s0: int = 2, s1: int = 150, mu0: float = 0.9):
    """(N(k), mu(k)) of consistency training (CM paper, Appendix C)."""
    N = math.ceil(math.sqrt(k / K * ((s1 + 1) ** 2 - s0 ** 2) + s0 ** 2) - 1) + 1
    return N, math.exp(s0 * math.log(mu0) / N)


def ct_loss(model, target_model, x0, N, generator=None):
    """Consistency training (Algorithm 3): the same z at both levels, squared L2, uniform n."""
    sig = karras_grid(N)
    n = torch.randint(0, N - 1, (len(x0),), generator=generator)
    z = torch.randn(x0.shape, generator=generator).to(x0)
    with torch.no_grad():
        target = target_model(x0 + _col(sig[n], x0) * z, sig[n])
    return ((model(x0 + _col(sig[n + 1], x0) * z, sig[n + 1]) - target) ** 2).sum(1).mean()


def ict_schedule(k: int, K: int, s0: int = 10, s1: int = 1280) -> int:
    """N(k) of iCT: s0 doubled every K' steps up to s1, plus one."""
    Kp = max(1, math.floor(K / (math.log2(s1 // s0) + 1)))
    return min(s0 * 2 ** (k // Kp), s1) + 1


def lognormal_index(N: int, B: int, generator=None, p_mean: float = -1.1, p_std: float = 2.0) -> torch.Tensor:
    """n (B,) in [0, N-2] with p(n) ∝ erf((log s_{n+1} - P_mean)/(sqrt2 P_std)) - erf((log s_n - P_mean)/(sqrt2 P_std))."""
    ls = karras_grid(N).log()
    p = torch.erf((ls[1:] - p_mean) / (math.sqrt(2) * p_std)) - torch.erf((ls[:-1] - p_mean) / (math.sqrt(2) * p_std))
    return torch.multinomial(p, B, replacement=True, generator=generator)


def ict_loss(model, x0, N, generator=None):
    """iCT: no EMA teacher (stop-gradient of the model itself), pseudo-Huber, lognormal n, 1/(s_{n+1} - s_n)."""
    sig = karras_grid(N)
    n = lognormal_index(N, len(x0), generator)
    z = torch.randn(x0.shape, generator=generator).to(x0)
    with torch.no_grad():
        target = model(x0 + _col(sig[n], x0) * z, sig[n])
    c = 0.00054 * math.sqrt(x0[0].numel())
    lam = (1 / (sig[n + 1] - sig[n])).to(x0)
    return (lam * pseudo_huber(model(x0 + _col(sig[n + 1], x0) * z, sig[n + 1]), target, c)).mean()


def _sampler(data):
    if isinstance(data, torch.Tensor):
        return lambda n, g: data[torch.randint(0, len(data), (n,), generator=g)]
    if hasattr(data, "sample"):
        return lambda n, g: data.sample(n, g)
    raise TypeError(f"data must be a (M, D) tensor or a GaussianMixture, got {type(data).__name__}")


def consistency_distill(teacher, data, N: int = 18, mu: float = 0.95, steps: int = 4000, batch_size: int = 512,
                        lr: float = 1e-3, seed: int = 0, progress: bool = False, hidden: int = 128, depth: int = 3):
    """CD from `teacher` (GaussianMixture or Denoiser) on `data` ((M, D) tensor or mixture); N Karras
    levels, target EMA rate mu. Returns (model (fit's EMA weights), losses)."""
    D = sigma_teacher(teacher)                              # TypeError for a non-denoiser
    return _train("cd", data, steps, batch_size, lr, seed, progress, hidden, depth, D=D, N=N, mu=mu)


def consistency_train(data, method: str = "ct", steps: int = 4000, batch_size: int = 512, lr: float = 1e-3,
                      seed: int = 0, progress: bool = False, hidden: int = 128, depth: int = 3, s0=None, s1=None):
    """Consistency training without a teacher: method "ct" (N(k) curriculum, adaptive EMA target)
    or "ict" (doubling curriculum, no EMA target, pseudo-Huber, lognormal levels). s0, s1: the
    curriculum's first and last grid sizes (default: the papers', 2 / 150 for CT, 10 / 1280 for iCT)."""
    if method not in ("ct", "ict"):
        raise ValueError(f"method must be 'ct' or 'ict', got {method!r}")
    s0 = s0 or (2 if method == "ct" else 10)
    s1 = s1 or (150 if method == "ct" else 1280)
    return _train(method, data, steps, batch_size, lr, seed, progress, hidden, depth, s0=s0, s1=s1)


def _train(method, data, steps, batch_size, lr, seed, progress, hidden, depth, D=None, N=18, mu=0.95, s0=2, s1=150):
    check_positive_int("steps", steps)
    seed = check_int("seed", seed, lo=0)
    sample = _sampler(data)
    g = torch.Generator().manual_seed(seed)
    ref = sample(4096, g)
    sigma_d = float(ref.var(0).mean().sqrt())
    torch.manual_seed(seed)
    model = ConsistencyModel(sigma_d, dim=ref.shape[1], hidden=hidden, depth=depth)
    target = ConsistencyModel(sigma_d, dim=ref.shape[1], hidden=hidden, depth=depth).requires_grad_(False)
    target.load_state_dict(model.state_dict())
    k = [0]

    def batch_loss():
        x0 = sample(batch_size, g)
        if method == "cd":
            if k[0]:
                ema_update(target, model, mu)
            loss = cd_loss(model, target, D, x0, N, g)
        elif method == "ct":
            n_k, mu_k = ct_schedule(k[0], steps, s0, s1)
            if k[0]:
                ema_update(target, model, mu_k)
            loss = ct_loss(model, target, x0, n_k, g)
        else:
            loss = ict_loss(model, x0, ict_schedule(k[0], steps, s0, s1), g)
        k[0] += 1
        return loss
    ema_model, losses = fit(model, batch_loss, steps, lr, ema=0.999, progress=progress, desc=method)
    ema_model.sigma_d = sigma_d
    return ema_model, losses


@torch.no_grad()
def cm_sample(model, z, sigmas=(SIGMA_MAX,), generator=None):
    """Multistep consistency sampling (CM paper, Algorithm 1) from z ~ N(0, I): (B, D); sigmas:
    decreasing levels, the first = sigma_max (one level = one-step generation)."""
    sigmas = [float(s) for s in sigmas]
    if not sigmas or any(a <= b for a, b in zip(sigmas, sigmas[1:])) or sigmas[-1] < EPS:
        raise ValueError(f"sigmas must be decreasing levels >= eps = {EPS}, got {sigmas}")
    x = model(z * sigmas[0], sigmas[0])
    for s in sigmas[1:]:
        noise = torch.randn(x.shape, generator=generator).to(x)
        x = model(x + math.sqrt(s ** 2 - EPS ** 2) * noise, s)
    return x
