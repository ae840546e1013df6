"""Flow matching (Lipman et al. 2023) and rectified flow (Liu et al. 2023): learn the velocity of
an interpolation between data and noise, sample by integrating an ODE from noise to data.

Notation (tau in [0, 1], tau = 0 data, tau = 1 noise, as param.py's "velocity"):
    x_tau = alpha(tau) x0 + sigma(tau) x1,   x0 ~ data, x1 ~ N(0, I)      (a conditional path)
    u(x_tau | x0, x1) = alpha'(tau) x0 + sigma'(tau) x1                   (its velocity)
    linear / rectified   alpha = 1 - tau,          sigma = tau,          u = x1 - x0
    cosine (VP)          alpha = cos(pi tau / 2),  sigma = sin(pi tau / 2)  (alpha^2 + sigma^2 = 1)
    marginal velocity    u(x, tau) = E[u(x_tau | x0, x1) | x_tau = x]
                                   = alpha' E[x0 | x] + sigma' E[x1 | x]   (Lipman et al. Thm. 1)
    CFM loss             E_{tau, x0, x1} || u_theta(x_tau, tau) - u(x_tau | x0, x1) ||^2  (eq. 9)
Any path is a scaled VP path: x_tau / c with c = sqrt(alpha^2 + sigma^2) has alpha_bar =
alpha^2 / c^2, so the exact denoiser of a GaussianMixture gives the exact marginal velocity.
A velocity function is any callable u(x, tau), x: (B, ...), tau: (B,) floats; a network trained
here is called as model(x, tau * t_scale) (t_scale = 1000 suits nets.MLPDenoiser's embedding).
"""
from __future__ import annotations

import math

import torch

from ._validate import check_callable, check_choice, check_output, check_positive_int, check_real, check_tensor, checked
from .exact.gmm import GaussianMixture
from .samplers import Trace
from .denoiser import level_denoiser
from .times import as_t, check_times, per_time


# -- paths ----------------------------------------------------------------------------------
class Path:
    """An interpolation x_tau = alpha(tau) x0 + sigma(tau) x1; subclasses give alpha, sigma and
    their derivatives on float64 tensors."""
    name = "path"

    def alpha(self, tau):
        raise NotImplementedError

    def sigma(self, tau):
        raise NotImplementedError

    def d_alpha(self, tau):
        raise NotImplementedError

    def d_sigma(self, tau):
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}()"

    def _coef(self, tau, x):
        tau = as_t(tau)
        return [as_t(f(tau), x) for f in (self.alpha, self.sigma, self.d_alpha, self.d_sigma)]

    def sample(self, x0: torch.Tensor, x1: torch.Tensor, tau):
        """(x_tau, u): the point on the path and its conditional velocity; x0, x1: (B, ...), tau: (B,)."""
        _same_shape(x0=x0, x1=x1)
        a, s, da, ds = self._coef(tau, x0)
        return a * x0 + s * x1, da * x0 + ds * x1

    def velocity_from_x0(self, x: torch.Tensor, x0_hat: torch.Tensor, tau) -> torch.Tensor:
        """u = alpha' x0_hat + sigma' (x - alpha x0_hat) / sigma: the marginal velocity from a denoiser."""
        _same_shape(x=x, x0_hat=x0_hat)
        a, s, da, ds = self._coef(tau, x)
        return da * x0_hat + ds * (x - a * x0_hat) / s

    def x0_from_velocity(self, x: torch.Tensor, u: torch.Tensor, tau) -> torch.Tensor:
        """E[x0 | x_tau] = (sigma u - sigma' x) / (alpha' sigma - sigma' alpha) (inverts velocity_from_x0)."""
        _same_shape(x=x, u=u)
        a, s, da, ds = self._coef(tau, x)
        return (s * u - ds * x) / (da * s - ds * a)

    def vp_equivalent(self, tau):
        """(c, alpha_bar): x_tau / c is a VP sample sqrt(ab) x0 + sqrt(1 - ab) x1 (float64)."""
        a, s = self.alpha(as_t(tau)), self.sigma(as_t(tau))
        c = torch.sqrt(a ** 2 + s ** 2)
        return c, (a / c) ** 2


def _same_shape(**tensors):
    (n0, t0), *rest = tensors.items()
    check_tensor(n0, t0, min_ndim=1)
    for name, t in rest:
        if check_tensor(name, t).shape != t0.shape:
            raise ValueError(f"{name} has shape {tuple(t.shape)} but {n0} has {tuple(t0.shape)}; they must match")


class LinearPath(Path):
    """Rectified flow / conditional OT path (Liu et al. 2023; Lipman et al. 2023, eq. 20 with sigma_min = 0)."""
    name = "linear"
    alpha = staticmethod(lambda tau: 1 - tau)
    sigma = staticmethod(lambda tau: tau)
    d_alpha = staticmethod(lambda tau: -torch.ones_like(tau))
    d_sigma = staticmethod(lambda tau: torch.ones_like(tau))


class CosinePath(Path):
    """Variance-preserving trigonometric path alpha = cos(pi tau / 2), sigma = sin(pi tau / 2)
    (alpha^2 + sigma^2 = 1: the cosine schedule's interpolation, as in Albergo & Vanden-Eijnden 2023)."""
    name = "cosine"
    alpha = staticmethod(lambda tau: torch.cos(0.5 * math.pi * tau))
    sigma = staticmethod(lambda tau: torch.sin(0.5 * math.pi * tau))
    d_alpha = staticmethod(lambda tau: -0.5 * math.pi * torch.sin(0.5 * math.pi * tau))
    d_sigma = staticmethod(lambda tau: 0.5 * math.pi * torch.cos(0.5 * math.pi * tau))


PATHS = {"linear": LinearPath, "rectified": LinearPath, "cosine": CosinePath, "vp": CosinePath}


def get_path(path) -> Path:
    """A Path from a name ('linear' = 'rectified', 'cosine' = 'vp') or a Path itself."""
    if isinstance(path, Path):
        return path
    if not isinstance(path, str):
        raise TypeError(f"path must be a Path or one of {sorted(PATHS)}, got {type(path).__name__}")
    check_choice("path", path, PATHS)
    return PATHS[path]()


# -- exact marginals and velocities of a Gaussian mixture ------------------------------------
def gmm_path_marginal(gmm: GaussianMixture, path, tau: float) -> GaussianMixture:
    """The law of x_tau for x0 ~ gmm: means alpha mu_k, covariances alpha^2 Sigma_k + sigma^2 I."""
    if not isinstance(gmm, GaussianMixture):
        raise TypeError(f"gmm must be a GaussianMixture, got {type(gmm).__name__}")
    p = get_path(path)
    tau = check_real("tau", tau, lo=0, hi=1)
    a, s = float(p.alpha(as_t(tau))), float(p.sigma(as_t(tau)))
    eye = torch.eye(gmm.D, dtype=torch.float64)
    return GaussianMixture(gmm.weights, a * gmm.means, a ** 2 * gmm.covs + s ** 2 * eye, gmm.labels)


def gmm_velocity(gmm: GaussianMixture, path="linear"):
    """The exact marginal velocity u(x, tau) = alpha' E[x0 | x] + sigma' E[x1 | x] of `gmm` on `path`.
    x: (B, D), tau: float or (B,) in [0, 1]. With c, ab = path.vp_equivalent(tau), x / c is a VP
    sample, so E[x0 | x] = gmm.denoiser(x / c, ab) and E[x1 | x] = -sqrt(1 - ab) gmm.score_t(x / c, ab)
    (Tweedie for the noise; no division, so tau = 0 is fine). For the linear path this is
    (x - E[x0 | x]) / tau."""
    if not isinstance(gmm, GaussianMixture):
        raise TypeError(f"gmm must be a GaussianMixture, got {type(gmm).__name__}")
    p = get_path(path)

    def u(x, tau):
        c, ab = (float(v) for v in p.vp_equivalent(tau))
        ab = min(max(ab, 1e-30), 1.0)                 # tau = 1 on the linear path: alpha = 0
        xv = x / c
        x0 = gmm.denoiser(xv, ab)
        x1 = -(1 - ab) ** 0.5 * gmm.score_t(xv, ab)
        tt = as_t(tau)
        return float(p.d_alpha(tt)) * x0 + float(p.d_sigma(tt)) * x1

    return lambda x, tau: per_time(u, x, tau, "tau")


def denoiser_velocity_fn(denoiser, path="linear", schedule=None, interpolate: bool = True):
    """The marginal velocity u(x, tau) = alpha' x0_hat + sigma' eps_hat of `path` from a denoiser
    of a discrete schedule (a diffusion model sampled as a flow): x / c is a VP sample at
    alpha_bar = alpha^2 / c^2, reached by the contract's one level rule (`Denoiser.at_level`)."""
    p = get_path(path)
    D = level_denoiser(denoiser, schedule)

    def u(x, tau):
        c, ab = (float(v) for v in p.vp_equivalent(tau))
        x0, eps = D.at_level(x / c, ab, interpolate=interpolate)
        tt = as_t(tau)
        return float(p.d_alpha(tt)) * x0 + float(p.d_sigma(tt)) * eps

    return lambda x, tau: per_time(u, x, tau, "tau")


def model_velocity(model, t_scale: float = 1000.0, cond=None):
    """u(x, tau) = model(x, tau * t_scale[, cond]): a trained flow network as a velocity function."""
    check_callable("model", model, "model(x, t[, cond])")
    t_scale = check_real("t_scale", t_scale, lo=0, lo_open=True)

    def u(x, tau):
        tau = check_times(tau, x, "tau").to(dtype=x.dtype, device=x.device)
        return model(x, tau * t_scale) if cond is None else model(x, tau * t_scale, cond)
    return u


# -- training -------------------------------------------------------------------------------
def cfm_loss(model, x0: torch.Tensor, path="linear", generator: torch.Generator | None = None,
             x1: torch.Tensor | None = None, cond=None, t_scale: float = 1000.0) -> torch.Tensor:
    """Conditional flow matching loss (Lipman et al. 2023, eq. 9 / Liu et al. 2023, eq. 1) on x0: (B, ...).
    x1: paired noise (B, ...) (reflow); default fresh N(0, I) (the independent coupling)."""
    check_callable("model", model, "model(x, t[, cond])")
    check_tensor("x0", x0, min_ndim=2, nonempty=True, finite=True)    # one bad row would make the loss NaN
    t_scale = check_real("t_scale", t_scale, lo=0, lo_open=True)
    p = get_path(path)
    B = len(x0)
    # 1. tau ~ U(0, 1), x1 ~ N(0, I) unless given (then it is a coupling)
    tau = torch.rand(B, generator=generator, dtype=torch.float64).to(x0.device, x0.dtype)
    if x1 is None:
        x1 = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
    elif check_tensor("x1", x1, finite=True).shape != x0.shape:
        raise ValueError(f"x1 must have the shape of x0 {tuple(x0.shape)}, got {tuple(x1.shape)}")
    # 2. the point on the path and its conditional velocity; 3. regress
    xt, u = p.sample(x0, x1, tau)
    out = model(xt, tau * t_scale) if cond is None else model(xt, tau * t_scale, cond)
    check_output("the model", out, xt)
    return ((out - u) ** 2).mean()


def train_flow(model: torch.nn.Module, data: torch.Tensor, steps: int = 2000, path="linear",
               x1: torch.Tensor | None = None, batch_size: int = 256, lr: float = 2e-3, ema: float = 0.995,
               seed: int = 0, t_scale: float = 1000.0, progress: bool = False):
    """Train `model` on data (N, ...) with the CFM loss; returns (ema_model, losses).
    x1: optional (N, ...) noise paired with data row by row (reflow); else fresh noise each batch.
    Adam with cosine learning-rate decay and an EMA copy, as train.train_denoiser."""
    from .train import fit
    check_tensor("data", data, min_ndim=2, nonempty=True, finite=True)
    check_positive_int("steps", steps)
    check_positive_int("batch_size", batch_size)
    if x1 is not None and check_tensor("x1", x1, finite=True).shape != data.shape:
        raise ValueError(f"x1 must have the shape of data {tuple(data.shape)}, got {tuple(x1.shape)}")
    p = get_path(path)
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)

    def batch_loss():
        idx = torch.randint(0, len(data), (min(batch_size, len(data)),), generator=g)
        return cfm_loss(model, data[idx], p, g, None if x1 is None else x1[idx], t_scale=t_scale)

    return fit(model, batch_loss, steps, lr, ema, progress=progress, desc="flow matching")


# -- sampling: the ODE dx/dtau = u(x, tau) from tau = 1 (noise) to 0 (data) -------------------
METHODS = ("euler", "midpoint", "heun")


def flow_step(velocity_fn, x: torch.Tensor, tau: float, tau_next: float, method: str = "euler"):
    """One step of dx/dtau = u(x, tau) from tau to tau_next; returns (x_next, u(x, tau)).
    euler: x + h u;  midpoint: x + h u(x + h/2 u, tau + h/2);  heun: x + h/2 (u + u(x + h u, tau_next))."""
    check_tensor("x", x)
    check_choice("method", method, METHODS)
    tau, tau_next = check_real("tau", tau, lo=0, hi=1), check_real("tau_next", tau_next, lo=0, hi=1)
    return _flow_step(_velocity_fn(velocity_fn), x, tau, tau_next, method)


def _flow_step(velocity_fn, x, tau: float, tau_next: float, method: str):
    h = tau_next - tau
    tb = lambda v: torch.full((len(x),), v, dtype=x.dtype, device=x.device)     # noqa: E731
    u = velocity_fn(x, tb(tau))
    if method == "euler":
        return x + h * u, u
    if method == "midpoint":
        return x + h * velocity_fn(x + 0.5 * h * u, tb(tau + 0.5 * h)), u
    return x + 0.5 * h * (u + velocity_fn(x + h * u, tb(tau_next))), u


def _velocity_fn(velocity_fn):
    """The user's u(x, tau), checked on every call: a tensor shaped and typed like x."""
    return checked(check_callable("velocity_fn", velocity_fn, "u(x, tau) -> (B, ...) like x"), "velocity_fn")


def sample_flow(velocity_fn, x1: torch.Tensor, steps: int = 50, method: str = "euler", path="linear",
                generator=None, return_trajectory: bool = False, callback=None):
    """Flow-matching ODE sampling (Lipman et al. 2023, section 3; Euler, midpoint or Heun) from
    noise x1: (B, ...) at tau = 1 to data at tau = 0 in `steps` equal steps. Returns x0, or
    (x0, xs (S+1, B, ...), x0_hats (S, B, ...)); callback gets {'x', 'i', 'tau', 'denoised'}
    with denoised = E[x0 | x_tau] read off the velocity through `path`."""
    velocity_fn = _velocity_fn(velocity_fn)
    check_tensor("x1", x1, min_ndim=2, nonempty=True, finite=True)
    check_positive_int("steps", steps)
    check_choice("method", method, METHODS)
    p = get_path(path)
    taus = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64).tolist()
    x, trace = x1, Trace(x1, return_trajectory, callback, source="velocity_fn")
    for i in range(steps):
        with torch.no_grad():
            x_new, u = _flow_step(velocity_fn, x, taus[i], taus[i + 1], method)
            x0 = p.x0_from_velocity(x, u, taus[i])
        x = x_new
        trace(x, x0, i, tau=taus[i])
    return trace.result(x)


# -- rectified flow: straightness and reflow -------------------------------------------------
def straightness(velocity_fn, x1: torch.Tensor, steps: int = 100) -> float:
    """S = E int_0^1 || u(x_tau, tau) - (x1 - x0) ||^2 dtau along the flow's own ODE paths from x1
    (Liu et al. 2023, eq. 5; 0 iff every path is a straight line at constant speed). Euler with
    `steps` steps, so x1 - x0 is the mean of the velocities met along the path."""
    velocity_fn = _velocity_fn(velocity_fn)
    check_tensor("x1", x1, min_ndim=2, nonempty=True, finite=True)
    check_positive_int("steps", steps)
    us = []
    taus = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64).tolist()
    x = x1
    with torch.no_grad():
        for i in range(steps):
            x, u = _flow_step(velocity_fn, x, taus[i], taus[i + 1], "euler")
            us.append(u)
    U = torch.stack(us)                                     # (S, B, ...)
    chord = x1 - x                                          # x1 - x0 = mean_k u_k
    S = float(((U - chord) ** 2).reshape(steps, len(x1), -1).sum(-1).mean())
    if not math.isfinite(S):
        raise ValueError(f"straightness is {S}: velocity_fn returned NaN or inf along the path")
    return S


def reflow_pairs(velocity_fn, x1: torch.Tensor, steps: int = 100, method: str = "heun"):
    """The coupling (x0, x1) of a flow: x0 = ODE(x1) (Liu et al. 2023, Algorithm 1, step 2).
    x1: (N, ...) noise. Returns (x0, x1)."""
    return sample_flow(velocity_fn, x1, steps, method), x1


def reflow(model: torch.nn.Module, velocity_fn, x1: torch.Tensor, ode_steps: int = 100, method: str = "heun",
           **train_kwargs):
    """k-Rectified flow (Liu et al. 2023, Algorithm 1): pair noise x1 with the samples of the
    current flow `velocity_fn`, then train `model` on the linear path between the pairs.
    Returns (ema_model, losses, (x0, x1)); train_kwargs go to train_flow."""
    x0, x1 = reflow_pairs(velocity_fn, x1, ode_steps, method)
    dtype = next(model.parameters()).dtype                  # pairs in the network's precision
    ema_model, losses = train_flow(model, x0.detach().to(dtype), x1=x1.to(dtype), path="linear", **train_kwargs)
    return ema_model, losses, (x0, x1)
