"""Score-based generative modelling through SDEs (Song et al. 2021): the continuous-time view.

Notation (t in [0, 1]; every SDE here is linear, dx = f(t) x dt + g(t) dw):
    p_t(x_t | x_0) = N(m(t) x_0, s(t)^2 I)         m: mean coefficient, s: std (`marginal`)
    VP      beta(t) = beta_min + t (beta_max - beta_min),  B(t) = int_0^t beta
            f = -beta/2,  g = sqrt(beta),  m = exp(-B/2),  s^2 = 1 - exp(-B)   (eq. 11, 29)
            so alpha_bar(t) = exp(-B(t)): DDPM's linear schedule in the limit T -> inf
    sub-VP  f = -beta/2,  g = sqrt(beta (1 - exp(-2B))),  m = exp(-B/2),  s = 1 - exp(-B)  (eq. 12)
    VE      sigma(t) = sigma_min (sigma_max / sigma_min)^t,  f = 0,
            g = sigma(t) sqrt(2 log(sigma_max / sigma_min)),  m = 1,  s = sigma(t)      (eq. 9, 30)
            (as in Song's code, p_0 is the data blurred by sigma_min)
    reverse SDE   dx = [f x - g^2 score(x, t)] dt + g dw_bar      (eq. 6, t running 1 -> 0)
    PF-ODE        dx/dt = f x - g^2 score(x, t) / 2                (eq. 13)
    score(x, t) = grad_x log p_t(x); Tweedie: E[x_0 | x_t] = (x_t + s^2 score) / m
Every x_t = m x_0 + s n is a VP x_t scaled by c = sqrt(m^2 + s^2), with equivalent
alpha_bar = m^2 / c^2: the bridge to a denoiser of a discrete schedule (`denoiser_score_fn`,
through the contract's one level rule `Denoiser.at_level`; flow.denoiser_velocity_fn too).
The exact likelihood through the PF-ODE is in likelihood.py.

A score function is any callable score_fn(x, t) with x: (B, ...) and t: (B,) float times.
Samplers: fn(score_fn, x_T, sde, steps, generator=None, return_trajectory=False, callback=None)
over `steps` steps of the grid t = 1 -> t_min; the last step adds no noise. They return x_0,
or (x_0, xs (S+1, B, ...), x0_hats (S, B, ...)); callback gets {'x', 'i', 't', 'denoised'}.
"""
from __future__ import annotations

import math

import torch

from ._validate import (check_callable, check_choice, check_int, check_output, check_positive_int, check_positive_range, check_real,
                        check_tensor, checked, rows)
from .exact.gmm import GaussianMixture
from .denoiser import level_denoiser
from .times import as_t, per_time
from .samplers import Trace
from .schedules import NoiseSchedule


# -- the SDEs -------------------------------------------------------------------------------
class SDE:
    """A linear SDE dx = f(t) x dt + g(t) dw on t in [0, 1] with Gaussian perturbation kernel
    p_t(x | x_0) = N(m(t) x_0, s(t)^2 I). Subclasses define `_f`, `_g2`, `_m_s` on float64 t."""
    name = "sde"
    t_min = 1e-3        # where sampling stops (Song et al.: 1e-3 for VP, 1e-5 for VE)

    def _f(self, t):  # drift coefficient f(t) (drift = f(t) x)
        raise NotImplementedError

    def _g2(self, t):  # squared diffusion g(t)^2
        raise NotImplementedError

    def _m_s(self, t):  # (m(t), s(t))
        raise NotImplementedError

    def drift(self, x: torch.Tensor, t) -> torch.Tensor:
        """f(x, t) = f(t) x; x: (B, ...), t: float or (B,)."""
        check_tensor("x", x, min_ndim=1)
        return as_t(self._f(as_t(t)), x) * x

    def diffusion(self, t) -> torch.Tensor:
        """g(t) (float64, shaped like t)."""
        return self._g2(as_t(t)).sqrt()

    def marginal(self, t):
        """(m(t), s(t)): p_t(x_t | x_0) = N(m x_0, s^2 I); float64 tensors shaped like t."""
        return self._m_s(as_t(t))

    def alpha_bar(self, t) -> torch.Tensor:
        """The equivalent VP alpha_bar = m^2 / (m^2 + s^2) of x_t / sqrt(m^2 + s^2)."""
        m, s = self.marginal(t)
        return m ** 2 / (m ** 2 + s ** 2)

    def prior_std(self) -> float:
        return 1.0

    def prior_sample(self, shape, generator: torch.Generator | None = None, dtype=torch.float32) -> torch.Tensor:
        """x_T ~ N(0, prior_std^2 I) of the given shape (B, ...)."""
        if isinstance(shape, torch.Size):
            shape = tuple(shape)
        if not isinstance(shape, (tuple, list)) or not shape or \
                any(isinstance(n, bool) or not isinstance(n, int) or n < 0 for n in shape):
            raise TypeError(f"shape must be a tuple of integers >= 0, (B, ...), got {shape!r}")
        return self.prior_std() * torch.randn(tuple(shape), generator=generator, dtype=dtype)

    def prior_log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log N(z; 0, prior_std^2 I) summed over all but the batch dimension: (B,)."""
        sd = self.prior_std()
        check_tensor("z", z, min_ndim=1)
        n = math.prod(z.shape[1:])
        return -0.5 * (rows(z) ** 2).sum(1) / sd ** 2 - n * math.log(sd) - 0.5 * n * math.log(2 * math.pi)

    def to_schedule(self, N: int = 1000) -> NoiseSchedule:
        """A discrete schedule with alpha_bar_i = alpha_bar(t_i), t_i = (i + 1) / N (i = 0 .. N-1)."""
        check_positive_int("N", N)
        t = torch.arange(1, N + 1, dtype=torch.float64) / N
        return NoiseSchedule(self.alpha_bar(t), torch.arange(N), f"{self.name}-sde")


class VPSDE(SDE):
    """Variance-preserving SDE (Song et al. 2021, eq. 11): the continuous DDPM."""
    name = "vp"

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0):
        self.beta_min, self.beta_max = check_positive_range("beta_min", beta_min, "beta_max", beta_max)

    def __repr__(self):
        return f"{type(self).__name__}(beta_min={self.beta_min}, beta_max={self.beta_max})"

    def beta(self, t):
        return self.beta_min + as_t(t) * (self.beta_max - self.beta_min)

    def int_beta(self, t):
        """B(t) = int_0^t beta(u) du = beta_min t + t^2 (beta_max - beta_min) / 2."""
        t = as_t(t)
        return self.beta_min * t + 0.5 * t ** 2 * (self.beta_max - self.beta_min)

    def _f(self, t):
        return -0.5 * self.beta(t)

    def _g2(self, t):
        return self.beta(t)

    def _m_s(self, t):
        B = self.int_beta(t)
        return torch.exp(-0.5 * B), (-torch.expm1(-B)).sqrt()


class SubVPSDE(VPSDE):
    """sub-VP SDE (Song et al. 2021, eq. 12): the VP drift, with a smaller diffusion."""
    name = "subvp"

    def _g2(self, t):
        return self.beta(t) * (-torch.expm1(-2 * self.int_beta(t)))

    def _m_s(self, t):
        B = self.int_beta(t)
        return torch.exp(-0.5 * B), -torch.expm1(-B)


class VESDE(SDE):
    """Variance-exploding SDE (Song et al. 2021, eq. 9): the continuous SMLD / NCSN."""
    name = "ve"
    t_min = 1e-5

    def __init__(self, sigma_min: float = 0.01, sigma_max: float = 50.0):
        self.sigma_min, self.sigma_max = check_positive_range("sigma_min", sigma_min, "sigma_max", sigma_max)

    def __repr__(self):
        return f"VESDE(sigma_min={self.sigma_min}, sigma_max={self.sigma_max})"

    def sigma(self, t):
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** as_t(t)

    def _f(self, t):
        return torch.zeros_like(t)

    def _g2(self, t):
        return self.sigma(t) ** 2 * 2 * math.log(self.sigma_max / self.sigma_min)

    def _m_s(self, t):
        return torch.ones_like(t), self.sigma(t)

    def prior_std(self) -> float:
        return self.sigma_max


SDES = {"vp": VPSDE, "subvp": SubVPSDE, "ve": VESDE}


def get_sde(name: str, **kwargs) -> SDE:
    """SDE by name: 'vp', 'subvp' or 've'."""
    if not isinstance(name, str):
        raise TypeError(f"sde name must be a str, one of {sorted(SDES)}, got {type(name).__name__}")
    check_choice("sde", name, SDES)
    return SDES[name](**kwargs)


def _check_sde(sde):
    if not isinstance(sde, SDE):
        raise TypeError(f"sde must be an SDE (VPSDE, SubVPSDE, VESDE; see diffedu.sde), got {type(sde).__name__}")


# -- score functions: exact (Gaussian mixture) and from a discrete-time denoiser -------------
def gmm_marginal(gmm: GaussianMixture, sde: SDE, t: float) -> GaussianMixture:
    """The exact law p_t of x_t = m(t) x_0 + s(t) n for x_0 ~ gmm: the mixture with means
    m mu_k and covariances m^2 Sigma_k + s^2 I (for VP this is gmm.noisy(alpha_bar(t)))."""
    _check_sde(sde)
    if not isinstance(gmm, GaussianMixture):
        raise TypeError(f"gmm must be a GaussianMixture, got {type(gmm).__name__}")
    m, s = (float(v) for v in sde.marginal(check_real("t", t, lo=0, hi=1)))
    eye = torch.eye(gmm.D, dtype=torch.float64)
    return GaussianMixture(gmm.weights, m * gmm.means, m ** 2 * gmm.covs + s ** 2 * eye, gmm.labels)


def gmm_score_fn(gmm: GaussianMixture, sde: SDE):
    """The exact score(x, t) = grad log p_t(x) of a Gaussian mixture under `sde`; x: (B, D),
    t: float or (B,) in [0, 1]. Differentiable in x (log_likelihood needs its divergence)."""
    if not isinstance(gmm, GaussianMixture):
        raise TypeError(f"gmm must be a GaussianMixture, got {type(gmm).__name__}")
    _check_sde(sde)
    return lambda x, t: per_time(lambda xs, tv: gmm_marginal(gmm, sde, tv).score(xs), x, t)


def denoiser_score_fn(denoiser, sde: SDE, schedule: NoiseSchedule | None = None, interpolate: bool = True):
    """score(x, t) of `sde` from a denoiser D(x_t, t_int) of a discrete `schedule` (default:
    denoiser.schedule, as param.Denoiser has). x: (B, ...), t: float or (B,) in (0, 1].

    1. c = sqrt(m^2 + s^2), alpha_bar = m^2 / c^2: x / c is a VP sample at that alpha_bar.
    2. eps_hat of the denoiser at that alpha_bar (`Denoiser.at_level`: the two neighbouring
       entries of the schedule mixed linearly in log-SNR, or the nearest with interpolate=False).
    3. score = grad log p_t(x) = grad_x log p_vp(x / c) / c = -eps_hat / (c sqrt(1 - alpha_bar)) = -eps_hat / s.
    Below the schedule's smallest noise level the denoiser is only known at that level, so the
    score is held at its value there (dividing eps_hat by the true, smaller s would inflate it)."""
    _check_sde(sde)
    D = level_denoiser(denoiser, schedule)
    ab_max = float(D.schedule.alpha_bar.max())

    def score(x, tv):
        m, s = (float(v) for v in sde.marginal(tv))
        if s == 0:
            raise ValueError(f"the score at t = {tv} (noise std 0) is not defined by a denoiser; use t > 0")
        c = math.hypot(m, s)
        ab = m ** 2 / c ** 2
        ab = min(ab, ab_max)             # below the smallest level: held there (see above)
        return -D.at_level(x / c, ab, interpolate=interpolate)[1] / (c * (1 - ab) ** 0.5)

    return lambda x, t: per_time(score, x, t)


def tweedie_x0(x: torch.Tensor, score: torch.Tensor, t, sde: SDE) -> torch.Tensor:
    """E[x_0 | x_t] = (x_t + s(t)^2 score) / m(t) (Tweedie's formula for x_t = m x_0 + s n)."""
    _check_sde(sde)
    _check_pair(x, score=score)
    m, s = sde.marginal(as_t(t))
    return (x + as_t(s ** 2, x) * score) / as_t(m, x)


# -- samplers -------------------------------------------------------------------------------
def time_grid(sde: SDE, steps: int, t_min: float | None = None) -> torch.Tensor:
    """steps + 1 times from 1 down to t_min (default sde.t_min), evenly spaced (float64)."""
    _check_sde(sde)
    check_positive_int("steps", steps)
    t_min = sde.t_min if t_min is None else check_real("t_min", t_min)
    if not 0 <= t_min < 1:
        raise ValueError(f"t_min must lie in [0, 1), got {t_min}")
    return torch.linspace(1.0, t_min, steps + 1, dtype=torch.float64)


def _tb(t: float, x: torch.Tensor) -> torch.Tensor:
    return torch.full((len(x),), float(t), dtype=x.dtype, device=x.device)


def pf_ode_drift(score_fn, x: torch.Tensor, t: float, sde: SDE):
    """(dx/dt, score) of the probability-flow ODE dx/dt = f(t) x - g(t)^2 score(x, t) / 2 (eq. 13)."""
    _check_sde(sde)
    check_tensor("x", x, min_ndim=1)
    score = check_output("score_fn", check_callable("score_fn", score_fn, "score_fn(x, t)")(x, _tb(t, x)), x)
    return sde.drift(x, t) - 0.5 * as_t(sde._g2(as_t(t)), x) * score, score


def reverse_sde_step(x: torch.Tensor, score: torch.Tensor, t: float, t_next: float, sde: SDE,
                     noise: torch.Tensor | None):
    """One Euler-Maruyama step of the reverse SDE from t to t_next < t (dt = t_next - t < 0):
        x_mean = x + [f(t) x - g(t)^2 score] dt,   x_next = x_mean + g(t) sqrt(-dt) z.
    Returns (x_next, x_mean); noise=None gives x_next = x_mean."""
    _check_sde(sde)
    _check_pair(x, score=score, noise=noise)
    dt = t_next - t
    g2 = as_t(sde._g2(as_t(t)), x)
    x_mean = x + (sde.drift(x, t) - g2 * score) * dt
    return (x_mean if noise is None else x_mean + (g2 * -dt).sqrt() * noise), x_mean


def _discretize(sde: SDE, t: float, t_next: float):
    """The exact forward transition t_next -> t, x_t = r x_{t_next} + G z:  r = m(t) / m(t_next),
    G^2 = s(t)^2 - r^2 s(t_next)^2 (for VP: r = sqrt(1 - beta_i), G^2 = beta_i, DDPM's step; for
    VE: r = 1, G^2 = sigma_i^2 - sigma_{i-1}^2, SMLD's)."""
    (m, s), (mn, sn) = sde.marginal(float(t)), sde.marginal(float(t_next))
    r = float(m / mn)
    return r, max(float(s ** 2 - r ** 2 * sn ** 2), 0.0)


def reverse_diffusion_step(x: torch.Tensor, score: torch.Tensor, t: float, t_next: float, sde: SDE,
                           noise: torch.Tensor | None):
    """Reverse-diffusion predictor (Song et al. 2021, eq. 46-47): with the forward step
    x_t = r x_{t_next} + G z, x_next = x - (r - 1) x + G^2 score + G z. Returns (x_next, x_mean)."""
    _check_sde(sde)
    _check_pair(x, score=score, noise=noise)
    r, G2 = _discretize(sde, t, t_next)
    x_mean = x - (r - 1) * x + G2 * score
    return (x_mean if noise is None else x_mean + G2 ** 0.5 * noise), x_mean


def langevin_step(x: torch.Tensor, score: torch.Tensor, snr: float, noise: torch.Tensor, alpha: float = 1.0):
    """One Langevin corrector step (Song et al. 2021, Algorithms 4 and 5):
        eps = 2 alpha (snr ||z|| / ||score||)^2,  x <- x + eps score + sqrt(2 eps) z,
    with the norms averaged over the batch (as the authors' code), over its finite rows only, so
    that one NaN row cannot make the whole batch NaN. Returns (x_next, x_mean)."""
    check_tensor("noise", noise)
    _check_pair(x, score=score, noise=noise)
    snr, alpha = check_real("snr", snr, lo=0, lo_open=True), check_real("alpha", alpha, lo=0, lo_open=True)
    g_norm = _finite_mean(rows(score).norm(dim=1))
    z_norm = _finite_mean(rows(noise).norm(dim=1))
    step = 2 * alpha * (snr * z_norm / g_norm.clamp_min(1e-12)) ** 2
    x_mean = x + step * score
    return x_mean + (2 * step).sqrt() * noise, x_mean


def _finite_mean(v: torch.Tensor) -> torch.Tensor:
    """Mean of the finite entries of v (0 if none): a batch statistic one bad row cannot poison."""
    ok = torch.isfinite(v)
    return torch.where(ok, v, torch.zeros_like(v)).sum() / ok.sum().clamp_min(1)


def _check_pair(x, noise=None, **others):
    """Step functions: x a float tensor, and every other tensor (score; noise unless None) shaped like it."""
    check_tensor("x", x)
    for name, v in (*others.items(), ("noise", noise)):
        if (v is not None or name != "noise") and check_tensor(name, v).shape != x.shape:
            raise ValueError(f"{name} has shape {tuple(v.shape)} but x has {tuple(x.shape)}; they must match")


def _noise(x, generator):
    return torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)


def _score_fn(score_fn):
    """The user's score_fn(x, t), checked on every call: a tensor shaped and typed like x."""
    return checked(check_callable("score_fn", score_fn, "score_fn(x, t) -> (B, ...) like x"), "score_fn")


def _run(step, score_fn, x_T, sde, steps, t_min, return_trajectory, callback):
    """Shared loop: step(x, t, t_next, last) -> (x_next, score at (x, t))."""
    check_tensor("x_T", x_T, min_ndim=2, nonempty=True, finite=True)
    _check_sde(sde)
    ts = time_grid(sde, steps, t_min).tolist()
    x, trace = x_T, Trace(x_T, return_trajectory, callback, source="score_fn")
    for i in range(steps):
        t, t_next = ts[i], ts[i + 1]
        with torch.no_grad():
            x_new, score = step(x, t, t_next, i == steps - 1)
            x0 = tweedie_x0(x, score, t, sde)
        x = x_new
        trace(x, x0, i, t=t)
    return trace.result(x)


def reverse_sde_euler_maruyama(score_fn, x_T: torch.Tensor, sde: SDE, steps: int = 500,
                               generator: torch.Generator | None = None, return_trajectory: bool = False,
                               callback=None, t_min: float | None = None):
    """Reverse-time SDE, Euler-Maruyama (Song et al. 2021, eq. 6; Appendix D). x_T: (B, ...)."""
    score_fn = _score_fn(score_fn)

    def step(x, t, t_next, last):
        score = score_fn(x, _tb(t, x))
        return reverse_sde_step(x, score, t, t_next, sde, None if last else _noise(x, generator))[0], score
    return _run(step, score_fn, x_T, sde, steps, t_min, return_trajectory, callback)


def pf_ode_euler(score_fn, x_T: torch.Tensor, sde: SDE, steps: int = 100, generator=None,
                 return_trajectory: bool = False, callback=None, t_min: float | None = None):
    """Probability-flow ODE (Song et al. 2021, eq. 13), Euler's method. x_T: (B, ...)."""
    score_fn = _score_fn(score_fn)

    def step(x, t, t_next, last):
        d, score = pf_ode_drift(score_fn, x, t, sde)
        return x + (t_next - t) * d, score
    return _run(step, score_fn, x_T, sde, steps, t_min, return_trajectory, callback)


def pf_ode_heun(score_fn, x_T: torch.Tensor, sde: SDE, steps: int = 50, generator=None,
                return_trajectory: bool = False, callback=None, t_min: float | None = None):
    """Probability-flow ODE (Song et al. 2021, eq. 13), Heun's 2nd-order method (Karras et al.
    2022, Algorithm 1, in t). x_T: (B, ...); 2 score evaluations per step."""
    score_fn = _score_fn(score_fn)

    def step(x, t, t_next, last):
        h = t_next - t
        d1, score = pf_ode_drift(score_fn, x, t, sde)     # 1. Euler predictor
        d2, _ = pf_ode_drift(score_fn, x + h * d1, t_next, sde)
        return x + 0.5 * h * (d1 + d2), score              # 2. trapezoidal corrector
    return _run(step, score_fn, x_T, sde, steps, t_min, return_trajectory, callback)


def predictor_corrector(score_fn, x_T: torch.Tensor, sde: SDE, steps: int = 500,
                        generator: torch.Generator | None = None, return_trajectory: bool = False,
                        callback=None, snr: float = 0.16, n_corrector: int = 1, t_min: float | None = None):
    """Predictor-corrector sampling (Song et al. 2021, appendix G: Algorithm 1, PC sampling; Algorithms
    2 (VE) and 3 (VP) with the reverse-diffusion predictor; the Langevin corrector is Algorithms 4-5): reverse-diffusion
    predictor and `n_corrector` Langevin steps with signal-to-noise ratio `snr`. x_T: (B, ...)."""
    score_fn = _score_fn(score_fn)
    snr = check_real("snr", snr, lo=0, lo_open=True)
    n_corrector = check_int("n_corrector", n_corrector, lo=0)

    def step(x, t, t_next, last):
        # 1. corrector: Langevin MCMC at fixed t (alpha_i = 1 - beta_i for VP, 1 otherwise)
        r, _ = _discretize(sde, t, t_next)
        alpha = r ** 2 if type(sde) is VPSDE else 1.0
        for _ in range(n_corrector):
            x = langevin_step(x, score_fn(x, _tb(t, x)), snr, _noise(x, generator), alpha)[0]
        # 2. predictor: one reverse-diffusion step t -> t_next (its mean on the last step)
        score = score_fn(x, _tb(t, x))
        return reverse_diffusion_step(x, score, t, t_next, sde, None if last else _noise(x, generator))[0], score
    return _run(step, score_fn, x_T, sde, steps, t_min, return_trajectory, callback)


SDE_SAMPLERS = {"euler_maruyama": reverse_sde_euler_maruyama, "pf_ode_euler": pf_ode_euler,
                "pf_ode_heun": pf_ode_heun, "pc": predictor_corrector}
