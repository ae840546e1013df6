"""Riemannian flow matching on the sphere S^2 and the flat torus T^2 (Chen & Lipman 2024).

Scope: on the two simplest closed manifolds (their exp / log maps are in geometry.py), exact samplers of data on them
(von Mises-Fisher mixtures on S^2, wrapped Gaussians on T^2), a velocity network, the RFM loss,
an ODE sampler that moves along the manifold, the naive Euclidean foil, and a geodesic MMD.

Where the denoiser contract ends, and why. A denoiser returns E[x_0 | x_t], an average of clean
points. On a manifold the average of points on S^2 lies inside the ball, not on the sphere, and
the average of angles near 0 and 2 pi is pi, the wrong side of the torus: "the posterior mean"
is not a point of the data space, so no sampler can step towards it. Flow matching needs no mean:
its model is a *velocity* v(x, t), a vector of the tangent space T_x M at each x, and the sampler
moves with the exp map, x <- exp_x(h v). So this module leaves the contract: its models are
velocity fields on tangent spaces, `model(x, t)` with x on M and t in [0, 1] (not the schedule's
integer steps), and they are used only through `sample_rfm` here.

Notation (Chen & Lipman 2024, section 3; time runs from noise t = 0 to data t = 1, as in the paper;
diffedu.flow runs the other way, tau = 1 noise):
    x0 ~ p_0         the source: uniform on M         x1 ~ q   a data point
    log_x(y)         the tangent vector at x pointing along the shortest geodesic to y, |log_x(y)| = d(x, y)
    exp_x(v)         the end of the geodesic leaving x with velocity v after time 1
    x_t              = exp_{x0}(t log_{x0}(x1))   the geodesic path (eq. 9 with the geodesic distance as premetric)
    u_t(x_t | x1)    = d x_t / dt = log_{x_t}(x1) / (1 - t)   its conditional velocity
    loss             E_{t, x0, x1} |v(x_t, t) - u_t(x_t | x1)|^2   (eq. 4 with the conditional field)

Points: the sphere as unit vectors x: (B, 3); the torus as angle pairs x: (B, 2) in [0, 2 pi).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .._validate import check_choice, check_positive_int, check_real, check_tensor

__all__ = ["TOL", "MANIFOLDS", "check_on_manifold", "sphere_exp", "sphere_log", "sphere_dist", "tangent",
           "wrap", "torus_exp", "torus_log", "torus_dist", "exp_map", "log_map", "dist", "uniform",
           "vmf_sample", "vmf_log_prob", "vmf_mixture_sample", "vmf_mixture_log_prob",
           "wrapped_gaussian_sample", "wrapped_gaussian_log_prob", "geodesic_kernel", "geodesic_mmd",
           "geodesic_path", "rfm_loss", "naive_loss", "sample_rfm", "sample_naive", "naive_source", "VelocityMLP",
           "CHECKPOINT_MODELS",
           "SPHERE_DATA", "TORUS_DATA", "chapter_data", "chapter_log_prob", "train_velocity",
           "load_shipped", "main", "mode_masses", "stray_share"]

from .geometry import (MANIFOLDS, TOL, TWO_PI, _geo, check_on_manifold, dist, exp_map, log_map, sphere_dist,  # noqa: F401
                       sphere_exp, sphere_log, tangent, torus_dist, torus_exp, torus_log, uniform, wrap)

NAIVE = {"sphere": "r3", "torus": "angles"}    # the foil's chart: ambient R^3, the angle square [0, 2 pi)^2


# -- data with exact densities ----------------------------------------------------------------

def vmf_log_prob(x: torch.Tensor, mu: torch.Tensor, kappa: float) -> torch.Tensor:
    """log of the von Mises-Fisher density on S^2, kappa / (4 pi sinh kappa) exp(kappa <mu, x>), at x: (B, 3);
    mu: (3,) a unit vector; kappa > 0. Written without sinh, which overflows for large kappa."""
    kappa = check_real("kappa", kappa, lo=0, lo_open=True)
    return math.log(kappa / TWO_PI) - kappa - math.log1p(-math.exp(-2 * kappa)) + kappa * (x @ mu.to(x))


def vmf_sample(mu: torch.Tensor, kappa: float, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """n exact samples (n, 3) of vMF(mu, kappa) on S^2 by Wood's (1994) rejection algorithm, p = 3.

        1. b = (p - 1) / (2 kappa + sqrt(4 kappa^2 + (p - 1)^2)),  x0 = (1 - b) / (1 + b),
           c = kappa x0 + (p - 1) log(1 - x0^2)
        2. z ~ Beta((p-1)/2, (p-1)/2) (= U(0, 1) for p = 3), u ~ U(0, 1),
           w = (1 - (1 + b) z) / (1 - (1 - b) z); accept if kappa w + (p - 1) log(1 - x0 w) - c >= log u
        3. x = (sqrt(1 - w^2) cos phi, sqrt(1 - w^2) sin phi, w), phi ~ U(0, 2 pi): mean direction e_3
        4. the Householder reflection that maps e_3 to mu (it keeps the density: it is orthogonal and fixes mu's axis)
    """
    kappa = check_real("kappa", kappa, lo=0, lo_open=True)
    check_positive_int("n", n)
    mu = check_on_manifold("mu", check_tensor("mu", mu, ndim=1).reshape(1, 3).double(), "sphere").reshape(3)
    b = 2 / (2 * kappa + math.sqrt(4 * kappa ** 2 + 4))          # 1. the stable form of (-2k + sqrt(4k^2 + 4)) / 2
    x0 = (1 - b) / (1 + b)
    c = kappa * x0 + 2 * math.log(1 - x0 ** 2)
    w = torch.empty(0, dtype=torch.float64)
    while len(w) < n:                                           # 2. acceptance is above 0.75 for every kappa
        m = 2 * (n - len(w)) + 16
        z, u = torch.rand(2, m, generator=generator, dtype=torch.float64)
        cand = (1 - (1 + b) * z) / (1 - (1 - b) * z)
        ok = kappa * cand + 2 * torch.log(1 - x0 * cand) - c >= torch.log(u)
        w = torch.cat([w, cand[ok]])
    w = w[:n]
    phi = TWO_PI * torch.rand(n, generator=generator, dtype=torch.float64)       # 3.
    r = torch.sqrt(torch.clamp(1 - w ** 2, min=0))
    x = torch.stack([r * torch.cos(phi), r * torch.sin(phi), w], 1)
    h = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64) - mu                 # 4.
    if float(h.norm()) > 1e-12:
        x = x - 2 * (x @ h)[:, None] * h / (h @ h)
    return x


def _check_mixture(weights: torch.Tensor, k: int, name: str) -> torch.Tensor:
    w = check_tensor(name, torch.as_tensor(weights, dtype=torch.float64), ndim=1, finite=True)
    if len(w) != k or bool((w < 0).any()) or abs(float(w.sum()) - 1) > 1e-6:
        raise ValueError(f"{name} must be {k} non-negative numbers summing to 1, got {w.tolist()}")
    return w


def vmf_mixture_sample(mus: torch.Tensor, kappas, weights, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """n samples (n, 3) of the mixture sum_k weights[k] vMF(mus[k], kappas[k]); mus: (K, 3) unit vectors."""
    w = _check_mixture(weights, len(mus), "weights")
    counts = torch.bincount(torch.multinomial(w, n, replacement=True, generator=generator), minlength=len(w))
    parts = [vmf_sample(mus[k], float(kappas[k]), int(counts[k]), generator) for k in range(len(w)) if counts[k] > 0]
    x = torch.cat(parts)
    return x[torch.randperm(n, generator=generator)]


def vmf_mixture_log_prob(x: torch.Tensor, mus: torch.Tensor, kappas, weights) -> torch.Tensor:
    """log density (B,) of the vMF mixture at x: (B, 3) (with respect to the area measure of S^2)."""
    w = _check_mixture(weights, len(mus), "weights")
    terms = torch.stack([vmf_log_prob(x.double(), mus[k].double(), float(kappas[k])) + math.log(w[k])
                         for k in range(len(w)) if w[k] > 0], 1)
    return torch.logsumexp(terms, 1)


def wrapped_gaussian_sample(means: torch.Tensor, stds, weights, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """n samples (n, 2) of a mixture of isotropic Gaussians N(means[k], stds[k]^2 I) wrapped onto [0, 2 pi)^2."""
    w = _check_mixture(weights, len(means), "weights")
    k = torch.multinomial(w, n, replacement=True, generator=generator)
    means, stds = torch.as_tensor(means, dtype=torch.float64), torch.as_tensor(stds, dtype=torch.float64)
    return wrap(means[k] + stds[k, None] * torch.randn(n, 2, generator=generator, dtype=torch.float64))


def wrapped_gaussian_log_prob(x: torch.Tensor, means: torch.Tensor, stds, weights, wraps: int = 3) -> torch.Tensor:
    """log density (B,) of the wrapped Gaussian mixture at angles x: (B, 2): each coordinate's density is
    sum_j N(x + 2 pi j; m, s^2) over |j| <= wraps (exact to float64 for s < 2)."""
    w = _check_mixture(weights, len(means), "weights")
    means, stds = torch.as_tensor(means, dtype=torch.float64), torch.as_tensor(stds, dtype=torch.float64)
    j = TWO_PI * torch.arange(-wraps, wraps + 1, dtype=torch.float64)
    d = x.double()[:, None, :, None] + j - means[None, :, :, None]                  # (B, K, 2, J)
    s = stds[None, :, None, None]
    per_coord = torch.logsumexp(-0.5 * (d / s) ** 2, -1) - torch.log(s[..., 0]) - 0.5 * math.log(TWO_PI)
    return torch.logsumexp(per_coord.sum(-1) + torch.log(w), 1)


# -- a metric: MMD with a kernel of the geodesic distance -------------------------------------

def geodesic_kernel(manifold: str, x: torch.Tensor, y: torch.Tensor, bandwidths=(0.1, 0.3, 1.0)) -> torch.Tensor:
    """Gram matrix (N, M) of sum_h exp(-d(x, y) / h): the Laplacian kernel of the geodesic distance, which is
    positive definite on S^2 (Feragen et al. 2015; the Gaussian exp(-d^2 / h^2) fails for some h). On the torus d is the
    sum of the two circle distances, so the kernel is a product of circle kernels (each positive definite)."""
    x, y = x.double(), y.double()
    if manifold == "sphere":
        d = torch.atan2(torch.linalg.cross(x[:, None], y[None], dim=-1).norm(dim=-1), x @ y.T)
    else:
        check_choice("manifold", manifold, MANIFOLDS)
        d = torus_log(x[:, None], y[None]).abs().sum(-1)
    return sum(torch.exp(-d / float(h)) for h in bandwidths)


def geodesic_mmd(manifold: str, x: torch.Tensor, y: torch.Tensor, bandwidths=(0.1, 0.3, 1.0)) -> float:
    """Squared MMD (biased V-statistic, >= 0) between samples x: (N, d) and y: (M, d) on `manifold` with
    `geodesic_kernel`. Two independent draws of the same law give a small positive floor, O(1/N)."""
    for name, v in (("x", x), ("y", y)):
        check_on_manifold(name, v, manifold, tol=1e-3)
        if len(v) < 2:
            raise ValueError(f"geodesic_mmd needs at least 2 points in {name}, got {len(v)}")
    k = lambda a, b: geodesic_kernel(manifold, a, b, bandwidths).mean()     # noqa: E731
    return float(k(x, x) + k(y, y) - 2 * k(x, y))


# -- flow matching ----------------------------------------------------------------------------

def geodesic_path(manifold: str, x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor):
    """(x_t, u_t): the point at time t: (B,) of the geodesic from x0 to x1 (B, d) and its velocity.
    Sphere: x_t = cos(t theta) x0 + sin(t theta) e, u_t = theta (cos(t theta) e - sin(t theta) x0), with theta = d(x0, x1)
    and e = log_{x0}(x1) / theta; this equals log_{x_t}(x1) / (1 - t) and stays finite at t = 1. Torus: x_t =
    wrap(x0 + t log_{x0}(x1)), u_t = log_{x0}(x1), constant."""
    exp, log, _ = _geo(manifold)
    v = log(x0, x1)
    if manifold == "torus":
        return exp(x0, t[:, None] * v), v
    theta = v.norm(dim=-1, keepdim=True)
    e = v / theta.clamp_min(1e-12)
    c, s = torch.cos(t[:, None] * theta), torch.sin(t[:, None] * theta)
    return c * x0 + s * e, theta * (c * e - s * x0)


def rfm_loss(model: nn.Module, manifold: str, x1: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Riemannian conditional flow matching loss (Chen & Lipman 2024, eq. 4 and 9) for a batch of data x1: (B, d).
        1. x0 ~ uniform(M), t ~ U(0, 1)
        2. (x_t, u_t) = geodesic_path(x0, x1, t)
        3. mean |v(x_t, t) - u_t|^2, with v tangent at x_t (VelocityMLP projects it)"""
    x0 = uniform(manifold, len(x1), generator, x1.dtype)
    t = torch.rand(len(x1), generator=generator, dtype=x1.dtype)
    xt, ut = geodesic_path(manifold, x0, x1, t)
    return ((model(xt, t) - ut) ** 2).sum(-1).mean()


def naive_source(manifold: str, n: int, generator, dtype) -> torch.Tensor:
    """The foil's noise: a standard Gaussian in R^3 (its direction is uniform on S^2), uniform on the angle square."""
    if manifold == "sphere":
        return torch.randn(n, 3, generator=generator, dtype=dtype)
    return uniform("torus", n, generator, dtype)


def naive_loss(model: nn.Module, manifold: str, x1: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """The foil: Euclidean flow matching in the chart (R^3, or the angle square without wrapping), straight
    paths x_t = (1 - t) x0 + t x1 and velocity x1 - x0; x1: (B, d)."""
    x0 = naive_source(manifold, len(x1), generator, x1.dtype)
    t = torch.rand(len(x1), 1, generator=generator, dtype=x1.dtype)
    return ((model((1 - t) * x0 + t * x1, t[:, 0]) - (x1 - x0)) ** 2).sum(-1).mean()


def _velocity(model, x, t):
    p = next(model.parameters())
    with torch.no_grad():
        return model(x.to(p.dtype), torch.full((len(x),), t, dtype=p.dtype, device=x.device)).to(x.dtype)


def sample_rfm(model: nn.Module, manifold: str, x0: torch.Tensor, steps: int = 100, return_trajectory: bool = False):
    """Integrate dx/dt = v(x, t) from the source points x0: (B, d) on `manifold` at t = 0 to t = 1 with Euler
    steps on the manifold, x <- exp_x(h v(x, t)) (each step follows a geodesic, so x never leaves M; the
    state keeps x0's dtype, the network runs in its own). Returns x1 (B, d), or (x1, xs (steps + 1, B, d))."""
    check_positive_int("steps", steps)
    x = check_on_manifold("x0", x0, manifold)
    exp = _geo(manifold)[0]
    xs, h = [x], 1.0 / steps
    for k in range(steps):
        x = exp(x, h * _velocity(model, x, k * h))
        xs.append(x)
    return (x, torch.stack(xs)) if return_trajectory else x


def sample_naive(model: nn.Module, manifold: str, z: torch.Tensor, steps: int = 100, return_trajectory: bool = False):
    """The foil's sampler: Euler steps in the chart from z: (B, d) (R^3 Gaussians or angles), then back onto M
    (x / |x| on the sphere, wrapping on the torus). Returns the points on M, or (points, chart trajectory)."""
    check_positive_int("steps", steps)
    check_choice("manifold", manifold, MANIFOLDS)
    x, xs, h = z, [z], 1.0 / steps
    for k in range(steps):
        x = x + h * _velocity(model, x, k * h)
        xs.append(x)
    out = x / x.norm(dim=1, keepdim=True) if manifold == "sphere" else wrap(x)
    return (out, torch.stack(xs)) if return_trajectory else out


# -- the chapter's data and training -----------------------------------------------------------

# Four vMF modes on S^2 of different widths (1/sqrt(kappa) is about 0.14 to 0.32 rad), one of them at a pole.
SPHERE_DATA = dict(mus=[[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [-0.5, 0.8660254037844386, 0.0], [0.0, -0.6, -0.8]],
                   kappas=[50.0, 20.0, 20.0, 10.0], weights=[0.25, 0.25, 0.25, 0.25])
# Three wrapped Gaussians on T^2: one in the corner (split four ways by the chart's seams), one across the
# theta_1 seam (split in two), one in the middle of the square (a control the chart does not cut).
TORUS_DATA = dict(means=[[0.0, 0.0], [0.0, 4.0], [3.3, 2.2]], stds=[0.35, 0.3, 0.45], weights=[0.4, 0.3, 0.3])


def chapter_data(manifold: str, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """n float64 samples of the chapter's data on `manifold`: (n, 3) from SPHERE_DATA or (n, 2) from TORUS_DATA."""
    check_choice("manifold", manifold, MANIFOLDS)
    if manifold == "sphere":
        return vmf_mixture_sample(torch.tensor(SPHERE_DATA["mus"], dtype=torch.float64), SPHERE_DATA["kappas"],
                                  SPHERE_DATA["weights"], n, generator)
    return wrapped_gaussian_sample(TORUS_DATA["means"], TORUS_DATA["stds"], TORUS_DATA["weights"], n, generator)


def _component_log_probs(manifold: str, x: torch.Tensor) -> torch.Tensor:
    """(B, K): log(weight_k) + log p_k(x) for the K components of the chapter's data."""
    check_choice("manifold", manifold, MANIFOLDS)
    x = x.double()
    if manifold == "sphere":
        mus = torch.tensor(SPHERE_DATA["mus"], dtype=torch.float64)
        return torch.stack([vmf_log_prob(x, mus[k], SPHERE_DATA["kappas"][k]) + math.log(w)
                            for k, w in enumerate(SPHERE_DATA["weights"])], 1)
    return torch.stack([wrapped_gaussian_log_prob(x, [m], [s], [1.0]) + math.log(w)
                        for m, s, w in zip(TORUS_DATA["means"], TORUS_DATA["stds"], TORUS_DATA["weights"])], 1)


def chapter_log_prob(manifold: str, x: torch.Tensor) -> torch.Tensor:
    """The exact log density (B,) of the chapter's data at x: (B, 3) or (B, 2)."""
    return torch.logsumexp(_component_log_probs(manifold, x), 1)


def mode_masses(manifold: str, x: torch.Tensor) -> list:
    """The share of points x: (B, d) whose most responsible component (exact posterior) is k, for each k; for the
    data itself it is close to the weights."""
    lp = _component_log_probs(manifold, x)
    return (torch.bincount(lp.argmax(1), minlength=lp.shape[1]).double() / len(x)).tolist()


def stray_share(manifold: str, x: torch.Tensor, q: float = 0.01, n_ref: int = 20000, seed: int = 0) -> float:
    """The share of points x: (B, d) where the exact data density is below its q-quantile over data (measured on
    n_ref data points): q for the data itself, more for a model that puts mass between the modes."""
    q = check_real("q", q, lo=0, lo_open=True, hi=1)
    ref = chapter_log_prob(manifold, chapter_data(manifold, n_ref, torch.Generator().manual_seed(seed)))
    return float((chapter_log_prob(manifold, x) < torch.quantile(ref, q)).double().mean())


def train_velocity(manifold: str, naive: bool = False, steps: int = 3000, batch_size: int = 512, n_data: int = 20000,
                   hidden: int = 128, depth: int = 3, lr: float = 2e-3, seed: int = 0, progress: bool = False):
    """Train a VelocityMLP on `n_data` samples of the chapter's data: RFM on `manifold`, or (naive) the Euclidean
    foil in its chart. Returns (EMA model in eval mode, losses)."""
    from ..train.fit import fit
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    data = chapter_data(manifold, n_data, g).float()
    model = VelocityMLP(NAIVE[manifold] if naive else manifold, hidden, depth)
    loss = naive_loss if naive else rfm_loss

    def batch_loss():
        return loss(model, manifold, data[torch.randint(len(data), (batch_size,), generator=g)], g)
    return fit(model, batch_loss, steps, lr=lr, ema=0.995, progress=progress, desc=f"{manifold} {'naive' if naive else 'rfm'}")


# -- the network ------------------------------------------------------------------------------

class VelocityMLP(nn.Module):
    """v(x, t): a velocity field for flow matching on a manifold or in a chart. x: (B, d), t: (B,) in [0, 1] ->
    (B, d). kind: "sphere" (input x in R^3, output projected onto T_x S^2), "torus" (input (cos, sin) of the
    angles, so v is a function on the torus, not on the square; output R^2), or the foil's charts "r3" and
    "angles" (raw coordinates in, unconstrained velocity out)."""
    KINDS = {"sphere": (3, 3), "torus": (4, 2), "r3": (3, 3), "angles": (2, 2)}

    def __init__(self, kind: str = "sphere", hidden: int = 128, depth: int = 3, n_freq: int = 4):
        super().__init__()
        check_choice("kind", kind, self.KINDS)
        self.kind, self.n_freq = kind, check_positive_int("n_freq", n_freq)
        d_in, d_out = self.KINDS[kind]
        layers, width = [], d_in + 1 + 2 * n_freq
        for _ in range(check_positive_int("depth", depth)):
            layers += [nn.Linear(width, check_positive_int("hidden", hidden)), nn.SiLU()]
            width = hidden
        self.net = nn.Sequential(*layers, nn.Linear(width, d_out))
        self.register_buffer("freqs", math.pi * torch.arange(1, n_freq + 1, dtype=torch.float32), persistent=False)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        feats = torch.cat([torch.cos(x), torch.sin(x)], -1) if self.kind == "torus" else x
        if self.kind == "angles":
            feats = x / math.pi - 1                          # the square [0, 2 pi) as [-1, 1)
        tf = t[:, None].to(x.dtype) * self.freqs.to(x.dtype)
        v = self.net(torch.cat([feats, t[:, None].to(x.dtype), torch.sin(tf), torch.cos(tf)], -1))
        return tangent(x, v) if self.kind == "sphere" else v


CHECKPOINT_MODELS = (VelocityMLP,)


# -- shipped checkpoints: `python -m diffedu.domains.manifold --manifold sphere [--naive]` -------------

def _name(manifold: str, naive: bool) -> str:
    return f"domains/manifold_{manifold}{'_naive' if naive else ''}"


def load_shipped(manifold: str, naive: bool = False) -> VelocityMLP:
    """The shipped RFM model (or the naive foil) of the chapter's data on `manifold`, in eval mode."""
    from ..train.checkpoints import pretrained
    check_choice("manifold", manifold, MANIFOLDS)
    return pretrained(_name(manifold, naive))


def quality(model: nn.Module, manifold: str, naive: bool, n: int = 2000, steps: int = 100, seed: int = 1) -> dict:
    """Geodesic MMD of n samples (steps Euler steps) against n data points, and the floor of two data draws."""
    g = torch.Generator().manual_seed(seed)
    ref, ref2 = chapter_data(manifold, n, g), chapter_data(manifold, n, g)
    x = (sample_naive(model, manifold, naive_source(manifold, n, g, torch.float32), steps) if naive
         else sample_rfm(model, manifold, uniform(manifold, n, g), steps))
    return {"mmd": geodesic_mmd(manifold, x, ref), "mmd_floor": geodesic_mmd(manifold, ref2, ref), "n": n, "ode_steps": steps}


def main(argv=None):
    import argparse
    import time
    from ..train.checkpoints import CHECKPOINTS, loss_curve, model_spec, save_checkpoint
    ap = argparse.ArgumentParser(prog="python -m diffedu.domains.manifold", description="train and ship an RFM model")
    ap.add_argument("--manifold", choices=MANIFOLDS, required=True)
    ap.add_argument("--naive", action="store_true", help="the Euclidean foil in the chart instead of RFM")
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    from . import manifold as mod     # under `python -m` this file is __main__: use the package's classes
    t0 = time.process_time()
    model, losses = mod.train_velocity(args.manifold, args.naive, steps=args.steps, seed=args.seed)
    cpu = time.process_time() - t0
    kind = NAIVE[args.manifold] if args.naive else args.manifold
    cmd = (f"python -m diffedu.domains.manifold --manifold {args.manifold}{' --naive' if args.naive else ''} "
           f"--steps {args.steps} --seed {args.seed}")
    manifest = {"model": model_spec(model, kind=kind, hidden=128, depth=3), "command": cmd, "seed": args.seed,
                "data": f"diffedu.domains.manifold.chapter_data({args.manifold!r}, 20000)", "steps": args.steps,
                "batch_size": 512, "losses": loss_curve(losses, 100),
                "final_loss": sum(losses[-100:]) / len(losses[-100:]), "train_cpu_s": round(cpu, 1),
                "params": sum(p.numel() for p in model.parameters()), "quality": mod.quality(model, args.manifold, args.naive)}
    path = save_checkpoint(model, CHECKPOINTS / f"{_name(args.manifold, args.naive)}.safetensors", manifest)
    print(path, manifest["quality"], f"{cpu:.0f} CPU-s")


if __name__ == "__main__":
    main()
